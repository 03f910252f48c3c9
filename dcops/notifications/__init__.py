"""Notifications: the outbox written with each change, and the senders that deliver it."""

from dcops.notifications.delivery import DeliveryError, DeliveryReport, Outcome, deliver_pending, retry_delay_s
from dcops.notifications.outbox import enqueue, list_messages, request_changed

__all__ = ["DeliveryError", "DeliveryReport", "Outcome", "deliver_pending", "enqueue", "list_messages",
           "request_changed", "retry_delay_s"]

"""Alertmanager (API v2): a silence for each maintenance window, and the alerts its webhook delivers.

Silences. A window recorded while DCOPS_ALERTMANAGER_URL is set gets a row here in the window's own
transaction (`pending`); after that transaction commits dcops asks Alertmanager for the silence, and
an Alertmanager that is down leaves the row pending, tried again every minute by `dcops serve`
(`sync_silences`). Cancelling the window expires the silence (`expiring`, then `expired`). A window
on a cluster is ONE silence whose matcher is a regex over the cluster's programmes
(`programme=~"a|b"`): one id to expire, one state to show, and created whole or not at all (an
Alertmanager that fails half-way through ten POSTs would leave half a cluster paging). The
programmes are those on the cluster when the silence is created.

Alerts. Alertmanager's webhook (a path of `dcops serve`) delivers notifications; the firing and
resolved `DcopsProgrammeDown` alerts are recorded per programme, once per alert (fingerprint and
startsAt: Alertmanager re-sends the same alert every repeat_interval). An incident shows the alerts
that began within it (`alerts_during`), so an alert that came before dcops opened the incident is
picked up by it later, and one that began outside every incident stays recorded against the programme.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any, Iterable

from sqlalchemy import insert, select, union, update
from sqlalchemy.engine import Connection

from dcops.audit import Event, record
from dcops.db import Database, iso_utc, utcnow
from dcops.errors import AlertmanagerError, AlertmanagerRejected, UserError
from dcops.lifecycle import move_silence
from dcops.metrics.files import re2_alternation
from dcops.models import (Allocation, Cluster, Host, MaintenanceWindow, Programme, alertmanager_alert_table,
                          alertmanager_silence_table)
from dcops.notifications.outbox import one_line

T_SILENCE = alertmanager_silence_table
T_ALERT = alertmanager_alert_table
T_WINDOW = MaintenanceWindow.__table__
T_PROGRAMME = Programme.__table__
T_CLUSTER = Cluster.__table__

CREATED_BY = "dcops"
SYSTEM_ACTOR = "dcops"
# The label of the alert rules dcops writes (`dcops metrics rules`) that names the programme.
PROGRAMME_LABEL = "programme"
PROGRAMME_DOWN = "DcopsProgrammeDown"
# An attempt holds its rows this long; a process that died mid-attempt leaves them due again after it.
LEASE_SECONDS = 120.0
TIMEOUT_SECONDS = 5.0
ERROR_MAX = 300
# A webhook body larger than this is refused: Alertmanager's max_alerts keeps real ones far smaller.
MAX_WEBHOOK_BYTES = 1 << 20
# An alert fires `for` minutes after the exporter showed the programme down, and Prometheus sees the
# exporter a scrape late: an alert beginning this close to an incident's ends is that incident's.
INCIDENT_SKEW = timedelta(minutes=2)


# --- the client ------------------------------------------------------------------------------


class AlertmanagerClient:
    """Alertmanager's API v2 at `url` (its base, e.g. http://127.0.0.1:9093), over httpx.

    Raises AlertmanagerRejected on a 4xx (do not try again), AlertmanagerError when it cannot be
    reached or answers 5xx (try again later).
    """

    def __init__(self, url: str, *, timeout_s: float = TIMEOUT_SECONDS):
        self.url = url.rstrip("/")
        self.timeout_s = timeout_s

    def _call(self, method: str, path: str, body: Any = None) -> Any:
        import httpx  # only the commands that talk to Alertmanager pay for it

        where = f"Alertmanager at {self.url}"
        try:
            response = httpx.request(method, f"{self.url}/api/v2{path}", json=body, timeout=self.timeout_s)
        except httpx.HTTPError as error:
            reason = error or type(error).__name__
            raise AlertmanagerError(one_line(f"{where} cannot be reached: {reason}", ERROR_MAX)) from None
        if response.status_code >= 400:
            said = one_line(response.text.strip().strip('"'), 200)
            if 400 <= response.status_code < 500:
                raise AlertmanagerRejected(f"{where} refused it ({response.status_code}): {said}")
            raise AlertmanagerError(f"{where} answered {response.status_code}: {said}", said=said)
        if not response.content:
            return None
        try:
            return response.json()
        except ValueError:
            raise AlertmanagerError(f"{where} answered {response.status_code} with something not JSON") from None

    def create_silence(self, silence: dict) -> str:
        """POST /api/v2/silences; the new silence's id."""
        answer = self._call("POST", "/silences", silence)
        if not isinstance(answer, dict) or not isinstance(answer.get("silenceID"), str):
            raise AlertmanagerError(f"Alertmanager at {self.url} created a silence but gave no id")
        return answer["silenceID"]

    def expire_silence(self, silence_id: str) -> None:
        """DELETE /api/v2/silence/{id}: expire it now. A silence Alertmanager no longer knows (it lost
        its storage) is as good as expired; one already expired is expired again (a 200)."""
        try:
            self._call("DELETE", f"/silence/{silence_id}")
        except AlertmanagerRejected:
            raise
        except AlertmanagerError as error:
            # Alertmanager 0.25 says 500 "silence not found" for an id it does not hold.
            if error.said == "silence not found":
                return
            raise

    def silences(self) -> list[dict]:
        """GET /api/v2/silences: every silence Alertmanager holds (active, pending, expired)."""
        answer = self._call("GET", "/silences")
        return answer if isinstance(answer, list) else []


# --- silences: pure parts ---------------------------------------------------------------------


def programme_matchers(slugs: Iterable[str]) -> list[dict]:
    """The matchers selecting the alerts of these programmes: `programme="a"` for one,
    `programme=~"a|b"` (each name escaped for Go's RE2, which Alertmanager anchors) for several."""
    names = sorted(set(slugs))
    if not names:
        raise ValueError("no programme to match")
    if len(names) == 1:
        return [{"name": PROGRAMME_LABEL, "value": names[0], "isRegex": False, "isEqual": True}]
    return [{"name": PROGRAMME_LABEL, "value": re2_alternation(names), "isRegex": True, "isEqual": True}]


def window_marker(window_id: int) -> str:
    """The end of a window's silence comment: how dcops finds its own silence again."""
    return f"(dcops maintenance window {window_id})"


def silence_body(*, window_id: int, starts_at: datetime, ends_at: datetime, change_ref: str, reason: str,
                 slugs: Iterable[str]) -> dict:
    """The silence Alertmanager is asked for: the window's times, its programmes' alerts, created by
    dcops, its comment the change reference and the window's reason."""
    return {
        "matchers": programme_matchers(slugs),
        "startsAt": iso_utc(starts_at),
        "endsAt": iso_utc(ends_at),
        "createdBy": CREATED_BY,
        "comment": f"{change_ref}: {reason} {window_marker(window_id)}",
    }


def ours(silences: Iterable[dict], window_id: int) -> str | None:
    """The id of a silence still in force that dcops made for this window, if Alertmanager holds one
    (an attempt that reached Alertmanager but died before writing down the id)."""
    marker = window_marker(window_id)
    for silence in silences:
        state = (silence.get("status") or {}).get("state")
        if silence.get("createdBy") == CREATED_BY and str(silence.get("comment", "")).endswith(marker) \
                and state in ("active", "pending") and isinstance(silence.get("id"), str):
            return silence["id"]
    return None


# --- silences: the store ----------------------------------------------------------------------


def plan_silence(conn: Connection, window_id: int, *, ends_at: datetime, actor: str, now: datetime) -> bool:
    """In the window's own transaction: write its silence pending (due at once), audited. A window
    already over needs none (False)."""
    if ends_at <= now:
        return False
    conn.execute(insert(T_SILENCE).values(window_id=window_id, state="pending", attempts=0, next_attempt_at=now,
                                          last_error="", created_at=now, updated_at=now))
    record(conn, Event(actor, "maintenance.silence-pending", "maintenance", str(window_id), None,
                       {"silence": "pending"}))
    return True


def withdraw_or_expire(conn: Connection, window_id: int, *, actor: str, now: datetime) -> str | None:
    """In a cancellation's transaction: a silence Alertmanager holds is to be expired (`expiring`, due
    at once), one not yet created is `withdrawn`. Returns the silence's new state (None: it has none)."""
    row = conn.execute(select(T_SILENCE.c.id, T_SILENCE.c.state).where(T_SILENCE.c.window_id == window_id)).first()
    if row is None:
        return None
    if row.state == "created":
        move_silence(conn, row, "expiring", actor=actor, window_id=window_id, now=now, next_attempt_at=now)
        return "expiring"
    if row.state == "pending":
        move_silence(conn, row, "withdrawn", actor=actor, window_id=window_id, now=now,
                     detail={"why": "window cancelled before Alertmanager took its silence"},
                     last_error="window cancelled before Alertmanager took its silence")
        return "withdrawn"
    return row.state


@dataclass(frozen=True)
class _Claimed:
    id: int
    window_id: int
    state: str  # pending (to create) or expiring (to expire)
    silence_id: str | None
    attempts: int
    body: dict | None  # the silence to create; None when there is nothing to silence
    why_not: str  # why a pending one needs no silence after all


@dataclass(frozen=True)
class SilenceOutcome:
    """What one attempt did for one window's silence."""

    window_id: int
    state: str  # the state it is left in
    silence_id: str | None
    error: str = ""


def _programmes_on(conn: Connection, cluster_ids: list[int]) -> dict[int, set[str]]:
    """The programmes (not retired) on each cluster: allocated there or with a host there."""
    allocation, host = Allocation.__table__, Host.__table__
    placed = union(select(allocation.c.programme_id, allocation.c.cluster_id)
                   .where(allocation.c.cluster_id.in_(cluster_ids)),
                   select(host.c.programme_id, host.c.cluster_id).where(host.c.cluster_id.in_(cluster_ids))).subquery()
    found: dict[int, set[str]] = {}
    for slug, cluster_id in conn.execute(
            select(T_PROGRAMME.c.slug, placed.c.cluster_id)
            .join(placed, placed.c.programme_id == T_PROGRAMME.c.id).where(T_PROGRAMME.c.status != "retired")):
        found.setdefault(cluster_id, set()).add(slug)
    return found


def _claim(database: Database, *, now: datetime, lease_until: datetime, window_ids: list[int] | None,
           batch: int) -> list[_Claimed]:
    due = [T_SILENCE.c.state.in_(("pending", "expiring")), T_SILENCE.c.next_attempt_at <= now]
    if window_ids is not None:
        due.append(T_SILENCE.c.window_id.in_(window_ids))
    with database.transaction() as conn:  # most passes find nothing: they need not take the writer lock
        if conn.execute(select(T_SILENCE.c.id).where(*due).limit(1)).first() is None:
            return []
    with database.transaction(immediate=database.engine.dialect.name == "sqlite") as conn:
        rows = conn.execute(
            select(T_SILENCE.c.id, T_SILENCE.c.window_id, T_SILENCE.c.state, T_SILENCE.c.silence_id,
                   T_SILENCE.c.attempts, T_WINDOW.c.programme_id, T_WINDOW.c.cluster_id, T_WINDOW.c.starts_at,
                   T_WINDOW.c.ends_at, T_WINDOW.c.change_ref, T_WINDOW.c.reason, T_PROGRAMME.c.slug,
                   T_CLUSTER.c.name.label("cluster"))
            .join(T_WINDOW, T_WINDOW.c.id == T_SILENCE.c.window_id)
            .outerjoin(T_PROGRAMME, T_PROGRAMME.c.id == T_WINDOW.c.programme_id)
            .outerjoin(T_CLUSTER, T_CLUSTER.c.id == T_WINDOW.c.cluster_id)
            .where(*due).order_by(T_SILENCE.c.next_attempt_at, T_SILENCE.c.id).limit(batch)
            .with_for_update(skip_locked=True, of=T_SILENCE)
        ).all()
        if not rows:
            return []
        conn.execute(update(T_SILENCE).where(T_SILENCE.c.id.in_([r.id for r in rows]))
                     .values(next_attempt_at=lease_until, attempts=T_SILENCE.c.attempts + 1))
        on_cluster = _programmes_on(conn, sorted({r.cluster_id for r in rows if r.cluster_id is not None}))
    claimed = []
    for r in rows:
        body, why_not = None, ""
        if r.state == "pending":
            slugs = {r.slug} if r.slug is not None else on_cluster.get(r.cluster_id, set())
            if r.ends_at <= now:
                why_not = "the window ended before Alertmanager took its silence"
            elif not slugs:
                why_not = f"no programme on cluster {r.cluster} to silence"
            else:
                body = silence_body(window_id=r.window_id, starts_at=r.starts_at, ends_at=r.ends_at,
                                    change_ref=r.change_ref, reason=r.reason, slugs=slugs)
        claimed.append(_Claimed(r.id, r.window_id, r.state, r.silence_id, r.attempts + 1, body, why_not))
    return claimed


def _attempt(client: AlertmanagerClient, item: _Claimed) -> tuple[str, str | None, str]:
    """Ask Alertmanager; (state to move to, silence id, error). State "" means: still due, try again."""
    try:
        if item.state == "expiring":
            client.expire_silence(item.silence_id or "")
            return "expired", item.silence_id, ""
        if item.body is None:
            return "withdrawn", None, item.why_not
        # A second attempt may follow a first that reached Alertmanager: take that silence, not a twin.
        found = ours(client.silences(), item.window_id) if item.attempts > 1 else None
        return "created", found or client.create_silence(item.body), ""
    except AlertmanagerRejected as error:
        return "failed", item.silence_id, one_line(error, ERROR_MAX)
    except AlertmanagerError as error:
        return "", item.silence_id, one_line(error, ERROR_MAX)


def sync_silences(database: Database, client: AlertmanagerClient, *, window_ids: Iterable[int] | None = None,
                  actor: str = SYSTEM_ACTOR, now: datetime | None = None, batch: int = 100,
                  retry_s: float = 0.0, lease_s: float = LEASE_SECONDS) -> list[SilenceOutcome]:
    """Create the due pending silences and expire the due expiring ones (of `window_ids`, or all), each
    with no transaction open while Alertmanager is asked; each outcome written and audited (`actor`).

    Alertmanager down or answering 5xx: the silence stays as it is, its error kept, due again after
    `retry_s` seconds (by default at once: the next round tries it, `dcops serve`'s every minute).
    A 4xx: `failed`, not tried again.
    """
    clock = (lambda: now) if now is not None else utcnow
    started = clock()
    lease_until = started + timedelta(seconds=lease_s)
    claimed = _claim(database, now=started, lease_until=lease_until,
                     window_ids=None if window_ids is None else sorted(set(window_ids)), batch=batch)
    outcomes = []
    for item in claimed:
        to_state, silence_id, error = _attempt(client, item)
        at = clock()
        with database.transaction(immediate=True) as conn:
            mine = (T_SILENCE.c.id == item.id, T_SILENCE.c.state == item.state,
                    T_SILENCE.c.next_attempt_at == lease_until)
            row = conn.execute(select(T_SILENCE.c.id, T_SILENCE.c.state).where(*mine)).first()
            if row is None:
                continue  # the lease ran out and another process took it over: its attempt stands
            if not to_state:
                conn.execute(update(T_SILENCE).where(*mine).values(
                    next_attempt_at=at + timedelta(seconds=retry_s), last_error=error, updated_at=at))
                outcomes.append(SilenceOutcome(item.window_id, item.state, silence_id, error))
                continue
            changes: dict[str, Any] = {"last_error": error, "next_attempt_at": at}
            detail: dict[str, Any] = {}
            if to_state == "created":
                changes.update(silence_id=silence_id, matchers=item.body["matchers"])
                detail = {"silence_id": silence_id, "matchers": item.body["matchers"], "comment": item.body["comment"]}
            elif to_state == "expired":
                detail = {"silence_id": silence_id}
            else:
                detail = {"error": error}
            move_silence(conn, row, to_state, actor=actor, window_id=item.window_id, now=at, detail=detail,
                         **changes)
        outcomes.append(SilenceOutcome(item.window_id, to_state, silence_id, error))
    return outcomes


def silence_states(conn: Connection, window_ids: Iterable[int]) -> dict[int, dict]:
    """Each window's silence as plain data: state, Alertmanager's id, attempts, last error, when it last
    changed (ISO 8601 UTC). Windows without one are absent."""
    ids = sorted(set(window_ids))
    found: dict[int, dict] = {}
    for chunk in range(0, len(ids), 500):
        for row in conn.execute(select(T_SILENCE).where(T_SILENCE.c.window_id.in_(ids[chunk:chunk + 500]))):
            found[row.window_id] = {"state": row.state, "silence_id": row.silence_id, "attempts": row.attempts,
                                    "last_error": row.last_error, "updated_at": iso_utc(row.updated_at)}
    return found


# --- the webhook ------------------------------------------------------------------------------


@dataclass(frozen=True)
class AlertNotice:
    """One alert of a webhook notification."""

    status: str  # firing | resolved
    alertname: str
    programme: str | None
    fingerprint: str
    starts_at: datetime
    ends_at: datetime | None  # set when resolved
    severity: str


@dataclass(frozen=True)
class Notification:
    """A webhook notification: the receiver it was sent to, and its alerts."""

    receiver: str
    alerts: tuple[AlertNotice, ...]


def _time(value: Any, field: str) -> datetime:
    if not isinstance(value, str):
        raise UserError(f"webhook: {field} is not a time")
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        # Go writes up to nine decimals; Python reads six.
        match = re.match(r"^(.*T\d\d:\d\d:\d\d)(\.\d+)?(Z|[+-]\d\d:\d\d)$", value)
        if match is None:
            raise UserError(f"webhook: {field} {value[:40]!r} is not a time") from None
        fraction = (match.group(2) or "")[:7]
        moment = datetime.fromisoformat(match.group(1) + fraction + match.group(3).replace("Z", "+00:00"))
    if moment.tzinfo is None:
        raise UserError(f"webhook: {field} has no offset")
    return moment.astimezone(timezone.utc)


def _label(value: Any, limit: int = 200) -> str:
    return one_line(value, limit) if isinstance(value, str) else ""


def parse_webhook(body: bytes) -> Notification:
    """Alertmanager's webhook payload (version 4) as a Notification; UserError (one line) for a body
    that is not JSON or not that shape."""
    try:
        payload = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise UserError("webhook: the body is not JSON") from None
    if not isinstance(payload, dict) or not isinstance(payload.get("alerts"), list):
        raise UserError("webhook: not an Alertmanager notification (no list of alerts)")
    if str(payload.get("version", "4")) != "4":
        raise UserError(f"webhook: payload version {str(payload.get('version'))[:10]!r}, dcops reads version 4")
    alerts = []
    for index, alert in enumerate(payload["alerts"]):
        if not isinstance(alert, dict) or not isinstance(alert.get("labels"), dict):
            raise UserError(f"webhook: alert {index} has no labels")
        status = alert.get("status")
        if status not in ("firing", "resolved"):
            raise UserError(f"webhook: alert {index}: status must be firing or resolved")
        fingerprint = alert.get("fingerprint")
        if not isinstance(fingerprint, str) or not re.fullmatch(r"[0-9a-fA-F]{1,64}", fingerprint):
            raise UserError(f"webhook: alert {index} has no fingerprint")
        labels = alert["labels"]
        programme = labels.get(PROGRAMME_LABEL)
        alerts.append(AlertNotice(
            status=status, alertname=_label(labels.get("alertname")),
            programme=programme if isinstance(programme, str) and programme else None,
            fingerprint=fingerprint.lower(), starts_at=_time(alert.get("startsAt"), f"alert {index} startsAt"),
            ends_at=_time(alert.get("endsAt"), f"alert {index} endsAt") if status == "resolved" else None,
            severity=_label(labels.get("severity"), 40)))
    return Notification(receiver=_label(payload.get("receiver")), alerts=tuple(alerts))


def record_notification(database: Database, notification: Notification, *, now: datetime | None = None
                        ) -> dict[str, int]:
    """Record the notification's DcopsProgrammeDown alerts of known programmes, in one transaction: a new
    alert as it is, a firing one that resolved as resolved; the same alert again changes nothing.
    Audited under the programme (`alert.firing`, `alert.resolved`). Returns counts: recorded, unchanged,
    ignored (another alert, or a programme dcops does not know)."""
    now = now or utcnow()
    counts = {"recorded": 0, "unchanged": 0, "ignored": 0}
    wanted = [a for a in notification.alerts if a.alertname == PROGRAMME_DOWN and a.programme]
    counts["ignored"] = len(notification.alerts) - len(wanted)
    if not wanted:
        return counts
    with database.transaction(immediate=True) as conn:
        programmes = dict(conn.execute(select(T_PROGRAMME.c.slug, T_PROGRAMME.c.id)
                                       .where(T_PROGRAMME.c.slug.in_(sorted({a.programme for a in wanted})))).all())
        for alert in wanted:
            programme_id = programmes.get(alert.programme)
            if programme_id is None:
                counts["ignored"] += 1
                continue
            row = conn.execute(select(T_ALERT.c.id, T_ALERT.c.status).where(
                T_ALERT.c.fingerprint == alert.fingerprint, T_ALERT.c.starts_at == alert.starts_at)).first()
            # Alertmanager gives a new startsAt when an alert fires again: a resolved one stays resolved.
            if row is not None and (row.status == "resolved" or alert.status == "firing"):
                counts["unchanged"] += 1
                continue
            detail = {"alertname": alert.alertname, "fingerprint": alert.fingerprint,
                      "starts_at": iso_utc(alert.starts_at), "receiver": notification.receiver}
            if row is None:
                conn.execute(insert(T_ALERT).values(
                    programme_id=programme_id, alertname=alert.alertname, fingerprint=alert.fingerprint,
                    starts_at=alert.starts_at, ends_at=alert.ends_at, status=alert.status,
                    receiver=notification.receiver, severity=alert.severity,
                    fired_notified_at=now if alert.status == "firing" else None,
                    resolved_notified_at=now if alert.status == "resolved" else None))
            else:
                conn.execute(update(T_ALERT).where(T_ALERT.c.id == row.id).values(
                    status="resolved", ends_at=alert.ends_at, resolved_notified_at=now))
            if alert.status == "resolved":
                detail["ends_at"] = iso_utc(alert.ends_at)
            record(conn, Event(SYSTEM_ACTOR, f"alert.{alert.status}", "programme", alert.programme, None, detail))
            counts["recorded"] += 1
    return counts


def alerts_during(conn: Connection, programme_id: int, started_at: datetime, ended_at: datetime | None
                  ) -> list[dict]:
    """The programme's alerts that began within [started_at, ended_at] (open: to now), INCIDENT_SKEW
    either side, oldest first, as plain data (times ISO 8601 UTC): when each fired and resolved, when
    its notifications reached dcops, and to which receiver."""
    query = select(T_ALERT).where(T_ALERT.c.programme_id == programme_id,
                                  T_ALERT.c.starts_at >= started_at - INCIDENT_SKEW)
    if ended_at is not None:
        query = query.where(T_ALERT.c.starts_at <= ended_at + INCIDENT_SKEW)
    return [{"alertname": r.alertname, "status": r.status, "severity": r.severity, "receiver": r.receiver,
             "fingerprint": r.fingerprint, "starts_at": iso_utc(r.starts_at), "ends_at": iso_utc(r.ends_at),
             "fired_notified_at": iso_utc(r.fired_notified_at),
             "resolved_notified_at": iso_utc(r.resolved_notified_at)}
            for r in conn.execute(query.order_by(T_ALERT.c.starts_at, T_ALERT.c.id))]


def client_from(settings) -> AlertmanagerClient | None:
    """The client of the configured Alertmanager (settings.alertmanager_url); None when none is."""
    return AlertmanagerClient(settings.alertmanager_url) if settings.alertmanager_url else None


def describe(silence: dict | None) -> str:
    """A window's silence in a few words for a table: its state, and why when it is not as asked."""
    if silence is None:
        return "-"
    if silence["last_error"] and silence["state"] in ("pending", "expiring", "failed", "withdrawn"):
        return f"{silence['state']}: {silence['last_error']}"
    return silence["state"]

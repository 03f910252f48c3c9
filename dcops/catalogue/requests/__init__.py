"""Hosting requests: the document and its checks (`document`), the workflow (`workflow`), the reads (`queries`)."""

from dcops.catalogue.requests.document import (MAX_REQUEST_BYTES, RequestDoc, needs_security_signoff,
                                               read_request_file, validate_request)
from dcops.catalogue.requests.queries import list_requests, show_request
from dcops.catalogue.requests.workflow import (TRANSITIONS, Placement, advance, approve, preview_placement, reject,
                                               sign_off, submit, transition, withdraw)
from dcops.lifecycle import REQUEST_STATES

__all__ = [
    "MAX_REQUEST_BYTES", "REQUEST_STATES", "TRANSITIONS", "Placement", "RequestDoc", "advance", "approve",
    "list_requests", "needs_security_signoff", "preview_placement", "read_request_file", "reject", "show_request", "sign_off", "submit",
    "transition", "validate_request", "withdraw",
]

"""Who may do what: the roles, the actions each allows, `authorize` for one object and `visible` for a listing."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, NamedTuple

from dcops.errors import Forbidden, NotFound

# A ministry's own people hold these in one ministry each (a person may hold them in several).
MINISTRY_ROLES = ("viewer", "requester")
# The data centre's staff hold these across every ministry.
STAFF_ROLES = ("operator", "security-officer", "auditor")
ROLES = (*MINISTRY_ROLES, *STAFF_ROLES)

_READERS = frozenset(ROLES)

# Each action and the roles that may take it. A ministry role allows it in that ministry only;
# a staff role allows it everywhere. Reading is the floor: who may not read an object is told
# it does not exist (NotFound), who may read it but not act on it is told so (Forbidden).
PERMISSIONS: dict[str, frozenset[str]] = {
    "catalogue.read": _READERS,
    "ministry.read": _READERS,
    "programme.read": _READERS,
    "request.read": _READERS,
    "report.read": _READERS,
    "statement.read": _READERS,
    "maintenance.read": _READERS,
    "incident.read": _READERS,
    "external.read": _READERS,  # external components and their outages (recording them: inventory.write)
    "request.submit": frozenset({"requester", "operator"}),
    "request.withdraw": frozenset({"requester", "operator"}),
    "request.sign-off": frozenset({"security-officer"}),
    "request.approve": frozenset({"operator"}),
    "request.reject": frozenset({"operator"}),
    "request.advance": frozenset({"operator"}),
    "report.freeze": frozenset({"operator"}),
    "audit.read": frozenset({"auditor"}),
    # The data centre's own work, which the CLI does: no ministry role reaches it.
    "inventory.write": frozenset({"operator"}),
    "maintenance.write": frozenset({"operator"}),
    "incident.write": frozenset({"operator"}),
    "status.publish": frozenset({"operator"}),
    "provision.run": frozenset({"operator"}),
    "probe.write": frozenset({"operator"}),
    "portal.manage": frozenset({"operator"}),
}
# Actions on the data centre as a whole (no object) that a ministry role allows too: the catalogue
# is published to every ministry. Any other action without an object is the staff's.
SHARED_ACTIONS = frozenset({"catalogue.read"})
# What each action's object must be readable by first (its read action).
_READ_ACTION = {action: f"{action.split('.')[0]}.read" for action in PERMISSIONS}
_READ_ACTION.update({"request.submit": "ministry.read"})


@dataclass(frozen=True, order=True)
class Grant:
    """One role: in one ministry (its code), or data-centre wide (ministry None) for staff roles."""

    role: str
    ministry: str | None = None


@dataclass(frozen=True)
class Actor:
    """Who is asking: the name the audit log records, and the roles they hold."""

    name: str
    grants: frozenset[Grant]

    def can(self, action: str, ministry: str | None = None) -> bool:
        """May this actor take `action` on an object of `ministry` (None: the data centre as a whole)?"""
        allowed = PERMISSIONS[action]
        for grant in self.grants:
            if grant.role not in allowed:
                continue
            if grant.ministry is None or grant.ministry == ministry:
                return True
            if ministry is None and action in SHARED_ACTIONS:
                return True
        return False

    def ministries(self, action: str) -> frozenset[str] | None:
        """The ministries in which the actor may take `action`; None means every ministry."""
        allowed = PERMISSIONS[action]
        codes = set()
        for grant in self.grants:
            if grant.role in allowed:
                if grant.ministry is None:
                    return None
                codes.add(grant.ministry)
        return frozenset(codes)

    @property
    def is_staff(self) -> bool:
        """Whether the actor holds a data-centre role."""
        return any(grant.ministry is None for grant in self.grants)


class Owned(NamedTuple):
    """An object as authorisation sees it: what it is, its key, and the ministry it belongs to."""

    kind: str  # request, programme, report...
    key: str
    ministry: str | None


def cli_actor(name: str | None = None) -> Actor:
    """The operator at the terminal: the data centre's staff roles, under the name the audit log records.

    Whoever can open the database holds everything in it, so the CLI is staff; the two-person
    rule still binds by name (who signed off may not approve).
    """
    from dcops import audit

    return Actor(name or audit.default_actor(), frozenset(Grant(role) for role in STAFF_ROLES))


def as_actor(actor: Actor | str | None) -> Actor:
    """The actor of a use-case call: an Actor as given, or the CLI's operator under a name (or the OS user)."""
    if isinstance(actor, Actor):
        return actor
    return cli_actor(actor)


def authorize(actor: Actor, action: str, obj: Owned | None = None) -> None:
    """Allow `action` on `obj` (None: the data centre itself), or raise.

    An object the actor may not even read raises NotFound, worded as for an object that does
    not exist, so ids and slugs cannot be probed; one they may read but not act on raises Forbidden.
    """
    if action not in PERMISSIONS:
        raise KeyError(f"unknown action {action!r}")
    ministry = obj.ministry if obj is not None else None
    if actor.can(action, ministry):
        return
    if obj is not None and not actor.can(_READ_ACTION[action], ministry):
        raise NotFound(f"no {obj.kind} {obj.key}")
    noun, verb = action.split(".")
    target = f"{obj.kind} {obj.key}" + (f" of ministry {ministry}" if ministry else "") if obj is not None else noun
    raise Forbidden(f"{actor.name} may not {verb} {target}: "
                    f"that needs the role {' or '.join(sorted(PERMISSIONS[action]))}")


def visible(actor: Actor, action: str, ministry_code_column: Any):
    """The SQL condition that keeps a listing to the rows the actor may take `action` on.

    `ministry_code_column` is the listing's ministry code column, so the scope is in the query.
    """
    from sqlalchemy import false, true

    codes = actor.ministries(action)
    if codes is None:
        return true()
    if not codes:
        return false()
    return ministry_code_column.in_(sorted(codes))

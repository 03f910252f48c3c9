"""The probe history as every reader must see it now: open intervals settled by the read-time rule, states, coverage."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Iterable

from sqlalchemy import bindparam, text
from sqlalchemy.engine import Connection

from dcops.db import Database, iso_utc, read_utc, utcnow
from dcops.health.history import UNKNOWN, settle_open, stale_from
from dcops.vocabulary import IN_SERVICE_STATUSES

UNMONITORED = "unmonitored"


@dataclass(frozen=True)
class CheckNow:
    """What the store knows of one check now: its damped state, its last result, how often it is probed."""

    name: str
    state: str
    last_at: datetime | None
    interval_seconds: int

    def stale_from(self, now: datetime) -> datetime | None:
        """See history.stale_from: when this check's state stopped being trusted, or None."""
        return stale_from(self.state, self.last_at, timedelta(seconds=self.interval_seconds), now)


@dataclass(frozen=True)
class Piece:
    """A stretch of one programme's state; `end` None means it lasts until now."""

    state: str
    start: datetime
    end: datetime | None
    reason: str


def checks_now(conn: Connection, programme_ids: Iterable[int] | None = None) -> dict[int, list[CheckNow]]:
    """Each programme's probed checks (those with a stored state), by programme id."""
    query = ("SELECT e.programme_id, e.name, s.state, s.last_at, e.interval_seconds FROM check_state s "
             "JOIN endpoint e ON e.id = s.endpoint_id")
    if programme_ids is not None:
        ids = sorted({int(i) for i in programme_ids})
        if not ids:
            return {}
        # Integers only, so written into the statement: a report may ask for thousands.
        query += " WHERE e.programme_id IN (" + ", ".join(map(str, ids)) + ")"
    checks: dict[int, list[CheckNow]] = defaultdict(list)
    for programme_id, name, state, last_at, interval in conn.execute(text(query + " ORDER BY e.programme_id, e.name")):
        checks[programme_id].append(CheckNow(name, state, read_utc(conn, last_at), interval))
    return dict(checks)


def settle(state: str, start: datetime, reason: str, checks: list[CheckNow], now: datetime) -> list[Piece]:
    """An open programme-level interval as read at `now`: the part after a check's last result plus
    its grace is unknown ("no results since ..."), whether or not a later result has arrived."""
    pieces = settle_open(state, start, [(c.state, c.stale_from(now)) for c in checks], now)
    if not pieces:  # it starts after `now`
        return [Piece(state, start, None, reason)]
    settled = []
    for index, (piece_state, began, _ended, cause) in enumerate(pieces):
        why = reason if cause < 0 else f"{checks[cause].name}: no results since {iso_utc(checks[cause].last_at)}"
        ended = None if index == len(pieces) - 1 else pieces[index + 1][1]
        settled.append(Piece(piece_state, began, ended, why))
    return settled


def programme_states(database: Database, *, now: datetime | None = None,
                     ministries: Iterable[str] | None = None) -> list[dict]:
    """Each live programme's state now (up, down, unknown, or unmonitored: in service with no
    check), since when and why; the read-time rule applied. `ministries`: only theirs (codes)."""
    now = now or utcnow()
    scope, params = "", {}
    if ministries is not None:
        scope, params = " AND m.code IN :ministries", {"ministries": sorted(ministries) or [""]}
    query = text(
        "SELECT p.id, p.slug, m.code, p.status, i.state, i.started_at, i.reason, "
        "EXISTS (SELECT 1 FROM endpoint e WHERE e.programme_id = p.id) FROM programme p "
        "JOIN ministry m ON m.id = p.ministry_id "
        "LEFT JOIN state_interval i ON i.programme_id = p.id AND i.endpoint_id IS NULL AND i.ended_at IS NULL "
        f"WHERE p.status <> 'retired'{scope} ORDER BY p.slug")
    if ministries is not None:
        query = query.bindparams(bindparam("ministries", expanding=True))
    with database.transaction() as conn:
        rows = conn.execute(query, params).all()
        checks = checks_now(conn, [r[0] for r in rows if r[4] is not None])
        started = {r[0]: read_utc(conn, r[5]) for r in rows}
    states = []
    for programme_id, slug, ministry, status, state, _started, reason, monitored in rows:
        if not monitored:
            if status in IN_SERVICE_STATUSES:
                states.append({"programme": slug, "ministry": ministry, "state": UNMONITORED, "since": None,
                               "reason": "no check: not monitored"})
            continue
        if state is None:
            states.append({"programme": slug, "ministry": ministry, "state": UNKNOWN, "since": None,
                           "reason": "never probed"})
            continue
        last = settle(state, started[programme_id], reason or "", checks.get(programme_id, []), now)[-1]
        states.append({"programme": slug, "ministry": ministry, "state": last.state, "since": iso_utc(last.start),
                       "reason": last.reason})
    return states

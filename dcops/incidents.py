"""Incidents: the numbered record of each stretch of a programme's downtime, and what operators know of it."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Iterable

from sqlalchemy import and_, func, insert, or_, select, update
from sqlalchemy.engine import Connection

from dcops.access import Actor, Owned, as_actor, authorize, visible
from dcops.audit import Event, append, record
from dcops.db import Database, iso_utc, utcnow
from dcops.errors import Conflict, NotFound, UserError
from dcops.lifecycle import INCIDENT_TRANSITIONS, move_incident
from dcops.models import Ministry, Programme, StateInterval, external_component_table, incident_table, \
    incident_update_table

T_INCIDENT = incident_table
T_UPDATE = incident_update_table
T_INTERVAL = StateInterval.__table__
T_PROGRAMME = Programme.__table__
T_MINISTRY = Ministry.__table__

# Who writes what the history shows (an incident opened, two joined): dcops itself.
SYSTEM_ACTOR = "dcops"
# The statuses an operator sets (new and merged are dcops').
OPERATOR_STATUSES = ("investigating", "identified", "monitoring", "resolved")
# An incident is attributed to one of these, or to external:SLUG or dependency:SLUG.
ATTRIBUTION_WORDS = ("data-centre", "ministry-application")
# Classifications whose programmes' incidents are never published (the ministries' page shows them).
UNPUBLISHED_CLASSIFICATIONS = ("confidential", "secret")
MAX_NOTE = 4000
MAX_FIELD = 2000
MAX_TITLE = 200
_URL = re.compile(r"^https?://[^\s/?#@]+[^\s]*$")
# Text a person wrote: no control characters but line breaks and tabs in the longer fields.
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")


def sync(conn: Connection, *, programme_ids: Iterable[int] | None = None, since: datetime | None = None,
         now: datetime | None = None) -> int:
    """Give each stretch of programme-level downtime its incident record, in the caller's transaction.

    A stretch is down intervals end to end. Its record is found by overlap (so a record keeps
    its number as the stretch grows or ends), created when there is none, and joined when the
    history joins two stretches (the later record becomes `merged` into the earlier). Without
    `programme_ids`, every programme from its latest record on (the repair after a crash, and
    the first run over history that had no records). Returns how many records it wrote.
    """
    now = now or utcnow()
    latest = (select(T_INCIDENT.c.programme_id, func.max(T_INCIDENT.c.started_at).label("latest"))
              .where(T_INCIDENT.c.merged_into.is_(None)).group_by(T_INCIDENT.c.programme_id).subquery())
    query = (select(T_INTERVAL.c.programme_id, T_INTERVAL.c.started_at, T_INTERVAL.c.ended_at, T_INTERVAL.c.reason)
             .where(T_INTERVAL.c.endpoint_id.is_(None), T_INTERVAL.c.state == "down"))
    if programme_ids is None:
        query = query.outerjoin(latest, latest.c.programme_id == T_INTERVAL.c.programme_id).where(or_(
            latest.c.latest.is_(None), T_INTERVAL.c.ended_at.is_(None), T_INTERVAL.c.ended_at >= latest.c.latest))
    else:
        ids = sorted(set(programme_ids))
        if not ids:
            return 0
        query = query.where(T_INTERVAL.c.programme_id.in_(ids))
        if since is not None:
            query = query.where(or_(T_INTERVAL.c.ended_at.is_(None), T_INTERVAL.c.ended_at >= since))
    stretches: dict[int, list[list]] = {}
    for row in conn.execute(query.order_by(T_INTERVAL.c.programme_id, T_INTERVAL.c.started_at)):
        own = stretches.setdefault(row.programme_id, [])
        if own and own[-1][1] is not None and row.started_at <= own[-1][1]:
            last = own[-1]
            last[1] = None if row.ended_at is None else max(last[1], row.ended_at)
        else:
            own.append([row.started_at, row.ended_at, row.reason or ""])
    if not stretches:
        return 0
    earliest = min(s[0][0] for s in stretches.values())
    records: dict[int, list] = {}
    for row in conn.execute(select(T_INCIDENT.c.id, T_INCIDENT.c.programme_id, T_INCIDENT.c.started_at,
                                   T_INCIDENT.c.ended_at)
                            .where(T_INCIDENT.c.programme_id.in_(sorted(stretches)),
                                   T_INCIDENT.c.merged_into.is_(None),
                                   or_(T_INCIDENT.c.ended_at.is_(None), T_INCIDENT.c.ended_at >= earliest))
                            .order_by(T_INCIDENT.c.started_at)):
        records.setdefault(row.programme_id, []).append(row)
    written = 0
    opened: list[dict] = []
    events: list[Event] = []
    for programme_id, own in stretches.items():
        for start, end, reason in own:
            overlapping = [r for r in records.get(programme_id, [])
                           if (end is None or r.started_at <= end) and (r.ended_at is None or r.ended_at >= start)]
            if not overlapping:
                opened.append(dict(programme_id=programme_id, started_at=start, ended_at=end, status="new",
                                   reason=reason[:MAX_FIELD], created_at=now, updated_at=now))
                continue
            # Measured time is never overwritten, so a stretch only grows: the earliest record stays.
            kept, *joined = sorted(overlapping, key=lambda r: (r.started_at, r.id))
            for other in joined:
                conn.execute(update(T_INCIDENT).where(T_INCIDENT.c.id == other.id).values(
                    merged_into=kept.id, status="merged", updated_at=now))
                events.append(Event(SYSTEM_ACTOR, "incident.merged", "incident", str(other.id), None,
                                    {"merged_into": kept.id}))
                written += 1
            new_start = min(kept.started_at, start)
            if (new_start, end) != (kept.started_at, kept.ended_at):
                conn.execute(update(T_INCIDENT).where(T_INCIDENT.c.id == kept.id).values(
                    started_at=new_start, ended_at=end, updated_at=now))
                written += 1
    if opened:
        # Two writers seeing the same new stretch (two dcops serve processes on one PostgreSQL) make
        # one record: a row that is there already is skipped, and only those written are audited.
        if conn.dialect.name == "postgresql":
            from sqlalchemy.dialects.postgresql import insert as dialect_insert
        else:
            from sqlalchemy.dialects.sqlite import insert as dialect_insert
        statement = dialect_insert(T_INCIDENT).on_conflict_do_nothing(
            index_elements=["programme_id", "started_at"]).returning(
            T_INCIDENT.c.id, T_INCIDENT.c.programme_id, T_INCIDENT.c.started_at, T_INCIDENT.c.reason,
            sort_by_parameter_order=True)
        for row in conn.execute(statement, opened):
            events.append(Event(SYSTEM_ACTOR, "incident.opened", "incident", str(row.id), None,
                                {"programme_id": row.programme_id, "started_at": iso_utc(row.started_at),
                                 "reason": row.reason}))
            written += 1
    if events:
        append(conn, sorted(events, key=lambda e: int(e.object_key)))
    return written


# --- reading ----------------------------------------------------------------------------------


def _columns():
    return (T_INCIDENT.c.id, T_INCIDENT.c.programme_id, T_PROGRAMME.c.slug, T_PROGRAMME.c.name,
            T_PROGRAMME.c.short_name, T_PROGRAMME.c.classification, T_MINISTRY.c.code.label("ministry"),
            T_INCIDENT.c.started_at, T_INCIDENT.c.ended_at, T_INCIDENT.c.status, T_INCIDENT.c.reason,
            T_INCIDENT.c.title, T_INCIDENT.c.cause, T_INCIDENT.c.action, T_INCIDENT.c.attributed_to,
            T_INCIDENT.c.postmortem_url, T_INCIDENT.c.released, T_INCIDENT.c.merged_into, T_INCIDENT.c.updated_at)


def _joined():
    return (T_INCIDENT.join(T_PROGRAMME, T_PROGRAMME.c.id == T_INCIDENT.c.programme_id)
            .join(T_MINISTRY, T_MINISTRY.c.id == T_PROGRAMME.c.ministry_id))


def as_dict(row, *, now: datetime) -> dict:
    """An incident record as plain data (times ISO 8601 UTC); `seconds` its length so far."""
    end = row.ended_at or now
    return {
        "number": row.id, "programme": row.slug, "programme_name": row.name, "short_name": row.short_name,
        "ministry": row.ministry, "start": iso_utc(row.started_at),
        "end": iso_utc(row.ended_at) if row.ended_at is not None else None, "ongoing": row.ended_at is None,
        "seconds": max((end - row.started_at).total_seconds(), 0.0), "status": row.status,
        "title": row.title or "", "reason": row.reason or "", "cause": row.cause or "", "action": row.action or "",
        "attributed_to": row.attributed_to, "postmortem_url": row.postmortem_url, "released": bool(row.released),
        "publishable": row.classification not in UNPUBLISHED_CLASSIFICATIONS,
        "merged_into": row.merged_into,
    }


def records_between(conn: Connection, start: datetime, end: datetime, *, programme_ids: Iterable[int] | None = None
                    ) -> dict[int, list]:
    """The incident records (not merged) overlapping [start, end), per programme id, by start."""
    query = (select(*_columns()).select_from(_joined())
             .where(T_INCIDENT.c.merged_into.is_(None), T_INCIDENT.c.started_at < end,
                    or_(T_INCIDENT.c.ended_at.is_(None), T_INCIDENT.c.ended_at > start)))
    if programme_ids is not None:
        query = query.where(T_INCIDENT.c.programme_id.in_(sorted(set(programme_ids))))
    found: dict[int, list] = {}
    for row in conn.execute(query.order_by(T_INCIDENT.c.started_at, T_INCIDENT.c.id)):
        found.setdefault(row.programme_id, []).append(row)
    return found


def updates_of(conn: Connection, numbers: Iterable[int]) -> dict[int, list[dict]]:
    """Each incident's timed updates, oldest first."""
    numbers = sorted(set(numbers))
    found: dict[int, list[dict]] = {number: [] for number in numbers}
    for chunk in range(0, len(numbers), 500):
        for row in conn.execute(select(T_UPDATE).where(T_UPDATE.c.incident_id.in_(numbers[chunk:chunk + 500]))
                                .order_by(T_UPDATE.c.at, T_UPDATE.c.id)):
            found[row.incident_id].append({"at": iso_utc(row.at), "status": row.status, "note": row.note,
                                           "by": row.actor})
    return found


def list_incidents(database: Database, *, start: datetime, end: datetime, actor: "Actor | str | None" = None,
                   programme: str | None = None, status: str | None = None, now: datetime | None = None,
                   tz=None, major_incident_budget_percent: float = 50.0) -> list[dict]:
    """The incidents overlapping [start, end) (and every one still going on), newest first; the
    history is brought up to date first (a repair, if a writer stopped half-way). Given the data
    centre's zone `tz`, each carries its figures from the uptime report of the month it began."""
    reader = as_actor(actor)
    now = now or utcnow()
    if status is not None and status not in INCIDENT_TRANSITIONS:
        raise UserError(f"--status: one of {', '.join(INCIDENT_TRANSITIONS)}, not {status!r}")
    with database.transaction(immediate=True) as conn:
        sync(conn, now=now)
        query = (select(*_columns()).select_from(_joined())
                 .where(T_INCIDENT.c.merged_into.is_(None) if status != "merged" else T_INCIDENT.c.status == "merged",
                        or_(and_(T_INCIDENT.c.started_at < end,
                                 or_(T_INCIDENT.c.ended_at.is_(None), T_INCIDENT.c.ended_at > start)),
                            # and every one still going on, whenever it began
                            T_INCIDENT.c.ended_at.is_(None)),
                        visible(reader, "incident.read", T_MINISTRY.c.code)))
        if programme is not None:
            _programme(conn, reader, programme)
            query = query.where(T_PROGRAMME.c.slug == programme)
        if status is not None and status != "merged":
            query = query.where(T_INCIDENT.c.status == status)
        rows = conn.execute(query.order_by(T_INCIDENT.c.started_at.desc(), T_INCIDENT.c.id.desc())).all()
        found = [as_dict(row, now=now) for row in rows]
        if tz is not None:
            _with_report_figures(conn, found, tz=tz, now=now, major_incident_budget_percent=major_incident_budget_percent)
    return found


def _with_report_figures(conn: Connection, found: list[dict], *, tz, now: datetime,
                         major_incident_budget_percent: float) -> None:
    """Each incident's figures as the uptime report of the month it began gives them: the downtime
    that counts (outside announced maintenance), its attribution, whether it is major."""
    from dcops.reports.documents import resolve_period, uptime_document

    groups: dict[tuple[str, str], list[dict]] = {}
    for incident in found:
        began = datetime.fromisoformat(incident["start"].replace("Z", "+00:00")).astimezone(tz)
        groups.setdefault((f"{began:%Y-%m}", incident["programme"]), []).append(incident)
    for (month, slug), members in groups.items():
        period = resolve_period(month, None, None, tz)
        document = uptime_document(conn, period, tz=tz, now=now, data_centre_name="", programme=slug,
                                   major_incident_budget_percent=major_incident_budget_percent)
        computed: dict[int, list[dict]] = {}
        for programme in document["programmes"]:
            for piece in programme["incidents"]:
                if piece["number"] is not None:
                    computed.setdefault(piece["number"], []).append(piece)
        for incident in members:
            pieces = computed.get(incident["number"], [])
            incident["counted_seconds"] = sum(p["seconds"] for p in pieces)
            incident["own_seconds"] = sum(p["attribution"]["own_seconds"] for p in pieces)
            incident["dependency_seconds"] = sum(p["attribution"]["dependency_seconds"] for p in pieces)
            incident["dependencies"] = [d for p in pieces for d in p["attribution"]["dependencies"]]
            incident["major"] = any(p["major"] for p in pieces)
            budget = [p["error_budget_used_percent"] for p in pieces if p["error_budget_used_percent"] is not None]
            incident["error_budget_used_percent"] = round(sum(budget), 4) if budget else None


def show(database: Database, number: int, *, actor: "Actor | str | None" = None, now: datetime | None = None,
         tz=None, major_incident_budget_percent: float = 50.0) -> dict:
    """One incident with its timed updates, the alerts Alertmanager sent for it (`alerts`, see
    dcops.alertmanager.alerts_during) and, given `tz`, its figures, as list_incidents gives them."""
    reader = as_actor(actor)
    now = now or utcnow()
    with database.transaction(immediate=True) as conn:
        sync(conn, now=now)
        row = _incident(conn, reader, number, "incident.read")
        found = as_dict(row, now=now)
        found["updates"] = updates_of(conn, [number])[number]
        from dcops.alertmanager import alerts_during  # the pages Alertmanager sent for it (its webhook)

        found["alerts"] = alerts_during(conn, row.programme_id, row.started_at, row.ended_at)
        if tz is not None:
            _with_report_figures(conn, [found], tz=tz, now=now,
                                 major_incident_budget_percent=major_incident_budget_percent)
    return found


def _incident(conn: Connection, actor: Actor, number: int, action: str):
    row = conn.execute(select(*_columns()).select_from(_joined()).where(T_INCIDENT.c.id == number)).first()
    if row is None:
        raise NotFound(f"no incident {number} (see `dcops incident list`)")
    authorize(actor, action, Owned("incident", str(number), row.ministry))
    return row


def _programme(conn: Connection, actor: Actor, slug: str):
    row = conn.execute(select(T_PROGRAMME.c.id, T_MINISTRY.c.code).select_from(
        T_PROGRAMME.join(T_MINISTRY, T_MINISTRY.c.id == T_PROGRAMME.c.ministry_id))
        .where(T_PROGRAMME.c.slug == slug)).first()
    if row is None:
        raise NotFound(f"no programme {slug!r} (see `dcops programme list`)")
    authorize(actor, "programme.read", Owned("programme", slug, row.code))
    return row


# --- annotating -------------------------------------------------------------------------------


def _text(value: str | None, option: str, limit: int, *, lines: bool) -> str | None:
    if value is None:
        return None
    value = value.strip()
    if len(value) > limit:
        raise UserError(f"{option}: at most {limit} characters")
    if _CONTROL.search(value) or (not lines and any(ch in value for ch in "\r\n\t")):
        raise UserError(f"{option}: plain text" + (" on one line" if not lines else "") + ", without control characters")
    return value


def check_attribution(conn: Connection, value: str | None, *, programme_slug: str) -> str | None:
    """`--attributed-to` as stored: data-centre, ministry-application, external:SLUG (a declared
    external component) or dependency:SLUG (another programme); "" or "none" clears it (None)."""
    if value is None:
        return None
    value = value.strip()
    if value in ("", "none"):
        return ""
    if value in ATTRIBUTION_WORDS:
        return value
    kind, _, slug = value.partition(":")
    if kind == "external" and slug:
        found = conn.execute(select(external_component_table.c.id)
                             .where(external_component_table.c.slug == slug)).first()
        if found is None:
            raise UserError(f"--attributed-to: no external component {slug!r} (declare it in the inventory's "
                            "external_components)")
        return value
    if kind == "dependency" and slug:
        if slug == programme_slug:
            raise UserError("--attributed-to: a programme is not its own dependency (say data-centre or "
                            "ministry-application)")
        if conn.execute(select(T_PROGRAMME.c.id).where(T_PROGRAMME.c.slug == slug)).first() is None:
            raise UserError(f"--attributed-to: no programme {slug!r}")
        return value
    raise UserError(f"--attributed-to: data-centre, ministry-application, external:COMPONENT or "
                    f"dependency:PROGRAMME, not {value!r}")


def update_incident(database: Database, number: int, *, actor: "Actor | str | None" = None,
                    status: str | None = None, note: str | None = None, title: str | None = None,
                    cause: str | None = None, action: str | None = None, attributed_to: str | None = None,
                    postmortem_url: str | None = None, released: bool | None = None,
                    now: datetime | None = None) -> dict:
    """Annotate an incident: its status (with a timed update), what happened and what was done,
    whose it was, its post-incident review, and whether the public status page shows it.
    Checked, audited, one transaction; None leaves a field as it is, "" clears it."""
    operator = as_actor(actor)
    now = now or utcnow()
    note = _text(note, "--note", MAX_NOTE, lines=True)
    title = _text(title, "--title", MAX_TITLE, lines=False)
    cause = _text(cause, "--cause", MAX_FIELD, lines=True)
    action = _text(action, "--action", MAX_FIELD, lines=True)
    if postmortem_url is not None:
        postmortem_url = postmortem_url.strip()
        if postmortem_url and (len(postmortem_url) > MAX_FIELD or not _URL.match(postmortem_url)
                               or _CONTROL.search(postmortem_url)):
            raise UserError(f"--postmortem: an http:// or https:// address, not {postmortem_url!r}")
    if status is not None and status not in OPERATOR_STATUSES:
        raise UserError(f"--status: one of {', '.join(OPERATOR_STATUSES)}, not {status!r}")
    if all(v is None for v in (status, note, title, cause, action, attributed_to, postmortem_url, released)):
        raise UserError("nothing to change: give --status, --note, --title, --cause, --action, --attributed-to, "
                        "--postmortem, --release or --withhold")
    with database.transaction(immediate=True) as conn:
        sync(conn, now=now)
        row = _incident(conn, operator, number, "incident.write")
        if row.merged_into is not None:
            raise Conflict(f"incident {number} was joined to incident {row.merged_into}: update that one")
        attributed_to = check_attribution(conn, attributed_to, programme_slug=row.slug)
        if released and row.classification in UNPUBLISHED_CLASSIFICATIONS:
            raise Conflict(f"incident {number} is of {row.slug}, a {row.classification} programme: its incidents "
                           "are not published (the ministries' status page shows them)")
        if status == "resolved" and row.ended_at is None:
            raise Conflict(f"incident {number}: {row.slug} is still down (since {iso_utc(row.started_at)}); "
                           "it can be resolved once its checks say it is up")
        before, after = {}, {}
        for field, value in (("title", title), ("cause", cause), ("action", action),
                             ("attributed_to", attributed_to), ("postmortem_url", postmortem_url),
                             ("released", released)):
            if value is None:
                continue
            stored = value if value != "" or field in ("title", "cause", "action") else None
            if stored != getattr(row, field):
                before[field], after[field] = getattr(row, field), stored
        if after:
            conn.execute(update(T_INCIDENT).where(T_INCIDENT.c.id == number).values(**after, updated_at=now))
            record(conn, Event(operator.name, "incident.updated", "incident", str(number), before, after))
        if status is not None and status != row.status:
            move_incident(conn, row, status, actor=operator.name, note=note or "", now=now)
        elif note:
            conn.execute(insert(T_UPDATE).values(incident_id=number, at=now, actor=operator.name,
                                                 status=row.status, note=note))
            record(conn, Event(operator.name, "incident.noted", "incident", str(number), None,
                               {"status": row.status, "note": note}))
        elif not after:
            raise UserError(f"incident {number} already says so: nothing changed")
        found = as_dict(_incident(conn, operator, number, "incident.read"), now=now)
        found["updates"] = updates_of(conn, [number])[number]
    return found


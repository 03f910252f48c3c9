"""The status page: each programme's state now and over 90 days, incidents and announced maintenance,
for the public or for the ministries, published as a static site with an Atom and an iCalendar feed.

What the public page shows (audience "public"):
- the programmes of classification public or internal only (a confidential or secret programme is
  not on it at all: neither its state, nor its bars, nor its maintenance);
- of their incidents, only those an operator released (`dcops incident update N --release`), with
  their timed updates (what was said and when, not who said it); the probe's own reason, the cause,
  action, attribution and post-incident review stay on the ministries' page;
- announced maintenance (recorded before it began) of the programmes it shows, without the
  cluster's name or the change reference.
The ministries' page (audience "ministries") carries everything: every live programme, every
incident, with what operators know of it.
"""

from __future__ import annotations

import math
import re
from collections import defaultdict
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable
from zoneinfo import ZoneInfo

from sqlalchemy import select, union
from sqlalchemy.engine import Connection

from dcops import display
from dcops.db import iso_utc, utcnow
from dcops.errors import UserError

if TYPE_CHECKING:
    from dcops.access import Actor
    from dcops.db import Database
    from dcops.settings import Settings

AUDIENCES = ("public", "ministries")
DEFAULT_DAYS = 90
MAX_DAYS = 366
# Incidents ended this many days ago or less are listed as recent; maintenance as well.
RECENT_DAYS = 14
# A day is "no data" when at least this share of its measured time had no results (less is
# told in the day's words: "no data 20 min"); any downtime makes it a "down" day.
NO_DATA_DAY_SHARE = 0.5
# The files a publish writes, each replaced atomically.
INDEX, FEED, CALENDAR, STYLESHEET = "index.html", "feed.atom", "maintenance.ics", "style.css"
# The stable part of every feed entry's id and calendar event's UID (RFC 4151 tag URIs).
TAG_AUTHORITY = "dcops"

STATE_WORDS = {"up": "Up", "down": "Down", "maintenance": "Maintenance", "nodata": "No data",
               "none": "Not in service"}
INCIDENT_STATUS_WORDS = {"new": "Detected", "investigating": "Investigating", "identified": "Identified",
                         "monitoring": "Monitoring", "resolved": "Resolved", "reopened": "Reopened",
                         "merged": "Merged"}
# Statuses an operator is still working in: such an incident is current even after the programme is up.
WORKING_STATUSES = ("investigating", "identified", "monitoring", "reopened")

# Text from people and files: no control characters (but line breaks and tabs), no bidirectional
# overrides, nothing XML 1.0 cannot carry (lone surrogates, U+FFFE, U+FFFF).
_UNSAFE = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069"
                     "\ud800-\udfff\ufffe\uffff]")


def clean_text(value: Any) -> str:
    """Text fit for a page, a feed and a calendar: control and invisible direction characters
    dropped, CR LF and CR made LF; None -> ""."""
    if value is None:
        return ""
    text = str(value).replace("\r\n", "\n").replace("\r", "\n")
    return _UNSAFE.sub("", text)


# --- the view: plain data ----------------------------------------------------------------------


def day_cell(share) -> dict:
    """One day of the bar from a DayShare (seconds per bucket): its worst state and its minutes.

    State: "none" when no time of it was measured (before the programme's service, or to come),
    "down" when it had any downtime, "nodata" when at least NO_DATA_DAY_SHARE of its measured time
    had no results, "maintenance" when it had announced maintenance, else "up". Minutes are whole,
    rounded up, so that 20 s of downtime reads "1 min", never "0 min".
    """
    measured = share.up + share.down + share.maintenance + share.unknown
    if measured <= 0:
        state = "none"
    elif share.down > 0:
        state = "down"
    elif share.unknown >= NO_DATA_DAY_SHARE * measured:
        state = "nodata"
    elif share.maintenance > 0:
        state = "maintenance"
    else:
        state = "up"
    return {"day": share.day.isoformat(), "state": state, "down_minutes": _minutes(share.down),
            "maintenance_minutes": _minutes(share.maintenance), "nodata_minutes": _minutes(share.unknown)}


def _minutes(seconds: float) -> int:
    return math.ceil(seconds / 60 - 1e-9) if seconds > 0 else 0


def _state_now(history, now: datetime) -> tuple[str, datetime | None, str]:
    """(state, since, reason) of a programme now, from its spans as read at `now` (the open one settled)."""
    if not history.has_checks:
        return "nodata", None, "not monitored"
    state, since, reason = "nodata", None, "no results"
    for span in reversed(history.spans):
        if span.start <= now and (span.end is None or span.end > now):
            state = "nodata" if span.state == "unknown" else span.state
            since, reason = span.start, span.reason
            break
    if state != "up" and any(w.announced and w.start <= now < w.end for w in history.windows):
        return "maintenance", since, reason
    return state, since, reason


def local_text(moment: datetime | None, tz: ZoneInfo) -> str:
    """A time as a reader of the data centre's zone reads it: '12 Mar 2026 14:05'."""
    if moment is None:
        return ""
    local = moment.astimezone(tz)
    return f"{local.day} {local:%b %Y %H:%M}"


def duration_text(seconds: float) -> str:
    """A length of time in words: 42 min, 3 h 5 min, 2 days 4 h."""
    minutes = _minutes(seconds)
    if minutes < 60:
        return f"{minutes}\u00a0min"
    hours, minutes = divmod(minutes, 60)
    if hours < 48:
        return f"{hours}\u00a0h" + (f" {minutes}\u00a0min" if minutes else "")
    days, hours = divmod(hours, 24)
    return f"{days}\u00a0days" + (f" {hours}\u00a0h" if hours else "")


def _zone_text(tz: ZoneInfo, now: datetime) -> str:
    offset = now.astimezone(tz).strftime("%z")
    return f"{tz.key}, UTC{offset[:3]}:{offset[3:]}"


def status_view(conn: Connection, *, now: datetime, tz: ZoneInfo, audience: str, days: int = DEFAULT_DAYS) -> dict:
    """The status page's data, as read at `now`, for `audience` ("public" or "ministries").

    Programmes in service grouped by ministry, each with its state now, one cell per local day
    of the last `days` (today last, partial), and its availability over them (a 0-1 ratio; None
    without data); the current incidents (still down, or still worked on) and those of the last
    RECENT_DAYS days, each with its timed updates; announced maintenance under way and to come
    (and of the last RECENT_DAYS days, for the feeds). What the public sees: the module's docstring.
    All text is cleaned (clean_text); times are ISO 8601 UTC, with the local text beside them.
    """
    from dcops.incidents import UNPUBLISHED_CLASSIFICATIONS, as_dict, records_between, updates_of
    from dcops.reports.queries import uptime_inputs
    from dcops.reports.uptime import programme_uptime, range_bounds

    if audience not in AUDIENCES:
        raise UserError(f"--audience: public or ministries, not {audience!r}")
    if not 1 <= days <= MAX_DAYS:
        raise UserError(f"days: from 1 to {MAX_DAYS}, not {days}")
    public = audience == "public"
    today = now.astimezone(tz).date()
    first = today - timedelta(days=days - 1)
    start, end = range_bounds(first, today, tz)
    histories, _windows = uptime_inputs(conn, start=start, end=end, now=now)
    facts = _programme_facts(conn, [h.id for h in histories])

    shown = {}
    for history in histories:
        classification, status = facts.get(history.id, ("secret", "retired"))
        if status == "retired" or (history.service_end is not None and history.service_end <= now):
            continue
        if public and classification in UNPUBLISHED_CLASSIFICATIONS:
            continue
        shown[history.id] = (history, classification)

    counts = {state: 0 for state in ("up", "down", "maintenance", "nodata")}
    ministries: dict[str, dict] = {}
    names: dict[int, str] = {}
    for programme_id, (history, classification) in shown.items():
        figures = programme_uptime(history.spans, history.windows, start=start, end=end, now=now,
                                   target_percent=history.target_percent, tz=tz,
                                   service_start=history.service_start, service_end=history.service_end)
        cells = [day_cell(share) for share in figures.days]
        state, since, reason = _state_now(history, now)
        counts[state] += 1
        label = clean_text(history.short_name or history.name)
        names[programme_id] = label
        entry = {
            "slug": history.slug, "name": clean_text(history.name), "label": label,
            "state": state, "state_word": STATE_WORDS[state],
            "since": iso_utc(since) if since is not None else None, "since_text": local_text(since, tz),
            "availability": None if figures.availability is None else round(figures.availability, 6),
            "availability_text": display.share(figures.availability),
            "target_percent": history.target_percent,
            "days": cells,
            "days_down": sum(1 for c in cells if c["state"] == "down"),
            "days_nodata": sum(1 for c in cells if c["state"] == "nodata"),
            "days_maintenance": sum(1 for c in cells if c["state"] == "maintenance"),
        }
        if not public:
            entry.update(classification=classification, reason=clean_text(reason), tier=history.tier)
        group = ministries.setdefault(history.ministry, {"code": history.ministry,
                                                         "name": clean_text(history.ministry_name),
                                                         "programmes": []})
        group["programmes"].append(entry)
    groups = sorted(ministries.values(), key=lambda g: (g["name"].casefold(), g["code"]))
    for group in groups:
        group["programmes"].sort(key=lambda p: (p["label"].casefold(), p["slug"]))
        group["counts"] = {state: sum(1 for p in group["programmes"] if p["state"] == state) for state in counts}

    incidents = _incidents(conn, shown, names, now=now, tz=tz, public=public, as_dict=as_dict,
                           records_between=records_between, updates_of=updates_of)
    maintenance = _maintenance(conn, shown, names, now=now, tz=tz, public=public)
    total = sum(counts.values())
    return {
        "audience": audience,
        "generated_at": iso_utc(now),
        "generated_text": local_text(now, tz),
        "timezone": tz.key,
        "zone_text": _zone_text(tz, now),
        "days": days,
        "first_day": first.isoformat(),
        "last_day": today.isoformat(),
        "programme_count": total,
        "counts": counts,
        "ministries": groups,
        "incidents": {"current": [i for i in incidents if i["current"]],
                      "recent": [i for i in incidents if not i["current"]]},
        "maintenance": {"in_progress": [w for w in maintenance if w["phase"] == "in progress"],
                        "upcoming": [w for w in maintenance if w["phase"] == "upcoming"],
                        "all": maintenance},
    }


def _programme_facts(conn: Connection, ids: list[int]) -> dict[int, tuple[str, str]]:
    from dcops.models import Programme

    table = Programme.__table__
    found: dict[int, tuple[str, str]] = {}
    for chunk in range(0, len(ids), 900):
        for row in conn.execute(select(table.c.id, table.c.classification, table.c.status)
                                .where(table.c.id.in_(ids[chunk:chunk + 900]))):
            found[row.id] = (row.classification, row.status)
    return found


def _incidents(conn: Connection, shown: dict, names: dict[int, str], *, now: datetime, tz: ZoneInfo,
               public: bool, as_dict, records_between, updates_of) -> list[dict]:
    """The incidents of the shown programmes still open or ended in the last RECENT_DAYS days, newest first."""
    since = now - timedelta(days=RECENT_DAYS)
    records = records_between(conn, since, now + timedelta(microseconds=1), programme_ids=list(shown))
    chosen = []
    for programme_id, rows in records.items():
        for row in rows:
            incident = as_dict(row, now=now)
            if public and not (incident["released"] and incident["publishable"]):
                continue
            chosen.append((programme_id, incident))
    updates = updates_of(conn, [incident["number"] for _pid, incident in chosen]) if chosen else {}
    found = []
    for programme_id, incident in chosen:
        started = _parse(incident["start"])
        ended = _parse(incident["end"]) if incident["end"] else None
        label = names[programme_id]
        said = []
        for update in updates.get(incident["number"], []):
            at = _parse(update["at"])
            item = {"at": update["at"], "at_text": local_text(at, tz), "status": update["status"],
                    "status_word": INCIDENT_STATUS_WORDS.get(update["status"], update["status"]),
                    "note": clean_text(update["note"])}
            if not public:
                item["by"] = clean_text(update["by"])
            said.append(item)
        current = incident["ongoing"] or incident["status"] in WORKING_STATUSES
        view = {
            "number": incident["number"], "programme": incident["programme"], "label": label,
            "ministry": incident["ministry"],
            "title": clean_text(incident["title"]) or f"{label}: {'unavailable' if incident['ongoing'] else 'outage'}",
            "start": incident["start"], "start_text": local_text(started, tz),
            "end": incident["end"], "end_text": local_text(ended, tz),
            "ongoing": incident["ongoing"], "current": current,
            "duration_text": duration_text(incident["seconds"]),
            "status": incident["status"],
            "status_word": INCIDENT_STATUS_WORDS.get(incident["status"], incident["status"]),
            "updates": said,
            "updated": max([incident["start"], *(u["at"] for u in said), *([incident["end"]] if ended else [])]),
        }
        if not public:
            view.update(reason=clean_text(incident["reason"]), cause=clean_text(incident["cause"]),
                        action=clean_text(incident["action"]), attributed_to=clean_text(incident["attributed_to"]),
                        postmortem_url=clean_text(incident["postmortem_url"]) or None,
                        released=incident["released"])
        found.append(view)
    found.sort(key=lambda i: (i["start"], i["number"]), reverse=True)
    return found


def _maintenance(conn: Connection, shown: dict, names: dict[int, str], *, now: datetime, tz: ZoneInfo,
                 public: bool) -> list[dict]:
    """Announced windows (recorded before they began) ending after RECENT_DAYS days ago, soonest first;
    cancelled ones too (phase "cancelled"), so that a subscribed calendar drops them. Public: only
    those of the shown programmes, naming only those."""
    from dcops.models import Allocation, Cluster, Host, MaintenanceWindow

    window, cluster = MaintenanceWindow.__table__, Cluster.__table__
    rows = conn.execute(
        select(window.c.id, window.c.programme_id, window.c.cluster_id, cluster.c.name.label("cluster"),
               window.c.starts_at, window.c.ends_at, window.c.recorded_at, window.c.change_ref, window.c.reason,
               window.c.cancelled_at)
        .outerjoin(cluster, cluster.c.id == window.c.cluster_id)
        .where(window.c.ends_at > now - timedelta(days=RECENT_DAYS), window.c.recorded_at <= window.c.starts_at)
        .order_by(window.c.starts_at, window.c.id)).all()
    on_cluster: dict[int, set[int]] = defaultdict(set)
    clusters = sorted({r.cluster_id for r in rows if r.cluster_id is not None})
    if clusters:
        allocation, host = Allocation.__table__, Host.__table__
        placed = union(select(allocation.c.programme_id, allocation.c.cluster_id)
                       .where(allocation.c.cluster_id.in_(clusters)),
                       select(host.c.programme_id, host.c.cluster_id).where(host.c.cluster_id.in_(clusters)))
        for programme_id, cluster_id in conn.execute(placed):
            if programme_id is not None:
                on_cluster[cluster_id].add(programme_id)
    found = []
    for row in rows:
        affected = ({row.programme_id} if row.programme_id is not None else on_cluster.get(row.cluster_id, set()))
        affected = sorted((names[i] for i in affected if i in shown), key=str.casefold)
        if public and not affected:
            continue
        start, end = row.starts_at, row.ends_at
        if row.cancelled_at is not None:
            phase = "cancelled"
        elif start <= now < end:
            phase = "in progress"
        elif now < start:
            phase = "upcoming"
        else:
            phase = "past"
        item = {"id": row.id, "start": iso_utc(start), "start_text": local_text(start, tz), "end": iso_utc(end),
                "end_text": local_text(end, tz), "duration_text": duration_text((end - start).total_seconds()),
                "phase": phase, "reason": clean_text(row.reason), "programmes": affected,
                "recorded_at": iso_utc(row.recorded_at),
                "cancelled_at": iso_utc(row.cancelled_at) if row.cancelled_at is not None else None}
        if not public:
            item.update(cluster=clean_text(row.cluster) or None, change_ref=clean_text(row.change_ref))
        found.append(item)
    return found


def _parse(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


# --- rendering: pure, from the view -----------------------------------------------------------


def bar_runs(cells: list[dict]) -> list[dict]:
    """The bar's marks: consecutive days of the same plain state ("up", or "none") drawn as one
    mark; a day with minutes to tell (down, maintenance, no data) is a mark of its own. Each has
    its first day's position `x`, its length in days `width`, its state and its words."""
    runs: list[dict] = []
    for index, cell in enumerate(cells):
        plain = cell["state"] in ("up", "none") and not cell["nodata_minutes"]
        last = runs[-1] if runs else None
        if plain and last is not None and last["plain"] and last["state"] == cell["state"]:
            last["width"] += 1
            last["last"] = cell["day"]
            continue
        runs.append({"x": index, "width": 1, "state": cell["state"], "plain": plain, "first": cell["day"],
                     "last": cell["day"], "cell": cell})
    for run in runs:
        when = _day_text(run["first"]) if run["first"] == run["last"] else \
            f"{_day_text(run['first'])} to {_day_text(run['last'])}"
        run["words"] = f"{when}: {cell_words(run['cell'])}"
    return runs


def cell_words(cell: dict) -> str:
    """A day in words: 'Down 42 min', 'Maintenance 2 h', 'No data', 'Up (no data 20 min)'."""
    parts = []
    if cell["state"] == "none":
        return STATE_WORDS["none"]
    if cell["down_minutes"]:
        parts.append(f"down {duration_text(cell['down_minutes'] * 60)}")
    if cell["maintenance_minutes"]:
        parts.append(f"maintenance {duration_text(cell['maintenance_minutes'] * 60)}")
    if cell["nodata_minutes"]:
        parts.append(f"no data {duration_text(cell['nodata_minutes'] * 60)}")
    head = STATE_WORDS[cell["state"]]
    detail = ", ".join(parts)
    return f"{head} ({detail})" if detail else head


def _day_text(day: str) -> str:
    moment = date.fromisoformat(day)
    return f"{moment.day} {moment:%b}"


def bar_summary(programme: dict) -> str:
    """The 90 days of a programme in one line of words, for screen readers and print."""
    cells = programme["days"]
    known = [c for c in cells if c["state"] != "none"]
    parts = [f"{sum(1 for c in known if c['state'] == 'up')} up"]
    for key, word in (("days_down", "with downtime"), ("days_maintenance", "with maintenance"),
                      ("days_nodata", "without data")):
        if programme[key]:
            parts.append(f"{programme[key]} {word}")
    missing = len(cells) - len(known)
    if missing:
        parts.append(f"{missing} not in service")
    return f"{len(cells)} days: " + ", ".join(parts)


def notable_days(programme: dict) -> list[str]:
    """The days of downtime, maintenance or no data, each in words ('12 Mar: down 42 min')."""
    return [f"{_day_text(c['day'])}: {cell_words(c)}" for c in programme["days"]
            if c["state"] in ("down", "maintenance", "nodata")]


def headline(view: dict) -> str:
    """The page's first sentence: 'All 812 programmes are up.' or '2 down, 1 under maintenance, ...'."""
    counts, total = view["counts"], view["programme_count"]
    if total == 0:
        return "No programme is listed."
    if counts["up"] == total:
        return f"All {total:,} programmes are up."
    parts = []
    for state, word in (("down", "down"), ("maintenance", "under maintenance"), ("nodata", "without data now"),
                        ("up", "up")):
        if counts[state]:
            parts.append(f"{counts[state]:,} {word}")
    return f"Of {total:,} programmes: " + ", ".join(parts) + "."


def atom_entries(view: dict) -> list[dict]:
    """One feed entry per incident update and per announced maintenance window, newest first."""
    entries = []
    for incident in [*view["incidents"]["current"], *view["incidents"]["recent"]]:
        for index, update in enumerate(incident["updates"], start=1):
            entries.append({
                "id": f"tag:{TAG_AUTHORITY},{update['at'][:10]}:incident/{incident['number']}/update/{index}",
                "title": f"{incident['label']}: {update['status_word']}: {incident['title']}",
                "updated": update["at"], "published": update["at"],
                "link": f"{INDEX}#incident-{incident['number']}",
                "summary": update["note"] or f"{update['status_word']} ({update['at_text']}).",
                "category": "incident",
            })
    for window in view["maintenance"]["all"]:
        changed = window["cancelled_at"] or window["recorded_at"]
        what = ", ".join(window["programmes"]) or window.get("cluster") or "the data centre"
        prefix = "Cancelled maintenance" if window["phase"] == "cancelled" else "Maintenance"
        entries.append({
            "id": f"tag:{TAG_AUTHORITY},{window['recorded_at'][:10]}:maintenance/{window['id']}",
            "title": f"{prefix}: {what}, {window['start_text']} to {window['end_text']}",
            "updated": changed, "published": window["recorded_at"],
            "link": f"{INDEX}#maintenance-{window['id']}",
            "summary": f"{window['reason']} ({window['start_text']} to {window['end_text']}, {view['timezone']}"
                       f"{'; cancelled' if window['phase'] == 'cancelled' else ''}).",
            "category": "maintenance",
        })
    entries.sort(key=lambda e: (e["updated"], e["id"]), reverse=True)
    return entries


def ical_escape(text: str) -> str:
    """An RFC 5545 TEXT value: backslash, semicolon, comma and line breaks escaped."""
    return (clean_text(text).replace("\\", "\\\\").replace(";", "\\;").replace(",", "\\,")
            .replace("\n", "\\n").replace("\t", " "))


def ical_fold(line: str) -> str:
    """One content line folded at 75 octets (RFC 5545 3.1), never inside a UTF-8 character; CRLF ended."""
    pieces, current, size = [], [], 0
    for char in line:
        width = len(char.encode("utf-8"))
        limit = 75 if not pieces else 74  # a continuation line starts with a space
        if size + width > limit:
            pieces.append("".join(current))
            current, size = [], 0
        current.append(char)
        size += width
    pieces.append("".join(current))
    return "\r\n ".join(pieces) + "\r\n"


def _ical_time(iso: str) -> str:
    return _parse(iso).strftime("%Y%m%dT%H%M%SZ")


def icalendar_text(view: dict, *, calendar_name: str) -> str:
    """The announced maintenance windows as an RFC 5545 calendar: one VEVENT per window, its UID
    stable per window id, times in UTC, DTSTAMP when it was recorded (or cancelled), so that two
    publishes of the same windows are the same file; a cancelled window is STATUS:CANCELLED."""
    lines = ["BEGIN:VCALENDAR", "VERSION:2.0", "PRODID:-//dcops//status page//EN", "CALSCALE:GREGORIAN",
             "METHOD:PUBLISH", f"X-WR-CALNAME:{ical_escape(calendar_name)}", "X-WR-TIMEZONE:UTC"]
    for window in view["maintenance"]["all"]:
        cancelled = window["phase"] == "cancelled"
        what = ", ".join(window["programmes"]) or window.get("cluster") or "the data centre"
        description = [window["reason"], f"Programmes: {what}."]
        if window.get("change_ref"):
            description.append(f"Change: {window['change_ref']}.")
        lines += [
            "BEGIN:VEVENT",
            f"UID:maintenance-{window['id']}@{TAG_AUTHORITY}",
            f"DTSTAMP:{_ical_time(window['cancelled_at'] or window['recorded_at'])}",
            f"DTSTART:{_ical_time(window['start'])}",
            f"DTEND:{_ical_time(window['end'])}",
            f"SEQUENCE:{1 if cancelled else 0}",
            f"STATUS:{'CANCELLED' if cancelled else 'CONFIRMED'}",
            f"SUMMARY:{ical_escape(('Cancelled: ' if cancelled else '') + 'Maintenance: ' + what)}",
            f"DESCRIPTION:{ical_escape(chr(10).join(description))}",
            "TRANSP:TRANSPARENT",
            "END:VEVENT",
        ]
    lines.append("END:VCALENDAR")
    return "".join(ical_fold(line) for line in lines)


def templates_dir() -> Path:
    """templates/status/, shipped inside the package."""
    from dcops.resources import templates_dir as shipped

    return shipped() / "status"


def _environment():
    import jinja2

    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(templates_dir())),
        autoescape=True,  # the page and the feed alike: &, <, >, " and ' become entities
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        auto_reload=False,
    )
    env.globals.update(bar_runs=bar_runs, bar_summary=bar_summary, notable_days=notable_days,
                       state_words=STATE_WORDS)
    return env


_ENV = None


def _env():
    global _ENV
    if _ENV is None:
        _ENV = _environment()
    return _ENV


def render_files(view: dict, *, data_centre_name: str, service_desk: str = "") -> dict[str, str]:
    """Every file of the status site from its view: file name -> text."""
    from dcops.catalogue.site import contact_parts

    public = view["audience"] == "public"
    title = f"{data_centre_name} service status" + ("" if public else " (ministries)")
    common = {"view": view, "title": title, "data_centre": data_centre_name, "desk": contact_parts(service_desk),
              "public": public, "headline": headline(view)}
    env = _env()
    return {
        INDEX: env.get_template("index.html").render(**common),
        FEED: env.get_template("feed.atom").render(**common, entries=atom_entries(view),
                                                   feed_id=f"tag:{TAG_AUTHORITY},2026:status/{view['audience']}"),
        CALENDAR: icalendar_text(view, calendar_name=f"{data_centre_name}: maintenance"
                                                     + ("" if public else " (ministries)")),
        STYLESHEET: (templates_dir() / STYLESHEET).read_text(encoding="utf-8"),
    }


def write_site(files: dict[str, str], directory: Path) -> list[Path]:
    """Write the files into `directory` (made if missing), each whole or not at all (a temporary
    file in the folder, then a rename: a reader never sees half a page)."""
    from dcops.files import write_atomically

    directory = Path(directory)
    if directory.exists() and not directory.is_dir():
        raise UserError(f"{directory} exists and is not a directory")
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise UserError(f"cannot create {directory}: {error.strerror or error}") from None
    written = []
    # The stylesheet and the feeds first, the page that names them last.
    for name in (STYLESHEET, FEED, CALENDAR, INDEX):
        write_atomically(directory / name, files[name])
        written.append(directory / name)
    return written


def views(database: "Database", *, audiences: Iterable[str], now: datetime | None = None,
          settings: "Settings", actor: "Actor | str | None" = None, days: int = DEFAULT_DAYS) -> dict[str, dict]:
    """The status views of `audiences`, read in one transaction after the incident records are
    brought up to date with the history (as the incident listing does)."""
    from dcops.access import as_actor, authorize
    from dcops.incidents import sync

    authorize(as_actor(actor), "status.publish")
    audiences = list(audiences)
    for audience in audiences:
        if audience not in AUDIENCES:
            raise UserError(f"--audience: public or ministries, not {audience!r}")
    now = now or utcnow()
    with database.transaction(immediate=True) as conn:
        sync(conn, now=now)
        return {audience: status_view(conn, now=now, tz=settings.tz, audience=audience, days=days)
                for audience in audiences}


def publish(database: "Database", directory: Path, *, audience: str, now: datetime | None = None,
            settings: "Settings", actor: "Actor | str | None" = None) -> list[Path]:
    """Publish the status site of `audience` into `directory`: index.html, feed.atom, maintenance.ics,
    style.css; return the files written. Needs status.publish (an operator)."""
    return publish_view(database, directory, audience=audience, now=now, settings=settings, actor=actor)[0]


def publish_view(database: "Database", directory: Path, *, audience: str, now: datetime | None = None,
                 settings: "Settings", actor: "Actor | str | None" = None) -> tuple[list[Path], dict]:
    """As publish, and the view the files were rendered from."""
    view = views(database, audiences=[audience], now=now, settings=settings, actor=actor)[audience]
    files = render_files(view, data_centre_name=settings.data_centre_name, service_desk=settings.service_desk)
    return write_site(files, directory), view


def publish_both(database: "Database", directory: Path, *, now: datetime | None = None, settings: "Settings",
                 actor: "Actor | str | None" = None) -> list[Path]:
    """What `dcops serve` publishes every minute: the public site into DIRECTORY/public and the
    ministries' into DIRECTORY/ministries, from one reading of the database.

    Two sibling folders rather than the ministries' inside the public one: a web server pointed
    at the public folder can then never serve the ministries' page, whatever its configuration."""
    found = views(database, audiences=AUDIENCES, now=now, settings=settings, actor=actor)
    written = []
    for audience, view in found.items():
        files = render_files(view, data_centre_name=settings.data_centre_name, service_desk=settings.service_desk)
        written += write_site(files, Path(directory) / audience)
    return written

"""A ministry's own reports: its monthly SLA reports (as issued, once frozen) and statements, for who may read them."""

from __future__ import annotations

import json
from datetime import date, datetime
from zoneinfo import ZoneInfo

from sqlalchemy import select, text
from sqlalchemy.engine import Connection

from dcops.access import Actor, Owned, authorize
from dcops.db import iso_utc, read_utc
from dcops.errors import NotFound
from dcops.models import FrozenReport, Ministry
from dcops.reports import statements

T_FROZEN = FrozenReport.__table__
T_MINISTRY = Ministry.__table__
# How many months back a ministry's report list goes.
MONTHS_LISTED = 24


def _authorize(conn: Connection, actor: Actor, ministry: str, what: str) -> str:
    """The ministry's name, once the actor may read its reports; NotFound alike for a missing ministry."""
    name = conn.execute(select(T_MINISTRY.c.name).where(T_MINISTRY.c.code == ministry)).scalar()
    if name is None:
        raise NotFound(f"no {what} {ministry}")
    authorize(actor, "report.read", Owned(what, ministry, ministry))
    return name


def _months(first: date, last: date) -> list[str]:
    months, year, month = [], last.year, last.month
    while (year, month) >= (first.year, first.month) and len(months) < MONTHS_LISTED:
        months.append(f"{year:04d}-{month:02d}")
        year, month = (year, month - 1) if month > 1 else (year - 1, 12)
    return months


def report_list(conn: Connection, actor: Actor, ministry: str, *, tz: ZoneInfo, now: datetime) -> dict:
    """The months a ministry has reports for, newest first, each saying whether its SLA report was issued."""
    name = _authorize(conn, actor, ministry, "report")
    first = conn.execute(text(
        "SELECT MIN(p.activated_at) FROM programme p JOIN ministry m ON m.id = p.ministry_id WHERE m.code = :m"),
        {"m": ministry}).scalar()
    first_day = read_utc(conn, first).astimezone(tz).date() if first is not None else now.astimezone(tz).date()
    issued = {row.period: row.id for row in conn.execute(
        select(T_FROZEN.c.id, T_FROZEN.c.period)
        .where(T_FROZEN.c.kind == "uptime", T_FROZEN.c.scope == f"ministry={ministry}")
        .order_by(T_FROZEN.c.id))}
    this_month = now.astimezone(tz).strftime("%Y-%m")
    return {"ministry": {"code": ministry, "name": name}, "months": [
        {"period": month, "issued_report": issued.get(month), "running": month == this_month}
        for month in _months(first_day, now.astimezone(tz).date())]}


def uptime_report(conn: Connection, actor: Actor, ministry: str, period: str, *, tz: ZoneInfo, now: datetime,
                  data_centre_name: str, judging: dict | None = None) -> dict:
    """The ministry's SLA report of a month: as issued (its latest frozen copy), else computed now."""
    from dcops.reports.documents import resolve_period, uptime_document

    _authorize(conn, actor, ministry, "report")
    frozen = conn.execute(
        select(T_FROZEN.c.document)
        .where(T_FROZEN.c.kind == "uptime", T_FROZEN.c.scope == f"ministry={ministry}", T_FROZEN.c.period == period)
        .order_by(T_FROZEN.c.id.desc()).limit(1)).scalar()
    if frozen is not None:
        return json.loads(frozen)
    chosen = resolve_period(period, None, None, tz, now=now)
    return uptime_document(conn, chosen, tz=tz, now=now, data_centre_name=data_centre_name, ministry=ministry,
                           **(judging or {}))


def statement(conn: Connection, actor: Actor, ministry: str, period: str, *, tz: ZoneInfo, now: datetime,
              data_centre_name: str) -> dict:
    """The ministry's statement of a month: each programme's charge on its plan, pro rata to its days in
    service, in LAK; the running month's is provisional (charged until today)."""
    from dcops.reports.documents import resolve_period

    name = _authorize(conn, actor, ministry, "statement")
    chosen = resolve_period(period, None, None, tz, now=now)
    rows = conn.execute(text(
        "SELECT p.slug, p.name, p.plan_id, pl.name, pl.monthly_cost_lak, p.activated_at, p.retired_at "
        "FROM programme p JOIN ministry m ON m.id = p.ministry_id LEFT JOIN plan pl ON pl.id = p.plan_id "
        "WHERE m.code = :m ORDER BY p.slug"), {"m": ministry}).all()
    priced = [statements.PricedProgramme(r[0], r[1], r[2], r[3], r[4], read_utc(conn, r[5]), read_utc(conn, r[6]))
              for r in rows]
    today = now.astimezone(tz).date()
    provisional = today <= chosen.last_day
    lines, total = statements.statement_lines(priced, first_day=chosen.first_day, last_day=chosen.last_day,
                                              charged_until=min(today, chosen.last_day), tz=tz)
    return {
        "kind": "statement",
        "title": "Monthly statement",
        "data_centre_name": data_centre_name,
        "ministry": {"code": ministry, "name": name},
        "period": {"label": chosen.label, "first_day": chosen.first_day.isoformat(),
                   "last_day": chosen.last_day.isoformat(), "timezone": tz.key},
        "provisional": provisional,
        "currency": "LAK",
        "generated_at": iso_utc(now),
        "lines": [line.as_dict() for line in lines],
        "total_lak": total,
    }


STATEMENT_COLUMNS = ("programme", "name", "plan", "plan_name", "monthly_cost_lak", "days_in_service",
                     "days_in_month", "amount_lak")


def statement_csv(document: dict) -> str:
    """A statement as CSV, one row per programme, then the total; text a spreadsheet would run is defused."""
    import csv
    import io

    from dcops.reports.render import spreadsheet_text

    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(STATEMENT_COLUMNS)
    for line in document["lines"]:
        writer.writerow(["" if line[c] is None else spreadsheet_text(line[c]) for c in STATEMENT_COLUMNS])
    writer.writerow(["total", "", "", "", "", "", "", document["total_lak"]])
    return out.getvalue()

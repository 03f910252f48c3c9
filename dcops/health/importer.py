"""Bringing probe history from another monitoring tool: CSV or JSON lines, through the same interval logic."""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from sqlalchemy import select

from dcops.db import Database, iso_utc, utcnow
from dcops.errors import UserError, ValidationError
from dcops.health.history import Thresholds
from dcops.health.store import T_STATE, backfill, compact, load_checks, record_results

MAX_IMPORT_BYTES = 2 * 1024 * 1024 * 1024
FIELDS = ("timestamp", "programme", "check", "success", "duration", "reason")
TRUE = {"1", "true", "yes", "up", "ok", "success"}
FALSE = {"0", "false", "no", "down", "fail", "failure"}


@dataclass(frozen=True)
class ImportedResult:
    """One historical probe result, shaped like a live one."""

    endpoint_id: int
    at: datetime
    success: bool
    duration_seconds: float
    reason: str
    tls_expires_at: None = None


@dataclass(frozen=True)
class ImportSummary:
    """What an import did: rows read, checks, state changes, the time covered; and of the rows older
    than a check's latest result, how many filled unknown time and how many fell in measured time."""

    rows: int
    checks: int
    programme_changes: int
    first: datetime | None
    last: datetime | None
    backfilled: int = 0
    measured: int = 0
    disagreeing: dict[str, int] = field(default_factory=dict)


def _timestamp(value) -> datetime:
    if isinstance(value, (int, float)) or (isinstance(value, str) and value.replace(".", "", 1).isdigit()):
        return datetime.fromtimestamp(float(value), tz=timezone.utc)
    parsed = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    if parsed.tzinfo is None:
        raise ValueError("a timestamp needs a time zone (Z or +07:00), or Unix seconds")
    return parsed.astimezone(timezone.utc)


def _success(value) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in TRUE:
        return True
    if text in FALSE:
        return False
    raise ValueError(f"success must be true/false, 1/0 or up/down, not {value!r}")


def _records(path: Path, fmt: str):
    # utf-8-sig: a spreadsheet saving CSV as UTF-8 puts a byte-order mark before the header.
    text = path.read_text(encoding="utf-8-sig")
    if fmt == "csv":
        reader = csv.DictReader(io.StringIO(text))
        missing = [f for f in FIELDS[:4] if f not in (reader.fieldnames or [])]
        if missing:
            raise UserError(f"{path}:1: the CSV header lacks {', '.join(missing)} (columns: {', '.join(FIELDS)})")
        try:
            for row in reader:
                yield reader.line_num, row
        except csv.Error as error:
            raise UserError(f"{path}:{reader.line_num + 1}: not valid CSV: {error}") from None
    else:
        for number, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except ValueError as error:
                yield number, ValueError(f"not JSON: {error.msg}")
                continue
            yield number, record if isinstance(record, dict) else ValueError("a line must be a JSON object")


def import_history(database: Database, path: Path, *, fmt: str | None = None,
                   thresholds: Thresholds = Thresholds()) -> ImportSummary:
    """Validate every row, then fold them (oldest first) into the history in one transaction.

    Rows newer than a check's latest stored result continue its history; older ones fill only the
    time it has no data for (store.backfill), so an import never rewrites what dcops measured: the
    usual migration is to start dcops, then bring in the earlier tool's history.
    """
    if not path.is_file():
        raise UserError(f"{path}: no such file")
    if path.stat().st_size > MAX_IMPORT_BYTES:
        raise UserError(f"{path}: larger than {MAX_IMPORT_BYTES // 2**30} GiB; split it")
    fmt = fmt or ("csv" if path.suffix.lower() == ".csv" else "jsonl")
    if fmt not in ("csv", "jsonl"):
        raise UserError(f"unknown format {fmt!r}: csv or jsonl")
    # Read and parse the file before taking the write lock: the prober must not wait on the disk.
    try:
        records = list(_records(path, fmt))
    except UnicodeDecodeError:
        raise UserError(f"{path}: not UTF-8 text") from None
    now = utcnow()
    with database.transaction(immediate=True) as conn:
        checks = load_checks(conn)
        by_name = {(c.programme, c.name): c for c in checks}
        latest = {r.endpoint_id: r.last_at for r in conn.execute(select(T_STATE.c.endpoint_id, T_STATE.c.last_at))}
        results, problems = [], []
        for number, record in records:
            where = f"{path}:{number}"
            if isinstance(record, Exception):
                problems.append(f"{where}: {record}")
                continue
            try:
                check = by_name.get((record.get("programme"), record.get("check")))
                if check is None:
                    raise ValueError(f"no check {record.get('check')!r} of programme {record.get('programme')!r}")
                at = _timestamp(record.get("timestamp"))
                if at > now:  # a future result would block every real one until then
                    raise ValueError(f"{iso_utc(at)} is in the future")
                duration = float(record.get("duration") or 0.0)
                if not 0 <= duration < 3600:
                    raise ValueError(f"duration {duration} s is not plausible")
                results.append(ImportedResult(check.endpoint_id, at, _success(record.get("success")), duration,
                                              str(record.get("reason") or "")[:200]))
            except (ValueError, TypeError, OverflowError) as error:
                problems.append(f"{where}: {error}")
            if len(problems) > 50:
                problems.append("... stopping after 50 problems")
                break
        if problems:
            raise ValidationError(problems)
        if not results:
            raise UserError(f"{path}: no results to import")
        older = [r for r in results if latest.get(r.endpoint_id) is not None and r.at <= latest[r.endpoint_id]]
        newer = [r for r in results if latest.get(r.endpoint_id) is None or r.at > latest[r.endpoint_id]]
        filled = backfill(conn, checks, older, thresholds=thresholds)
        changes = record_results(conn, checks, newer, thresholds=thresholds)
        # Old raw results and old hours are folded at once: an import of a year stays small.
        compact(conn, now=now)
    times = [r.at for r in results]
    return ImportSummary(len(results), len({r.endpoint_id for r in results}), len(changes), min(times), max(times),
                         filled.filled, filled.measured, filled.disagreeing)

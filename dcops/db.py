"""Database engine, transactions, SQLite pragmas, UTC times and the schema version (Alembic)."""

from __future__ import annotations

import re
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Iterator

from sqlalchemy import BigInteger, DateTime, event, exc, text
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.types import TypeDecorator

from dcops.errors import (ConfigError, DatabaseBusy, DatabaseError, DatabaseMissing, DatabaseUnreachable, SchemaMismatch,
                          UserError)

if TYPE_CHECKING:
    from dcops.settings import Settings

# The Alembic revisions this dcops ships, oldest first; the last is the head.
# A test checks this against the migration scripts so the two cannot drift.
KNOWN_REVISIONS = ("0001", "0002", "0003", "0004", "0005", "0006", "0007", "0008", "0009", "0010", "0011", "0012",
                   "0013")
SCHEMA_HEAD = KNOWN_REVISIONS[-1]
# The PostgreSQL advisory lock that serialises dcops writers (any constant will do).
WRITER_LOCK_KEY = 0x6463_6F70  # "dcop"


def utcnow() -> datetime:
    """The current time, timezone-aware, in UTC."""
    return datetime.now(timezone.utc)


def _aware(value: datetime) -> datetime:
    """The value itself; a naive datetime is refused where it is bound, not later at commit."""
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"naive datetime {value!r}: dcops stores only timezone-aware times")
    return value


class UTCDateTime(TypeDecorator):
    """A timestamp stored in UTC; refuses naive datetimes when bound, not at commit."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value, dialect):
        if value is None:
            return None
        return _aware(value).astimezone(timezone.utc)

    def process_result_value(self, value, dialect):
        if value is None:
            return None
        if value.tzinfo is None:
            # SQLite keeps no offset; everything written through this type is UTC.
            return value.replace(tzinfo=timezone.utc)
        return value.astimezone(timezone.utc)


_TIME = UTCDateTime()


def read_utc(conn, value) -> datetime | None:
    """A UTCDateTime column read through text SQL, as an aware datetime (SQLite hands back its stored text)."""
    if value is None:
        return None
    if isinstance(value, str):
        # SQLite's stored text has no offset and is UTC: parsed with one, in one call, this is six
        # times faster than parsing and then replacing the tzinfo (reports read 200,000 of these).
        try:
            return datetime.fromisoformat(value + "+00:00")
        except ValueError:  # text that carries its own offset
            value = datetime.fromisoformat(value)
    return _TIME.process_result_value(value, conn.dialect)


_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
_MICROSECOND = timedelta(microseconds=1)


def epoch_us(moment: datetime) -> int:
    """An aware time as whole microseconds since the Unix epoch: exact, and cheap to compare or hash."""
    return (moment - _EPOCH) // _MICROSECOND


class EpochMicroseconds(TypeDecorator):
    """A timezone-aware time stored as integer microseconds since the Unix epoch (UTC).

    For the tables that hold a row per probe or per hour: 8 bytes where the text form of
    UTCDateTime takes 26, in the row and again in every index over it.
    """

    impl = BigInteger
    cache_ok = True

    def process_bind_param(self, value, dialect):
        if value is None:
            return None
        return epoch_us(_aware(value))

    def process_result_value(self, value, dialect):
        if value is None:
            return None
        return _EPOCH + timedelta(microseconds=value)


_SQLITE_UTC = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d(\.\d+)?$")


def iso_utc(value: datetime | str | None) -> str | None:
    """An ISO 8601 UTC string to the second ('2026-11-29T07:00:00Z').

    Takes a datetime, or the raw text SQLite keeps for a UTCDateTime (always UTC);
    the text is cut, not parsed, because listings format thousands of them.
    """
    if value is None:
        return None
    if isinstance(value, str):
        if _SQLITE_UTC.match(value):
            return f"{value[:10]}T{value[11:19]}Z"
        value = datetime.fromisoformat(value)
    if value.tzinfo is None:
        value = value.replace(tzinfo=timezone.utc)
    return value.astimezone(timezone.utc).replace(microsecond=0).isoformat().replace("+00:00", "Z")


def sqlite_file(url: str) -> Path | None:
    """The file of a sqlite:/// URL; None for other databases and in-memory SQLite."""
    match = re.match(r"^sqlite(\+\w+)?:///(.*)$", url)
    if not match or match.group(2) in ("", ":memory:"):
        return None
    return Path(match.group(2).split("?", 1)[0])


def make_engine(url: str, *, busy_timeout_ms: int = 5000) -> Engine:
    """An engine for `url`; on SQLite: foreign keys on, a busy timeout, explicit BEGIN."""
    from sqlalchemy import create_engine

    if not url.startswith("sqlite"):
        return create_engine(url, pool_pre_ping=False)

    engine = create_engine(url, connect_args={"timeout": busy_timeout_ms / 1000})

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection, _record):
        # Let SQLAlchemy, not the sqlite3 module, decide when a transaction begins,
        # so that BEGIN IMMEDIATE is possible and DDL is transactional.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA busy_timeout={int(busy_timeout_ms)}")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn):
        conn.exec_driver_sql(conn.info.get("dcops_begin", "BEGIN"))

    return engine


@contextmanager
def translated_errors(url: str) -> Iterator[None]:
    """Turn driver errors that a user can act on into one-line DcopsErrors."""
    try:
        yield
    except exc.OperationalError as error:
        message = str(error.orig) if error.orig is not None else str(error)
        if "locked" in message or "busy" in message:
            raise DatabaseBusy(
                "the database is locked by another dcops process; try again in a moment"
            ) from None
        if "unable to open database file" in message:
            raise DatabaseMissing(f"cannot open the database at {redact(url)}") from None
        raise DatabaseError(f"database error: {message.strip().splitlines()[0]}") from None
    except exc.DatabaseError as error:
        message = str(error.orig) if error.orig is not None else str(error)
        if "not a database" in message:
            raise UserError(f"{redact(url)} is not a dcops database (not SQLite)") from None
        raise


def redact(url: str) -> str:
    """The URL without its password, for messages (settings.redacted_url, whatever the scheme)."""
    from dcops.settings import redacted_url

    return redacted_url(url)


def _engine(settings: "Settings") -> Engine:
    """The engine of DCOPS_DATABASE_URL; a URL SQLAlchemy cannot use is the setting's mistake."""
    try:
        return make_engine(settings.database_url, busy_timeout_ms=settings.busy_timeout_ms)
    except (exc.ArgumentError, exc.NoSuchModuleError, ImportError, ValueError) as error:
        reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        if isinstance(error, ImportError) and (error.name or "").startswith("psycopg"):
            # PostgreSQL support is an extra (SQLite users need no libpq): say how to get it.
            reason = "PostgreSQL support is not installed: install dcops with its extra, pipx install '.[postgresql]'"
        raise ConfigError(f"DCOPS_DATABASE_URL={redact(settings.database_url)} cannot be used: {reason}") from None


@contextmanager
def _connected(engine: Engine, url: str) -> Iterator[Connection]:
    """A first connection; a server that cannot be reached (or refuses us) is told in one line, exit 2."""
    try:
        conn = engine.connect()
    except exc.OperationalError as error:
        if engine.dialect.name == "sqlite":
            raise
        reason = str(error.orig if error.orig is not None else error).strip().splitlines()
        raise DatabaseUnreachable(
            f"cannot connect to the database at DCOPS_DATABASE_URL={redact(url)}: "
            f"{reason[0] if reason else 'connection failed'}"
        ) from None
    with conn:
        yield conn


@dataclass
class Database:
    """An open dcops database: its engine and the URL it came from."""

    engine: Engine
    url: str

    @contextmanager
    def transaction(self, *, immediate: bool = False) -> Iterator[Connection]:
        """One transaction; commits on success, rolls back on any error.

        `immediate` takes SQLite's write lock at BEGIN, so that a read-check-write
        sequence (a capacity check) cannot interleave with another writer.
        """
        with translated_errors(self.url):
            with self.engine.connect() as conn:
                sqlite = self.engine.dialect.name == "sqlite"
                if immediate and sqlite:
                    conn.info["dcops_begin"] = "BEGIN IMMEDIATE"
                try:
                    with conn.begin():
                        if immediate and not sqlite:
                            # The PostgreSQL counterpart of BEGIN IMMEDIATE: writers that
                            # read-check-write queue here, released at commit or rollback.
                            conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": WRITER_LOCK_KEY})
                        yield conn
                finally:
                    conn.info.pop("dcops_begin", None)

    def dispose(self) -> None:
        """Close every pooled connection."""
        self.engine.dispose()


def current_revision(conn: Connection) -> str | None:
    """The Alembic revision the database is at; None if it has no dcops schema."""
    if conn.dialect.name == "sqlite":
        present = conn.exec_driver_sql(
            "SELECT 1 FROM sqlite_master WHERE type='table' AND name='alembic_version'"
        ).first()
    else:
        present = conn.execute(text("SELECT to_regclass('alembic_version')")).scalar()
    if not present:
        return None
    return conn.execute(text("SELECT version_num FROM alembic_version")).scalar()


def check_revision(revision: str | None, url: str) -> None:
    """Refuse a database whose schema is missing, older or newer than this dcops."""
    if revision == SCHEMA_HEAD:
        return
    if revision is None:
        raise DatabaseMissing(
            f"the database at {redact(url)} has no dcops schema: create it with `dcops db upgrade`"
        )
    if revision in KNOWN_REVISIONS:
        raise SchemaMismatch(
            f"the database schema is at revision {revision}, this dcops needs {SCHEMA_HEAD}: "
            "run `dcops db upgrade`"
        )
    raise SchemaMismatch(
        f"the database schema is at revision {revision}, newer than this dcops knows "
        f"(up to {SCHEMA_HEAD}): upgrade dcops before using this database"
    )


def open_database(settings: "Settings") -> Database:
    """Open the configured database, refusing one that is missing or at another schema."""
    path = sqlite_file(settings.database_url)
    if path is not None and not path.exists():
        raise DatabaseMissing(
            f"no dcops database at {path}: create it with `dcops db upgrade` "
            "(or set DCOPS_DATABASE_URL / DCOPS_HOME)"
        )
    engine = _engine(settings)
    database = Database(engine=engine, url=settings.database_url)
    with translated_errors(settings.database_url):
        with _connected(engine, settings.database_url) as conn:
            check_revision(current_revision(conn), settings.database_url)
    return database


@dataclass(frozen=True)
class UpgradeResult:
    """What `upgrade` did: the revision before and after."""

    url: str
    from_revision: str | None
    to_revision: str
    created: bool


def upgrade(settings: "Settings") -> UpgradeResult:
    """Create the database if needed and bring its schema to this dcops' head revision."""
    from alembic import command
    from alembic.config import Config

    path = sqlite_file(settings.database_url)
    created = False
    if path is not None:
        created = not path.exists()
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise UserError(f"cannot create {path.parent}: {error.strerror}") from None
    engine = _engine(settings)
    try:
        with translated_errors(settings.database_url):
            with _connected(engine, settings.database_url) as conn:
                before = current_revision(conn)
                conn.rollback()
            if before is not None and before not in KNOWN_REVISIONS:
                check_revision(before, settings.database_url)
            if engine.dialect.name == "sqlite":
                # WAL lets readers (the exporter, reports) run while a writer works;
                # the mode is stored in the file, so setting it once is enough. It
                # cannot change inside a transaction, hence the raw connection.
                raw = engine.raw_connection()
                try:
                    raw.cursor().execute("PRAGMA journal_mode=WAL")
                finally:
                    raw.close()
            config = Config()
            config.set_main_option("script_location", str(Path(__file__).parent / "migrations"))
            with engine.begin() as conn:
                config.attributes["connection"] = conn
                command.upgrade(config, "head")
    finally:
        engine.dispose()
    return UpgradeResult(
        url=redact(settings.database_url), from_revision=before, to_revision=SCHEMA_HEAD, created=created
    )

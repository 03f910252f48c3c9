"""The database layer: migrations, schema checks, SQLite pragmas, UTC times, locked and foreign files."""

from __future__ import annotations

import sqlite3
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.config import Config

import dcops.db as dcops_db
from dcops.db import KNOWN_REVISIONS, SCHEMA_HEAD, iso_utc, open_database, sqlite_file, upgrade
from dcops.errors import DatabaseMissing, SchemaMismatch
from dcops.models import Ministry, Programme, SQLModel
from dcops.settings import Settings

from conftest import Cli


def test_known_revisions_match_the_shipped_migrations():
    config = Config()
    config.set_main_option("script_location", str(Path(dcops_db.__file__).parent / "migrations"))
    script = ScriptDirectory.from_config(config)
    assert script.get_heads() == [SCHEMA_HEAD]
    chain = [rev.revision for rev in script.walk_revisions()]
    assert list(reversed(chain)) == list(KNOWN_REVISIONS)


def test_upgrade_creates_then_is_idempotent(any_url, tmp_path):
    config = Settings.from_env({"DCOPS_DATABASE_URL": any_url, "DCOPS_HOME": str(tmp_path)})
    first = upgrade(config)
    assert first.from_revision is None and first.to_revision == SCHEMA_HEAD
    second = upgrade(config)
    assert second.from_revision == SCHEMA_HEAD == second.to_revision


def test_migrated_schema_matches_the_models(any_database):
    with any_database.engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        assert compare_metadata(context, SQLModel.metadata) == []


def test_tiers_are_seeded_with_their_targets(any_database):
    with any_database.transaction() as conn:
        rows = conn.execute(sa.text("SELECT tier, sla_target_percent FROM sla_tier ORDER BY tier")).all()
    assert [tuple(r) for r in rows] == [(1, 99.9), (2, 99.5), (3, 99.0)]


def test_sqlite_pragmas(database):
    with database.engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() == 5000


def test_foreign_keys_are_enforced_on_sqlite(database):
    with pytest.raises(sa.exc.IntegrityError):
        with database.transaction() as conn:
            conn.execute(sa.text("INSERT INTO cluster (name, site_id, description) VALUES ('c', 999, '')"))


def test_missing_database_is_a_user_error_and_no_file_is_created(tmp_path):
    path = tmp_path / "nothing-here.db"
    config = Settings.from_env({"DCOPS_DATABASE_URL": f"sqlite:///{path}"})
    with pytest.raises(DatabaseMissing, match="dcops db upgrade"):
        open_database(config)
    assert not path.exists()


def test_cli_on_missing_database_exits_2_without_creating_it(tmp_path):
    path = tmp_path / "nothing.db"
    cli = Cli(Settings.from_env({"DCOPS_DATABASE_URL": f"sqlite:///{path}", "DCOPS_HOME": str(tmp_path)}))
    result = cli("programme", "list", expect=2)
    assert "no dcops database" in result.stderr and "dcops db upgrade" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert not path.exists()


def test_empty_database_without_schema_is_refused(tmp_path):
    path = tmp_path / "empty.db"
    sqlite3.connect(path).close()
    with pytest.raises(DatabaseMissing, match="no dcops schema"):
        open_database(Settings.from_env({"DCOPS_DATABASE_URL": f"sqlite:///{path}"}))


def test_newer_schema_is_refused_by_commands_and_by_upgrade(any_settings):
    engine = sa.create_engine(any_settings.database_url)
    with engine.begin() as conn:
        conn.execute(sa.text("UPDATE alembic_version SET version_num = '9999'"))
    engine.dispose()
    with pytest.raises(SchemaMismatch, match="newer than this dcops"):
        open_database(any_settings)
    with pytest.raises(SchemaMismatch, match="newer than this dcops"):
        upgrade(any_settings)
    result = Cli(any_settings)("ministry", "list", expect=2)
    assert "upgrade dcops" in result.stderr


def test_older_schema_asks_for_an_upgrade(monkeypatch):
    monkeypatch.setattr(dcops_db, "KNOWN_REVISIONS", ("0000", *KNOWN_REVISIONS))
    with pytest.raises(SchemaMismatch, match="run `dcops db upgrade`"):
        dcops_db.check_revision("0000", "sqlite:///x.db")


def test_a_file_that_is_not_sqlite_is_a_user_error(tmp_path):
    path = tmp_path / "notes.db"
    path.write_text("this is not a database\n" * 100)
    cli = Cli(Settings.from_env({"DCOPS_DATABASE_URL": f"sqlite:///{path}", "DCOPS_HOME": str(tmp_path)}))
    result = cli("programme", "list", expect=2)
    assert "not a dcops database" in result.stderr
    assert path.read_text() == "this is not a database\n" * 100


def test_locked_database_is_a_user_error_and_nothing_is_written(settings, tmp_path):
    busy = Settings.from_env(
        {"DCOPS_DATABASE_URL": settings.database_url, "DCOPS_HOME": str(tmp_path), "DCOPS_BUSY_TIMEOUT_MS": "200"}
    )
    Cli(busy)("inventory", "load", tmp_path / "inv", expect=2)  # no such directory: a user error too
    holder = sqlite3.connect(sqlite_file(settings.database_url), isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    try:
        result = Cli(busy)(
            "programme", "update", "anything", "--tier", "1", expect=2
        )
        assert "locked" in result.stderr
    finally:
        holder.execute("ROLLBACK")
        holder.close()


def test_naive_datetimes_are_refused_when_bound_not_at_commit(any_database):
    from sqlmodel import Session

    with Session(any_database.engine) as session:
        session.add(Ministry(code="m", name="M"))
        session.flush()
        naive = Programme(slug="naive", name="N", ministry_id=1, tier=1, created_at=datetime(2026, 1, 1))
        session.add(naive)
        with pytest.raises(sa.exc.StatementError, match="naive datetime"):
            session.flush()


def test_epoch_microsecond_times_refuse_naive_and_round_trip_exactly():
    from dcops.db import EpochMicroseconds

    kind = EpochMicroseconds()
    with pytest.raises(ValueError, match="naive datetime"):
        kind.process_bind_param(datetime(2026, 1, 1), None)
    moment = datetime(2026, 10, 31, 23, 59, 59, 999999, tzinfo=timezone(timedelta(hours=7)))
    stored = kind.process_bind_param(moment, None)
    # 2026-01-01 is day 20,454 (56 years, 14 leap days); 31 Oct is 303 days on: 20,757 x 86,400
    # + 16:59:59 = 1,793,465,999 s, and the microseconds.
    assert stored == 1_793_465_999_999_999
    assert kind.process_result_value(stored, None) == moment


def test_times_come_back_aware_in_utc(any_database):
    from sqlmodel import Session, select

    vientiane = timezone(timedelta(hours=7))
    written = datetime(2026, 10, 31, 23, 30, tzinfo=vientiane)
    with Session(any_database.engine) as session:
        session.add(Ministry(code="m", name="M"))
        session.flush()
        session.add(Programme(slug="tz", name="T", ministry_id=1, tier=1, created_at=written, updated_at=written))
        session.commit()
    with Session(any_database.engine) as session:
        back = session.exec(select(Programme).where(Programme.slug == "tz")).one().created_at
    assert back.utcoffset() == timedelta(0)
    assert back == written
    assert iso_utc(back) == "2026-10-31T16:30:00Z"


def test_settings_refuse_a_bad_time_zone_and_url():
    from dcops.errors import ConfigError

    with pytest.raises(ConfigError, match="time zone"):
        Settings.from_env({"DCOPS_TIMEZONE": "Mars/Olympus"})
    with pytest.raises(ConfigError, match="DCOPS_DATABASE_URL"):
        Settings.from_env({"DCOPS_DATABASE_URL": "mysql://x"})


def test_settings_read_the_prometheus_and_alertmanager_servers(tmp_path):
    from dcops.errors import ConfigError

    config = Settings.from_env({"DCOPS_HOME": str(tmp_path), "DCOPS_PROMETHEUS_URL": "http://127.0.0.1:9090/",
                                "DCOPS_ALERTMANAGER_URL": "https://am.dc.gov.la",
                                "DCOPS_ALERTMANAGER_WEBHOOK_SECRET_FILE": str(tmp_path / "secret")})
    assert config.prometheus_url == "http://127.0.0.1:9090"
    assert config.alertmanager_url == "https://am.dc.gov.la"
    assert config.alertmanager_webhook_secret_file == tmp_path / "secret"
    assert Settings.from_env({"DCOPS_HOME": str(tmp_path)}).prometheus_url is None
    for bad in ("ftp://127.0.0.1", "127.0.0.1:9090", "http://", "http://x/?q=1"):
        with pytest.raises(ConfigError, match="DCOPS_ALERTMANAGER_URL must be an http"):
            Settings.from_env({"DCOPS_HOME": str(tmp_path), "DCOPS_ALERTMANAGER_URL": bad})


def test_default_database_lives_under_dcops_home(tmp_path):
    config = Settings.from_env({"DCOPS_HOME": str(tmp_path)})
    assert config.database_url == f"sqlite:///{tmp_path / 'dcops.db'}"
    assert config.timezone == "Asia/Vientiane"


def _migrate(url: str, revision: str, *, down: bool = False) -> None:
    from alembic import command

    config = Config()
    config.set_main_option("script_location", str(Path(dcops_db.__file__).parent / "migrations"))
    engine = dcops_db.make_engine(url)
    try:
        with engine.begin() as conn:
            config.attributes["connection"] = conn
            (command.downgrade if down else command.upgrade)(config, revision)
    finally:
        engine.dispose()


def test_0005_carries_probe_history_over_to_integer_times_and_back(any_url):
    """Raw results and rollups written by 0004 (text times on SQLite) read back as the same
    aware times after 0005; a duplicate raw result collapses into one; downgrade restores them."""
    _migrate(any_url, "0004")
    at = datetime(2026, 10, 31, 23, 59, 58, 123456, tzinfo=timezone.utc)
    hour = datetime(2026, 10, 31, 23, tzinfo=timezone.utc)
    engine = dcops_db.make_engine(any_url)
    old_time = dcops_db.UTCDateTime()
    with engine.begin() as conn:
        conn.execute(sa.text("INSERT INTO ministry (code, name, contact) VALUES ('mtc', 'MTC', '')"))
        conn.execute(sa.text(
            "INSERT INTO programme (slug, name, ministry_id, description, tier, status, classification, environment, "
            "owner_contact, security_contact, personal_data, backup_tier, created_at, updated_at) "
            "SELECT 'p', 'P', id, '', 1, 'active', 'internal', 'production', '', '', false, 'daily', :t, :t "
            "FROM ministry").bindparams(sa.bindparam("t", at, type_=old_time)))
        conn.execute(sa.text(
            "INSERT INTO endpoint (programme_id, name, kind, target, expect_status, body_contains, timeout_seconds, "
            "interval_seconds) SELECT id, 'web', 'http', 'http://127.0.0.1:1/', '200-399', '', 5, 60 FROM programme"))
        endpoint = conn.execute(sa.text("SELECT id FROM endpoint")).scalar_one()
        for success in (True, False):  # the same check and microsecond twice: one result after 0005
            conn.execute(sa.text("INSERT INTO probe_result (endpoint_id, at, success, duration_seconds, reason) "
                                 "VALUES (:e, :at, :ok, 0.25, '')").bindparams(sa.bindparam("at", type_=old_time)),
                         {"e": endpoint, "at": at, "ok": success})
        conn.execute(sa.text(
            "INSERT INTO latency_rollup (endpoint_id, period_start, period, count, failures, sum_seconds, min_seconds, "
            "max_seconds, le_0_1, le_0_5, le_1, le_5) VALUES (:e, :start, 'hour', 60, 1, 3.5, 0.01, 0.9, 50, 58, 60, 60)"
        ).bindparams(sa.bindparam("start", type_=old_time)), {"e": endpoint, "start": hour})
    engine.dispose()

    _migrate(any_url, "0005")
    from dcops.models import LatencyRollup, ProbeResult

    engine = dcops_db.make_engine(any_url)
    with engine.connect() as conn:
        raw = conn.execute(sa.select(ProbeResult.__table__)).all()
        assert [(r.at, r.endpoint_id, r.success) for r in raw] == [(at, endpoint, True)]
        rollup = conn.execute(sa.select(LatencyRollup.__table__)).one()
        assert (rollup.period_start, rollup.count, rollup.sum_seconds) == (hour, 60, 3.5)
    engine.dispose()

    _migrate(any_url, "0004", down=True)
    engine = dcops_db.make_engine(any_url)
    with engine.connect() as conn:
        back = conn.execute(sa.text("SELECT at FROM probe_result").columns(sa.column("at", old_time))).scalar_one()
        start = conn.execute(sa.text("SELECT period_start FROM latency_rollup")
                             .columns(sa.column("period_start", old_time))).scalar_one()
        assert (back, start) == (at, hour)
    engine.dispose()


def test_read_utc_reads_sqlite_text_with_or_without_an_offset(tmp_path):
    from datetime import datetime, timezone

    from dcops.db import read_utc

    engine = dcops_db.make_engine(f"sqlite:///{tmp_path / 'any.db'}")
    with engine.connect() as conn:
        utc = timezone.utc
        assert read_utc(conn, None) is None
        assert read_utc(conn, "2026-10-31 16:30:00.250000") == datetime(2026, 10, 31, 16, 30, 0, 250000, tzinfo=utc)
        assert read_utc(conn, "2026-10-31 16:30:00") == datetime(2026, 10, 31, 16, 30, tzinfo=utc)
        moment = read_utc(conn, "2026-10-31T23:30:00+07:00")
        assert moment == datetime(2026, 10, 31, 16, 30, tzinfo=utc) and moment.utcoffset().total_seconds() == 0

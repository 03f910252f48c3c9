"""Fixtures: fresh databases (a SQLite file, a real PostgreSQL database), the CLI, the sample inventory."""

from __future__ import annotations

import os
import shutil
import sqlite3
import time
import uuid
from pathlib import Path

import pytest
from typer.testing import CliRunner

from dcops.db import open_database, upgrade
from dcops.resources import sample_dir
from dcops.settings import Settings

ROOT = Path(__file__).resolve().parent.parent
SAMPLE_INVENTORY = sample_dir()  # inside the package, where dcops itself finds it
POSTGRES_ENV = "DCOPS_TEST_POSTGRES_URL"


def _postgres_admin_url() -> str:
    url = os.environ.get(POSTGRES_ENV)
    if not url:
        pytest.fail(
            f"the PostgreSQL tests need {POSTGRES_ENV} (a URL of a role allowed to create databases; "
            ".ci/run sets it up); deselect them with -m 'not postgres'",
            pytrace=False,
        )
    return url


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    """The URL of a SQLite file that does not exist yet."""
    return f"sqlite:///{tmp_path / 'dcops.db'}"


def _settings(url: str, home: Path) -> Settings:
    return Settings.from_env({"DCOPS_DATABASE_URL": url, "DCOPS_HOME": str(home)})


@pytest.fixture
def postgres_url():
    """The URL of a new, empty PostgreSQL database, dropped afterwards."""
    admin_url = _postgres_admin_url()
    import sqlalchemy as sa

    name = f"dcops_test_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    base, _sep, _db = admin_url.rpartition("/")
    yield f"{base}/{name}"
    with admin.connect() as conn:
        _drop_database(conn, name)
    admin.dispose()


def _drop_database(conn, name: str) -> None:
    """DROP DATABASE ... WITH (FORCE), waiting out an autovacuum worker: it runs as the superuser,
    so a role without pg_signal_backend cannot end it (a test that rewrote many rows, a migration's
    downgrade, sets one going); it is gone within seconds."""
    import sqlalchemy as sa

    deadline = time.monotonic() + 30
    while True:
        try:
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            return
        except sa.exc.ProgrammingError as error:
            if "pg_signal_backend" not in str(error) or time.monotonic() > deadline:
                raise
            time.sleep(0.5)


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def any_url(request, tmp_path):
    """A fresh database URL, once for SQLite and once for PostgreSQL."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'dcops.db'}"
    return request.getfixturevalue("postgres_url")


# Running the migrations costs about half a second a database, and hundreds of tests want one:
# each session migrates one SQLite file and one PostgreSQL database, and every test gets a copy
# (a copied file; CREATE DATABASE ... TEMPLATE). tests/test_migrations.py and tests/test_db.py
# still migrate empty databases themselves.


@pytest.fixture(scope="session")
def _sqlite_template(tmp_path_factory) -> Path:
    home = tmp_path_factory.mktemp("sqlite-template")
    path = home / "dcops.db"
    upgrade(_settings(f"sqlite:///{path}", home))
    with sqlite3.connect(path) as conn:  # everything into the main file, so that it alone is the database
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    return path


@pytest.fixture(scope="session")
def _postgres_template(tmp_path_factory):
    admin_url = _postgres_admin_url()
    import sqlalchemy as sa

    name = f"dcops_template_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    base, _sep, _db = admin_url.rpartition("/")
    upgrade(_settings(f"{base}/{name}", tmp_path_factory.mktemp("postgres-template")))
    yield name
    with admin.connect() as conn:
        _drop_database(conn, name)
    admin.dispose()


def _migrated(url: str, request) -> None:
    """Make the new, empty database at `url` a copy of this session's migrated one."""
    if url.startswith("sqlite:"):
        shutil.copyfile(request.getfixturevalue("_sqlite_template"), url.removeprefix("sqlite:///"))
        return
    import sqlalchemy as sa

    template = request.getfixturevalue("_postgres_template")
    name = url.rpartition("/")[2]
    admin = sa.create_engine(_postgres_admin_url(), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        _drop_database(conn, name)
        conn.exec_driver_sql(f'CREATE DATABASE "{name}" TEMPLATE "{template}"')
    admin.dispose()


@pytest.fixture
def settings(sqlite_url, tmp_path, request) -> Settings:
    """Settings for a new, upgraded SQLite database in a temporary folder."""
    config = _settings(sqlite_url, tmp_path)
    _migrated(sqlite_url, request)
    return config


@pytest.fixture
def any_settings(any_url, tmp_path, request) -> Settings:
    """Settings for a new, upgraded database: SQLite and PostgreSQL."""
    config = _settings(any_url, tmp_path)
    _migrated(any_url, request)
    return config


@pytest.fixture
def database(settings):
    db = open_database(settings)
    yield db
    db.dispose()


@pytest.fixture
def any_database(any_settings):
    db = open_database(any_settings)
    yield db
    db.dispose()


class Cli:
    """Runs `dcops` in-process against one database, like a user at a terminal."""

    def __init__(self, settings: Settings):
        self.settings = settings
        self.runner = CliRunner()

    @property
    def env(self) -> dict[str, str]:
        return {"DCOPS_DATABASE_URL": self.settings.database_url, "DCOPS_HOME": str(self.settings.home)}

    def __call__(self, *args: str, expect: int | None = 0):
        from dcops.cli.main import app

        result = self.runner.invoke(app, [str(a) for a in args], env=self.env, catch_exceptions=False)
        if expect is not None:
            assert result.exit_code == expect, (
                f"dcops {' '.join(map(str, args))} exited {result.exit_code}, expected {expect}\n"
                f"stdout: {result.stdout}\nstderr: {result.stderr}"
            )
        return result


@pytest.fixture
def cli(settings) -> Cli:
    return Cli(settings)


@pytest.fixture
def any_cli(any_settings) -> Cli:
    return Cli(any_settings)


@pytest.fixture
def loaded_cli(cli) -> Cli:
    """The CLI on a database holding the sample inventory."""
    cli("inventory", "load", SAMPLE_INVENTORY)
    return cli


@pytest.fixture
def unused_port() -> int:
    """A loopback TCP port nothing listens on."""
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]

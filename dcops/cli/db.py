"""`dcops db`: create and upgrade the database schema."""

from __future__ import annotations

import typer

from dcops.cli.common import settings

app = typer.Typer(help="Create and upgrade the dcops database.", no_args_is_help=True)


@app.command("upgrade")
def upgrade_command() -> None:
    """Create the database if it does not exist and bring its schema up to date.

    The database is DCOPS_DATABASE_URL, else $DCOPS_HOME/dcops.db (SQLite).

    Example: DCOPS_DATABASE_URL=postgresql+psycopg://dcops@/dcops dcops db upgrade
    """
    from dcops.db import upgrade

    result = upgrade(settings())
    if result.from_revision == result.to_revision:
        typer.echo(f"database {result.url} is up to date (schema {result.to_revision})")
    else:
        verb = "created" if result.created or result.from_revision is None else "upgraded"
        typer.echo(f"database {result.url} {verb}: schema {result.from_revision or 'none'} -> {result.to_revision}")


@app.command("status")
def status_command() -> None:
    """Say which database is configured and whether its schema is current.

    Example: dcops db status
    """
    from dcops.db import open_database, redact, SCHEMA_HEAD

    config = settings()
    open_database(config).dispose()
    typer.echo(f"database {redact(config.database_url)}: schema {SCHEMA_HEAD} (current)")

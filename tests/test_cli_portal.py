"""`dcops portal`: people, roles and API tokens from the command line."""

from __future__ import annotations

import csv
import io
import json
import subprocess
import sys

import pytest
import sqlalchemy as sa
import typer

from conftest import SAMPLE_INVENTORY, Cli
from dcops import accounts
from dcops.access import Actor, Grant
from dcops.cli.main import app
from dcops.db import open_database
from dcops.errors import Unauthenticated

PASSWORD = "correct horse battery staple"


@pytest.fixture
def db(loaded_cli):
    database = open_database(loaded_cli.settings)
    yield database
    database.dispose()


def counts(database) -> tuple[int, int, int]:
    """Users, grants and audit entries: for 'nothing written'."""
    with database.transaction() as conn:
        return tuple(conn.execute(sa.text(f"SELECT count(*) FROM {table}")).scalar()
                     for table in ("portal_user", "portal_grant", "audit_entry"))


def add(cli: Cli, name: str, *options: str, password: str = PASSWORD):
    """`dcops portal user add NAME OPTIONS --password-stdin`, the password on standard input."""
    return cli.runner.invoke(app, ["portal", "user", "add", name, *options, "--password-stdin"],
                             input=password + "\n", env=cli.env, catch_exceptions=False)


def test_user_add_from_stdin_then_sign_in(loaded_cli, db):
    result = add(loaded_cli, "somchai", "--ministry", "moh", "--role", "requester", "--role", "viewer",
                 "--display-name", "Somchai K.", "--email", "somchai@moh.gov.la", "--actor", "ops")
    assert result.exit_code == 0, result.stderr
    assert result.stdout == "user somchai added: requester@moh, viewer@moh\n"
    actor = accounts.authenticate(db, "somchai", PASSWORD, client="127.0.0.1")
    assert actor == Actor("somchai", frozenset({Grant("requester", "moh"), Grant("viewer", "moh")}))
    shown = json.loads(loaded_cli("portal", "user", "show", "somchai", "-o", "json").stdout)
    assert (shown["display_name"], shown["email"], shown["source"]) == ("Somchai K.", "somchai@moh.gov.la", "local")
    with db.transaction() as conn:
        entry = conn.execute(sa.text("SELECT actor, after FROM audit_entry WHERE action = 'user.created'")).one()
    assert entry.actor == "ops" and PASSWORD not in str(entry.after)


def test_user_add_on_postgresql(any_cli):
    any_cli("inventory", "load", SAMPLE_INVENTORY)
    result = add(any_cli, "noi", "--grant", "requester@moh", "--grant", "viewer@moes", "--grant", "auditor")
    assert result.exit_code == 0, result.stderr
    database = open_database(any_cli.settings)
    try:
        actor = accounts.authenticate(database, "noi", PASSWORD, client="127.0.0.1")
    finally:
        database.dispose()
    assert actor.grants == frozenset({Grant("requester", "moh"), Grant("viewer", "moes"), Grant("auditor")})


def test_user_add_asks_for_the_password_twice_hidden(loaded_cli, db):
    result = loaded_cli.runner.invoke(app, ["portal", "user", "add", "keo", "--role", "auditor"],
                                      input=f"{PASSWORD}\n{PASSWORD}\n", env=loaded_cli.env, catch_exceptions=False)
    assert result.exit_code == 0, result.stderr
    assert PASSWORD not in result.stdout  # the prompt does not echo it
    assert accounts.authenticate(db, "keo", PASSWORD, client="127.0.0.1").name == "keo"


@pytest.mark.parametrize(("options", "message"), [
    (["--ministry", "moh", "--role", "boss"], "boss@moh: no role 'boss' (one of viewer, requester, operator, "
                                              "security-officer, auditor)"),
    (["--ministry", "mars", "--role", "viewer"], "viewer@mars: unknown ministry 'mars' (see `dcops ministry list`)"),
    (["--role", "requester"], "requester: requester is held in one ministry: give it as requester@MINISTRY "
                              "(or with --ministry CODE)"),
    (["--ministry", "moh", "--role", "operator"], "operator@moh: operator is a data-centre role, held in no one "
                                                  "ministry: give it as operator"),
    (["--grant", "auditor@moh"], "auditor@moh: auditor is a data-centre role, held in no one ministry: give it as "
                                 "auditor"),
    (["--ministry", "moh"], "--ministry moh: give the roles held there with --role"),
])
def test_bad_roles_are_one_line_exit_2_and_nothing_written(loaded_cli, db, options, message):
    before = counts(db)
    result = add(loaded_cli, "somchai", *options)
    assert result.exit_code == 2
    assert result.stderr == f"dcops: error: {message}\n"
    assert result.stdout == ""
    assert counts(db) == before


def test_a_bad_name_and_password_are_said_and_nothing_written(loaded_cli, db):
    before = counts(db)
    result = add(loaded_cli, "Somchai", "--role", "auditor")
    assert result.exit_code == 2 and result.stderr.count("\n") == 1 and "name 'Somchai'" in result.stderr
    short = add(loaded_cli, "somchai", "--role", "auditor", password="short")
    assert short.exit_code == 2
    assert short.stderr == "dcops: error: password: must be at least 12 characters\n"
    empty = loaded_cli.runner.invoke(app, ["portal", "user", "add", "somchai", "--role", "auditor",
                                           "--password-stdin"], input="", env=loaded_cli.env)
    assert empty.exit_code == 2 and "standard input is empty" in empty.stderr
    several = add(loaded_cli, "Somchai", "--role", "boss", "--grant", "viewer")
    assert several.exit_code == 2
    assert several.stderr.splitlines()[-1] == "dcops: error: 3 problem(s) found, nothing written"
    assert counts(db) == before
    add(loaded_cli, "somchai", "--role", "auditor")
    again = add(loaded_cli, "somchai", "--role", "auditor")
    assert again.exit_code == 2 and again.stderr == "dcops: error: user somchai already exists\n"


def test_user_list_show_grant_disable_enable(loaded_cli, db):
    add(loaded_cli, "somchai", "--ministry", "moh", "--role", "requester",
        "--display-name", "Somchai Phommachanh of the Department of Planning and Cooperation")
    add(loaded_cli, "a.very.long.sign-in.name.for.the.table.to.cut.down.to.size", "--grant", "viewer@moh",
        "--grant", "viewer@moes", "--grant", "viewer@mof", "--grant", "requester@mpi", "--grant", "auditor")
    table = loaded_cli("portal", "user", "list").stdout
    assert table.splitlines()[0].split() == ["NAME", "SOURCE", "STATUS", "DISPLAY", "NAME", "ROLES"]
    assert all(len(line) <= 80 for line in table.splitlines()), table
    # Names are cut to fit, roles never: they wrap.
    assert "a.very.long.sign-in…" in table and "Somchai Phommacha…" in table
    for role in ("auditor", "requester@mpi", "viewer@moes", "viewer@mof", "viewer@moh", "requester@moh"):
        assert role in table.replace(",", " ").split(), role
    rows = json.loads(loaded_cli("portal", "user", "list", "-o", "json").stdout)
    assert [r["name"] for r in rows][1] == "somchai" and rows[1]["roles"] == ["requester@moh"]
    listed = list(csv.DictReader(io.StringIO(loaded_cli("portal", "user", "list", "-o", "csv").stdout)))
    assert listed[1]["roles"] == "requester@moh" and listed[1]["disabled"] == "False"

    granted = loaded_cli("portal", "user", "grant", "somchai", "--grant", "viewer@moes", "--grant", "auditor")
    assert granted.stdout == "user somchai now holds: auditor, viewer@moes\n"
    assert loaded_cli("portal", "user", "grant", "somchai", expect=2).stderr.startswith("dcops: error: give the roles")
    assert loaded_cli("portal", "user", "grant", "somchai", "--none").stdout == "user somchai now holds: no roles\n"

    token, _csrf = accounts.open_session(db, "somchai", client="127.0.0.1")
    assert loaded_cli("portal", "user", "disable", "somchai").stdout.startswith("user somchai disabled")
    assert accounts.session_for(db, token) is None
    show = loaded_cli("portal", "user", "show", "somchai").stdout
    assert "Status:       disabled" in show and all(len(line) <= 80 for line in show.splitlines())
    with pytest.raises(Unauthenticated):
        accounts.authenticate(db, "somchai", PASSWORD, client="127.0.0.1")
    assert loaded_cli("portal", "user", "disable", "somchai", expect=2).stderr.startswith(
        "dcops: error: user somchai is already disabled")
    loaded_cli("portal", "user", "enable", "somchai")
    assert accounts.authenticate(db, "somchai", PASSWORD, client="127.0.0.1").name == "somchai"
    missing = loaded_cli("portal", "user", "show", "nobody", expect=2)
    assert missing.stderr == "dcops: error: no user nobody\n"


def test_reset_password_from_stdin(loaded_cli, db):
    add(loaded_cli, "somchai", "--role", "auditor")
    result = loaded_cli.runner.invoke(app, ["portal", "user", "reset-password", "somchai", "--password-stdin"],
                                      input="a brand new passphrase\r\n", env=loaded_cli.env)
    assert result.exit_code == 0, result.stderr
    assert accounts.authenticate(db, "somchai", "a brand new passphrase", client="127.0.0.1").name == "somchai"
    nobody = loaded_cli.runner.invoke(app, ["portal", "user", "reset-password", "nobody", "--password-stdin"],
                                      input="a brand new passphrase\n", env=loaded_cli.env)
    assert nobody.exit_code == 2 and nobody.stderr == "dcops: error: no user nobody\n"


def test_token_create_prints_it_once_then_list_and_revoke(loaded_cli, db):
    add(loaded_cli, "somchai", "--ministry", "moh", "--role", "requester")
    created = loaded_cli("portal", "token", "create", "--user", "somchai", "--label", "nightly export")
    token = created.stdout.strip()
    assert created.stdout == token + "\n" and token.startswith("dcops_")
    assert created.stderr.count("\n") == 1 and "shown this once" in created.stderr
    assert accounts.token_actor(db, token).name == "somchai"
    listing = loaded_cli("portal", "token", "list", "--user", "somchai").stdout
    assert token[:12] in listing and token not in listing and "nightly export" in listing
    assert all(len(line) <= 80 for line in listing.splitlines())
    [row] = json.loads(loaded_cli("portal", "token", "list", "-o", "json").stdout)
    assert (row["user"], row["prefix"], row["revoked_at"]) == ("somchai", token[:12], None)
    revoked = loaded_cli("portal", "token", "revoke", token[:12])
    assert revoked.stdout == f"token {token[:12]} (id 1) of user somchai revoked\n"
    assert accounts.token_actor(db, token) is None
    assert "revoked" in loaded_cli("portal", "token", "list").stdout
    assert loaded_cli("portal", "token", "revoke", "dcops_nopeno", expect=2).stderr.startswith(
        "dcops: error: no token dcops_nopeno")
    assert loaded_cli("portal", "token", "create", "--user", "nobody", expect=2).stderr == \
        "dcops: error: no user nobody\n"


def _commands(group, path=()):
    for name, command in group.commands.items():
        if hasattr(command, "commands"):
            yield from _commands(command, (*path, name))
        else:
            yield (*path, name)


def test_every_portal_command_has_help_with_an_example(cli):
    portal = typer.main.get_command(app).commands["portal"]
    commands = list(_commands(portal))
    assert ("user", "add") in commands and ("token", "revoke") in commands and len(commands) >= 10
    for path in commands:
        text = cli("portal", *path, "--help").stdout
        assert "Example: dcops portal " + " ".join(path) in text, path


def test_the_cli_starts_without_argon2_or_the_accounts_library():
    code = ("import sys; import dcops.cli.main; "
            "print(sorted(m for m in ('argon2', 'dcops.accounts', 'fastapi') if m in sys.modules))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"

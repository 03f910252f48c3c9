"""`dcops portal`: the ministry portal's people, their API tokens, and the web server."""

from __future__ import annotations

import sys
import textwrap
from typing import TYPE_CHECKING, Annotated, Optional

import typer

from dcops.cli.common import (OUTPUT_HELP, TABLE_WIDTH, ActorOption, Output, RecordOutput, RecordOutputOption,
                              echo_csv, echo_json, echo_table, open_database, printable)

if TYPE_CHECKING:
    from dcops.access import Grant
    from dcops.db import Database

app = typer.Typer(help="The ministry portal: the people who sign in to it, their roles and API tokens.",
                  no_args_is_help=True)
user_app = typer.Typer(help="People who sign in to the portal, and the roles they hold.", no_args_is_help=True)
token_app = typer.Typer(help="API tokens: bearer tokens for a person's scripts, acting with that person's roles.",
                        no_args_is_help=True)
app.add_typer(user_app, name="user")
app.add_typer(token_app, name="token")

USER_COLUMNS = ("name", "display_name", "email", "source", "roles", "disabled", "created_at")
TOKEN_COLUMNS = ("id", "user", "prefix", "label", "created_at", "last_used_at", "revoked_at")

OutputOption = Annotated[Output, typer.Option("--output", "-o", help=OUTPUT_HELP)]
NameArgument = Annotated[str, typer.Argument(help="The sign-in name (lower case: a-z, 0-9, '.', '_', '-').")]
MinistryOption = Annotated[Optional[str], typer.Option(
    "--ministry", help="The ministry (its code) in which the --role roles are held.")]
RoleOption = Annotated[Optional[list[str]], typer.Option(
    "--role", help="viewer or requester (with --ministry), or a data-centre role: operator, security-officer, "
                   "auditor. Repeat for several.")]
GrantOption = Annotated[Optional[list[str]], typer.Option(
    "--grant", help="ROLE@MINISTRY (requester@moh) or a data-centre ROLE (auditor), for roles in several "
                    "ministries. Repeat for several.")]
PasswordStdinOption = Annotated[bool, typer.Option(
    "--password-stdin", help="Read the password from the first line of standard input (no prompt).")]


def _grants(database: "Database", ministry: str | None, roles: list[str] | None,
            grants: list[str] | None, *, name: str | None = None) -> "frozenset[Grant]":
    """The roles given as options, checked against the ministries that exist; every problem at once."""
    from dcops.accounts import check_name, ministry_codes, parse_grants
    from dcops.errors import ValidationError

    problems = check_name(name) if name is not None else []
    if ministry is not None and not roles:
        problems.append(f"--ministry {ministry}: give the roles held there with --role")
    values = [f"{role}@{ministry}" if ministry is not None else role for role in roles or ()] + list(grants or ())
    with database.transaction() as conn:
        codes = ministry_codes(conn)
    try:
        parsed = parse_grants(values, ministries=codes)
    except ValidationError as error:
        problems += error.problems
    if problems:
        raise ValidationError(problems)
    return parsed


def _read_password(from_stdin: bool) -> str:
    """The new password: the first line of standard input, or typed twice at a hidden prompt."""
    from dcops.errors import UserError

    if from_stdin:
        line = sys.stdin.readline()
        if not line:
            raise UserError("--password-stdin: standard input is empty; give the password on its first line")
        return line.rstrip("\r\n")
    return typer.prompt("Password", hide_input=True, confirmation_prompt=True)


NAME_WIDTH = 20
DISPLAY_NAME_WIDTH = 18


def format_users(users: list[dict], width: int = TABLE_WIDTH) -> str:
    """The people as a table: a long name or display name cut with '…', the roles last and whole,
    wrapped over as many lines as they take."""
    def cut(text: str, room: int) -> str:
        text = printable(text)
        return text if len(text) <= room else text[: room - 1] + "…"

    headers = ("NAME", "SOURCE", "STATUS", "DISPLAY NAME", "ROLES")
    cells = [(cut(u["name"], NAME_WIDTH), u["source"], "disabled" if u["disabled"] else "active",
              cut(u["display_name"] or "-", DISPLAY_NAME_WIDTH), [printable(r) for r in u["roles"]] or ["-"])
             for u in users]
    widths = [max([len(h), *(len(c[i]) for c in cells)]) for i, h in enumerate(headers[:4])]
    indent = sum(widths) + 2 * len(widths)
    room = max(width - indent, 16)
    lines = ["  ".join(h.ljust(w) for h, w in zip(headers, widths)) + "  ROLES"]
    for *first, roles in cells:
        wrapped = textwrap.wrap(", ".join(roles), room, break_on_hyphens=False) or ["-"]
        lines.append(("  ".join(c.ljust(w) for c, w in zip(first, widths)) + "  " + wrapped[0]).rstrip())
        lines += [" " * indent + more for more in wrapped[1:]]
    return "\n".join(lines)


def _user_lines(user: dict) -> None:
    lines = [
        ("Name", user["name"]),
        ("Display name", user["display_name"] or "-"),
        ("Email", user["email"] or "-"),
        ("Signs in", "with a password" if user["source"] == "local" else "through OpenID Connect"),
        ("Status", "disabled" if user["disabled"] else "active"),
        ("Roles", ", ".join(user["roles"]) or "none"),
        ("Created", user["created_at"]),
    ]
    for label, value in lines:
        typer.echo(textwrap.fill(printable(value), TABLE_WIDTH, initial_indent=f"{label + ':':<14}",
                                 subsequent_indent=" " * 14))


def _echo_user(user: dict, output: RecordOutput, done: str) -> None:
    if output == RecordOutput.json:
        echo_json(user)
    else:
        typer.echo(printable(f"user {user['name']} {done}: {', '.join(user['roles']) or 'no roles'}"))


# --------------------------------------------------------------------------- dcops portal user


@user_app.command("add")
def user_add_command(
    name: NameArgument,
    ministry: MinistryOption = None,
    role: RoleOption = None,
    grant: GrantOption = None,
    display_name: Annotated[str, typer.Option("--display-name", help="The person's name as shown.")] = "",
    email: Annotated[str, typer.Option("--email", help="Where the portal's notifications go.")] = "",
    password_stdin: PasswordStdinOption = False,
    actor: ActorOption = None,
    output: RecordOutputOption = RecordOutput.table,
) -> None:
    """Add a person who signs in with a password, with their roles (asks for the password twice,
    hidden, unless --password-stdin).

    The password: at least 12 characters, not the sign-in name; only its Argon2 hash is kept.

    Example: dcops portal user add somchai --ministry moh --role requester --role viewer
    --display-name "Somchai K." --email somchai@moh.gov.la
    """
    from dcops.accounts import add_user

    database = open_database()
    grants = _grants(database, ministry, role, grant, name=name)
    password = _read_password(password_stdin)
    user = add_user(database, name, grants=grants, password=password, display_name=display_name, email=email,
                    actor=actor)
    _echo_user(user, output, "added")


@user_app.command("list")
def user_list_command(output: OutputOption = Output.table) -> None:
    """List the portal's people, by name, with their roles.

    JSON keys: name, display_name, email, source (local or oidc), roles (role@ministry or a
    data-centre role), disabled, created_at.

    Example: dcops portal user list --output json
    """
    from dcops.accounts import list_users

    with open_database().transaction() as conn:
        users = list_users(conn)
    if output == Output.json:
        echo_json(users)
    elif output == Output.csv:
        echo_csv([{**u, "roles": " ".join(u["roles"])} for u in users], USER_COLUMNS)
    else:
        typer.echo(format_users(users))


@user_app.command("show")
def user_show_command(name: NameArgument, output: RecordOutputOption = RecordOutput.table) -> None:
    """Show one person: how they sign in, whether they may, their roles.

    Example: dcops portal user show somchai
    """
    from dcops.accounts import show_user

    with open_database().transaction() as conn:
        user = show_user(conn, name)
    if output == RecordOutput.json:
        echo_json(user)
    else:
        _user_lines(user)


@user_app.command("grant")
def user_grant_command(
    name: NameArgument,
    ministry: MinistryOption = None,
    role: RoleOption = None,
    grant: GrantOption = None,
    none: Annotated[bool, typer.Option("--none", help="Take every role away (the person then sees nothing).")] = False,
    actor: ActorOption = None,
    output: RecordOutputOption = RecordOutput.table,
) -> None:
    """Replace a person's roles with those given (audited). Their sessions and API tokens act with the
    new roles from their next request.

    Example: dcops portal user grant somchai --grant requester@moh --grant viewer@moes
    """
    from dcops.accounts import set_grants
    from dcops.errors import UserError

    if none and (role or grant or ministry):
        raise UserError("--none takes every role away: give it alone, without --role, --grant or --ministry")
    if not none and not (role or grant):
        raise UserError("give the roles the person is to hold (--role, --grant), or --none to take every role away")
    database = open_database()
    grants = frozenset() if none else _grants(database, ministry, role, grant)
    user = set_grants(database, name, grants, actor=actor)
    _echo_user(user, output, "now holds")


@user_app.command("disable")
def user_disable_command(name: NameArgument, actor: ActorOption = None) -> None:
    """Stop a person signing in: their sessions and API tokens are revoked at once (audited).

    Example: dcops portal user disable somchai
    """
    from dcops.accounts import disable_user

    disable_user(open_database(), name, actor=actor)
    typer.echo(f"user {name} disabled; its sessions and API tokens are revoked")


@user_app.command("enable")
def user_enable_command(name: NameArgument, actor: ActorOption = None) -> None:
    """Let a disabled person sign in again (tokens revoked when they were disabled stay revoked).

    Example: dcops portal user enable somchai
    """
    from dcops.accounts import enable_user

    enable_user(open_database(), name, actor=actor)
    typer.echo(f"user {name} enabled")


@user_app.command("reset-password")
def user_reset_password_command(
    name: NameArgument,
    password_stdin: PasswordStdinOption = False,
    actor: ActorOption = None,
) -> None:
    """Give a person a new password (asked twice, hidden, unless --password-stdin); signs them out
    everywhere (audited, without the password).

    Example: dcops portal user reset-password somchai --password-stdin < new-password.txt
    """
    from dcops.accounts import check_name, reset_password
    from dcops.errors import ValidationError

    problems = check_name(name)
    if problems:
        raise ValidationError(problems)
    database = open_database()
    with database.transaction() as conn:
        from dcops.accounts import show_user

        show_user(conn, name, actor=actor)  # no such user: said before the password is asked for
    reset_password(database, name, _read_password(password_stdin), actor=actor)
    typer.echo(f"user {name}: password changed; signed out of every session")


# --------------------------------------------------------------------------- dcops portal token


@token_app.command("create")
def token_create_command(
    user: Annotated[str, typer.Option("--user", help="Whose token: it acts with their roles.")],
    label: Annotated[str, typer.Option("--label", help="What it is for, to tell tokens apart.")] = "",
    actor: ActorOption = None,
) -> None:
    """Make an API token and print it, this once: only its hash is kept (audited by its prefix).

    Example: dcops portal token create --user somchai --label "nightly export"
    """
    from dcops.accounts import create_token

    token = create_token(open_database(), user, label=label, actor=actor)
    typer.echo(token)
    typer.echo("note: the token is shown this once and cannot be read again; keep it now", err=True)


@token_app.command("list")
def token_list_command(
    user: Annotated[Optional[str], typer.Option("--user", help="Only this person's tokens.")] = None,
    output: OutputOption = Output.table,
) -> None:
    """List API tokens (their prefixes, never the tokens), oldest first.

    JSON keys: id, user, prefix, label, created_at, last_used_at, revoked_at (ISO 8601 UTC or null).

    Example: dcops portal token list --user somchai
    """
    from dcops.accounts import list_tokens

    with open_database().transaction() as conn:
        tokens = list_tokens(conn, name=user)
    if output == Output.json:
        echo_json(tokens)
    elif output == Output.csv:
        echo_csv(tokens, TOKEN_COLUMNS)
    else:
        def minute(value: str | None) -> str:
            return value[:16].replace("T", " ") if value else "never"

        echo_table(((t["id"], t["prefix"], t["user"], "revoked" if t["revoked_at"] else "active",
                     t["created_at"][:10], minute(t["last_used_at"]), t["label"] or "-") for t in tokens),
                   ("ID", "PREFIX", "USER", "STATUS", "CREATED", "LAST USED (UTC)", "LABEL"),
                   right=(0,), shrink=(6, 2))


@token_app.command("revoke")
def token_revoke_command(
    prefix: Annotated[str, typer.Argument(help="The token's prefix or id, as `dcops portal token list` shows.")],
    actor: ActorOption = None,
) -> None:
    """Revoke an API token: it stops working at once (audited).

    Example: dcops portal token revoke dcops_Ab3xYz
    """
    from dcops.accounts import revoke_token

    token = revoke_token(open_database(), prefix, actor=actor)
    typer.echo(printable(f"token {token['prefix']} (id {token['id']}) of user {token['user']} revoked"))


# --------------------------------------------------------------------------- dcops portal serve


@app.command("serve")
def serve_command(
    host: Annotated[str, typer.Option(help="The address to listen on: loopback, behind a reverse proxy "
                                           "that holds TLS (see the README).")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="The TCP port.", min=1, max=65535)] = 8080,
    workers: Annotated[int, typer.Option(help="Worker processes; they share the database and its sessions.",
                                         min=1, max=64)] = 1,
    proxy_headers: Annotated[bool, typer.Option("--proxy-headers", help="Trust X-Forwarded-For/-Proto from "
                                                "--forwarded-allow-ips (the reverse proxy).")] = False,
    forwarded_allow_ips: Annotated[str, typer.Option(help="The proxy addresses whose X-Forwarded headers "
                                                     "are trusted.")] = "127.0.0.1",
) -> None:
    """Serve the ministry portal (pages and the JSON API under /api/v1) until Ctrl-C.

    The database must be at the current schema (`dcops db upgrade`). Behind a reverse proxy, set
    DCOPS_PORTAL_ORIGIN to the address browsers use (https://portal.example.gov.la).

    Example: dcops portal serve --port 8080 --workers 2
    """
    from dcops.portal.server import serve

    open_database().dispose()  # a missing or outdated database is told here, in one line, not by each worker
    typer.echo(f"serving the portal on http://{host}:{port}/ ({workers} worker{'s' if workers > 1 else ''}; "
               "Ctrl-C to stop)", err=True)
    serve(host=host, port=port, workers=workers, proxy_headers=proxy_headers,
          forwarded_allow_ips=forwarded_allow_ips)

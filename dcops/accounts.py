"""The portal's people: accounts, roles, passwords, sessions and API tokens."""

from __future__ import annotations

import hashlib
import math
import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cache
from typing import Iterable

from sqlalchemy import delete, insert, select, update
from sqlalchemy.engine import Connection

from dcops import audit
from dcops.access import MINISTRY_ROLES, ROLES, STAFF_ROLES, Actor, Grant, as_actor, authorize
from dcops.db import Database, iso_utc, utcnow
from dcops.errors import Conflict, DatabaseBusy, NotFound, TooManyAttempts, Unauthenticated, ValidationError
from dcops.models import (Ministry, api_token_table, portal_grant_table, portal_session_table, portal_user_table,
                          signin_failure_table)
from dcops.vocabulary import is_name

T_USER = portal_user_table
T_GRANT = portal_grant_table
T_SESSION = portal_session_table
T_TOKEN = api_token_table
T_FAILURE = signin_failure_table
T_MINISTRY = Ministry.__table__

# Sign-in names: lower case, 2 to 63 characters; they become the audit log's actors.
NAME_PATTERN = r"^[a-z][a-z0-9._-]{1,62}$"
_NAME_RE = re.compile(NAME_PATTERN)
SOURCES = ("local", "oidc")  # a password kept here, or the identity provider's word
LANGUAGES = ("en", "lo")
MAX_DISPLAY_NAME = 200
MAX_EMAIL = 254
MAX_TOKEN_LABEL = 100
_EMAIL_RE = re.compile(r"^[^@\s]+@[^@\s]+$")

MIN_PASSWORD_LENGTH = 12
MAX_PASSWORD_LENGTH = 1024  # past this a "password" is an attempt to make the hash work for nothing

# Argon2id (argon2-cffi's PasswordHasher), sized for this data centre's 2-core machines: 64 MiB
# and two passes over it on two lanes (RFC 9106's second choice is 64 MiB with 3 passes on 4
# lanes: 171 ms here; OWASP's floor is 19 MiB, 2 passes). Measured on the 2-core machine, idle:
# one verify 102 ms; `authenticate` end to end (bench/bench_portal_signin.py, a SQLite file,
# 20 runs) median 113 ms against the target of 150 ms; with another test run on both CPUs,
# 119-160 ms. More passes or memory would push a sign-in past the target; fewer would make a
# stolen table cheaper to guess through. A hash made with other parameters is redone at its
# next successful sign-in.
ARGON2_TIME_COST = 2
ARGON2_MEMORY_COST_KIB = 64 * 1024
ARGON2_PARALLELISM = 2
# A hash with these parameters, of a password nobody knows: what a sign-in for a name with no
# password (none such, an OIDC account) is checked against, so its answer takes as long.
_DUMMY_HASH = "$argon2id$v=19$m=65536,t=2,p=2$3JiAxiw+T0Iv483TZdA80w$oj9hlJ8tP2RBW/vQ9PGBpLAZDTSWII9SWrK3sDSf0RU"

# Guessing passwords: at most this many failed sign-ins in FAILURE_WINDOW, per sign-in name and
# per client address; the attempt after that is refused before its password is checked.
MAX_FAILURES_PER_NAME = 5
MAX_FAILURES_PER_CLIENT = 20
FAILURE_WINDOW = timedelta(minutes=15)
FAILURE_RETENTION = timedelta(days=1)  # older failure rows are deleted (the audit log keeps them all)
WRONG_CREDENTIALS = "wrong name or password"  # the one answer, whatever was wrong
ANONYMOUS = "anonymous"  # the audit actor of a failed sign-in: nobody has proved who they are
_MAX_ATTEMPT_TEXT = 200  # a sign-in name or client address is cut to this before it is stored

# Sessions: signed out after IDLE_TIMEOUT without a request, and ABSOLUTE_TIMEOUT after sign-in whatever.
IDLE_TIMEOUT = timedelta(minutes=30)
ABSOLUTE_TIMEOUT = timedelta(hours=12)
# last_seen_at (sessions) and last_used_at (tokens) are written at most this often, so that
# most requests only read.
TOUCH_INTERVAL = timedelta(minutes=1)
_MAX_BEARER_TEXT = 512  # a cookie or bearer token longer than this is no token of ours

TOKEN_PREFIX = "dcops_"
TOKEN_PREFIX_LENGTH = 12  # the stored `prefix`: "dcops_" and 6 more characters, to tell tokens apart


# --------------------------------------------------------------------------- names, roles, profiles


def check_name(name: str) -> list[str]:
    """The problems of a sign-in name (none: an empty list)."""
    if isinstance(name, str) and _NAME_RE.match(name):
        return []
    return [f"name {name!r}: must be 2-63 characters of a-z, 0-9, '.', '_' or '-', starting with a lower-case "
            "letter"]


def _require_name(name: str) -> None:
    problems = check_name(name)
    if problems:
        raise ValidationError(problems)


def _profile_problems(display_name: str, email: str) -> list[str]:
    problems = []
    if not isinstance(display_name, str) or len(display_name) > MAX_DISPLAY_NAME or not display_name.isprintable():
        problems.append(f"display name: must be one line of at most {MAX_DISPLAY_NAME} characters")
    if not isinstance(email, str) or (email and (len(email) > MAX_EMAIL or not _EMAIL_RE.match(email))):
        problems.append(f"email {email!r}: must be an address such as someone@moh.gov.la (or empty)")
    return problems


def password_problems(password: str, name: str) -> list[str]:
    """What is wrong with `password` for the user `name` (never the password itself)."""
    if not isinstance(password, str):
        return ["password: must be text"]
    problems = []
    if len(password) < MIN_PASSWORD_LENGTH:
        problems.append(f"password: must be at least {MIN_PASSWORD_LENGTH} characters")
    if len(password) > MAX_PASSWORD_LENGTH:
        problems.append(f"password: must be at most {MAX_PASSWORD_LENGTH} characters")
    if password.strip().casefold() == str(name).casefold():
        problems.append("password: must not be the sign-in name")
    return problems


def parse_grants(values: list[str], *, ministries: Iterable[str] | None = None) -> frozenset[Grant]:
    """Roles as the CLI gives them: `ROLE@MINISTRY` for a ministry role, a bare `ROLE` for a staff one.

    `ministries`: the ministry codes that exist, when the caller has them; without them only
    the codes' form is checked here (`add_user` and `set_grants` check they exist). Every
    problem is reported at once (ValidationError).
    """
    known = set(ministries) if ministries is not None else None
    grants, problems = set(), []
    for value in values:
        role, at, ministry = str(value).strip().partition("@")
        if role not in ROLES:
            problems.append(f"{value}: no role {role!r} (one of {', '.join(ROLES)})")
        elif role in MINISTRY_ROLES and not ministry:
            problems.append(f"{value}: {role} is held in one ministry: give it as {role}@MINISTRY "
                            "(or with --ministry CODE)")
        elif role in STAFF_ROLES and at:
            problems.append(f"{value}: {role} is a data-centre role, held in no one ministry: give it as {role}")
        elif ministry and not is_name(ministry):
            problems.append(f"{value}: {ministry!r} is not a ministry code")
        elif ministry and known is not None and ministry not in known:
            problems.append(f"{value}: unknown ministry {ministry!r} (see `dcops ministry list`)")
        else:
            grants.add(Grant(role, ministry or None))
    if problems:
        raise ValidationError(problems)
    return frozenset(grants)


def _grant_problems(grants: Iterable[Grant]) -> list[str]:
    """A Grant built by hand (the web app) is held to the same rules as one parsed from text."""
    problems = []
    for grant in grants:
        shown = f"{grant.role}@{grant.ministry}" if grant.ministry else grant.role
        if grant.role not in ROLES:
            problems.append(f"{shown}: no role {grant.role!r} (one of {', '.join(ROLES)})")
        elif grant.role in MINISTRY_ROLES and not grant.ministry:
            problems.append(f"{shown}: {grant.role} is held in one ministry: give it as {grant.role}@MINISTRY")
        elif grant.role in STAFF_ROLES and grant.ministry is not None:
            problems.append(f"{shown}: {grant.role} is a data-centre role, held in no one ministry")
    return problems


def role_names(grants: Iterable[Grant]) -> list[str]:
    """Grants as sorted text: `requester@moh`, `operator`."""
    return sorted(f"{g.role}@{g.ministry}" if g.ministry else g.role for g in grants)


def _ministry_ids(conn: Connection, grants: Iterable[Grant]) -> tuple[dict[str, int], list[str]]:
    """The ids of the grants' ministries, and a problem for each code that names none."""
    codes = sorted({g.ministry for g in grants if g.ministry})
    found = dict(conn.execute(select(T_MINISTRY.c.code, T_MINISTRY.c.id).where(T_MINISTRY.c.code.in_(codes))).all()) \
        if codes else {}
    return found, [f"unknown ministry {code!r} (see `dcops ministry list`)" for code in codes if code not in found]


def _grants_by_user(conn: Connection, user_ids: list[int] | None = None) -> dict[int, frozenset[Grant]]:
    query = (select(T_GRANT.c.user_id, T_GRANT.c.role, T_MINISTRY.c.code)
             .outerjoin(T_MINISTRY, T_MINISTRY.c.id == T_GRANT.c.ministry_id))
    if user_ids is not None:
        query = query.where(T_GRANT.c.user_id.in_(user_ids))
    held: dict[int, set[Grant]] = {}
    for user_id, role, code in conn.execute(query):
        held.setdefault(user_id, set()).add(Grant(role, code))
    return {user_id: frozenset(grants) for user_id, grants in held.items()}


def _write_grants(conn: Connection, user_id: int, grants: frozenset[Grant], ministry_ids: dict[str, int]) -> None:
    conn.execute(delete(T_GRANT).where(T_GRANT.c.user_id == user_id))
    if grants:
        conn.execute(insert(T_GRANT), [
            {"user_id": user_id, "role": g.role, "ministry_id": ministry_ids[g.ministry] if g.ministry else None}
            for g in sorted(grants, key=lambda g: (g.role, g.ministry or ""))
        ])


def _user_dict(row, grants: frozenset[Grant]) -> dict:
    return {
        "name": row.name,
        "display_name": row.display_name,
        "email": row.email,
        "source": row.source,
        "roles": role_names(grants),
        "disabled": row.disabled_at is not None,
        "created_at": iso_utc(row.created_at),
    }


def _user_row(conn: Connection, name: str):
    return conn.execute(select(T_USER).where(T_USER.c.name == name)).first()


def _require_user(conn: Connection, name: str):
    row = _user_row(conn, name)
    if row is None:
        raise NotFound(f"no user {name}")
    return row


def _show(conn: Connection, row) -> dict:
    return _user_dict(row, _grants_by_user(conn, [row.id]).get(row.id, frozenset()))


# --------------------------------------------------------------------------- passwords


@cache
def _hasher():
    from argon2 import PasswordHasher

    return PasswordHasher(time_cost=ARGON2_TIME_COST, memory_cost=ARGON2_MEMORY_COST_KIB,
                          parallelism=ARGON2_PARALLELISM)


@cache
def _dummy_hash() -> str:
    # Made afresh (once) only when the parameters above changed and the constant was not redone.
    if _hasher().check_needs_rehash(_DUMMY_HASH):
        return _hasher().hash(secrets.token_urlsafe(24))
    return _DUMMY_HASH


def hash_password(password: str) -> str:
    """The Argon2id hash of `password` (`$argon2id$...`, its salt and parameters inside)."""
    return _hasher().hash(password)


def _verify(stored: str, password: str) -> bool:
    from argon2.exceptions import InvalidHashError, VerificationError

    try:
        return _hasher().verify(stored, password)
    except (VerificationError, InvalidHashError):
        return False


# --------------------------------------------------------------------------- managing people


def add_user(
    database: Database, name: str, *, grants: frozenset[Grant], password: str | None, display_name: str = "",
    email: str = "", source: str = "local", actor: Actor | str | None = None,
) -> dict:
    """Create a portal account with its roles; audited `user.created` (without any password or hash).

    A local account without a password cannot sign in until `reset_password` gives it one.
    """
    manager = as_actor(actor)
    authorize(manager, "portal.manage")
    problems = check_name(name) + _profile_problems(display_name, email) + _grant_problems(grants)
    if source not in SOURCES:
        problems.append(f"source {source!r}: must be one of {', '.join(SOURCES)}")
    elif source == "oidc" and password is not None:
        problems.append("password: an account that signs in through OpenID Connect has none here")
    if password is not None:
        problems += password_problems(password, name)
    if not problems:
        with database.transaction() as conn:
            problems += _ministry_ids(conn, grants)[1]
    if problems:
        raise ValidationError(problems)
    # Hashed before the write transaction: no writer waits the ~0.1 s it takes.
    password_hash = hash_password(password) if password is not None else None
    now = utcnow()
    with database.transaction(immediate=True) as conn:
        ministry_ids, missing = _ministry_ids(conn, grants)
        if missing:
            raise ValidationError(missing)
        if _user_row(conn, name) is not None:
            raise Conflict(f"user {name} already exists")
        user_id = conn.execute(insert(T_USER).values(
            name=name, display_name=display_name, email=email, source=source, password_hash=password_hash,
            language="en", created_at=now, updated_at=now,
        ).returning(T_USER.c.id)).scalar_one()
        _write_grants(conn, user_id, grants, ministry_ids)
        user = _show(conn, _require_user(conn, name))
        audit.record(conn, audit.Event(manager.name, "user.created", "user", name, None,
                                       {**user, "password_set": password_hash is not None}))
    return user


def list_users(conn: Connection, *, actor: Actor | str | None = None) -> list[dict]:
    """Every account, by name."""
    authorize(as_actor(actor), "portal.manage")
    rows = conn.execute(select(T_USER).order_by(T_USER.c.name)).all()
    grants = _grants_by_user(conn)
    return [_user_dict(row, grants.get(row.id, frozenset())) for row in rows]


def show_user(conn: Connection, name: str, *, actor: Actor | str | None = None) -> dict:
    """One account (a person may read their own; others need portal.manage)."""
    who = as_actor(actor)
    if who.name != name:
        authorize(who, "portal.manage")
    return _show(conn, _require_user(conn, name))


def set_grants(database: Database, name: str, grants: frozenset[Grant], *, actor: Actor | str | None = None) -> dict:
    """Replace the account's roles; audited `user.roles-changed` when they change. Sessions and tokens
    act with the new roles from their next request."""
    manager = as_actor(actor)
    authorize(manager, "portal.manage")
    problems = _grant_problems(grants)
    if problems:
        raise ValidationError(problems)
    with database.transaction(immediate=True) as conn:
        row = _require_user(conn, name)
        ministry_ids, missing = _ministry_ids(conn, grants)
        if missing:
            raise ValidationError(missing)
        _change_grants(conn, row, frozenset(grants), ministry_ids, manager.name)
        return _show(conn, _require_user(conn, name))


def _change_grants(conn: Connection, row, grants: frozenset[Grant], ministry_ids: dict[str, int],
                   actor_name: str, extra: dict | None = None) -> bool:
    before = _grants_by_user(conn, [row.id]).get(row.id, frozenset())
    if before == grants:
        return False
    _write_grants(conn, row.id, grants, ministry_ids)
    conn.execute(update(T_USER).where(T_USER.c.id == row.id).values(updated_at=utcnow()))
    audit.record(conn, audit.Event(actor_name, "user.roles-changed", "user", row.name,
                                   {"roles": role_names(before)}, {"roles": role_names(grants), **(extra or {})}))
    return True


def disable_user(database: Database, name: str, *, actor: Actor | str | None = None) -> dict:
    """Stop the account signing in; its sessions and API tokens are revoked in the same transaction."""
    manager = as_actor(actor)
    authorize(manager, "portal.manage")
    now = utcnow()
    with database.transaction(immediate=True) as conn:
        row = _require_user(conn, name)
        if row.disabled_at is not None:
            raise Conflict(f"user {name} is already disabled (since {iso_utc(row.disabled_at)})")
        conn.execute(update(T_USER).where(T_USER.c.id == row.id).values(disabled_at=now, updated_at=now))
        sessions = revoke_sessions(conn, row.id, now)
        tokens = conn.execute(update(T_TOKEN).where(T_TOKEN.c.user_id == row.id, T_TOKEN.c.revoked_at.is_(None))
                              .values(revoked_at=now)).rowcount
        audit.record(conn, audit.Event(manager.name, "user.disabled", "user", name, {"disabled": False},
                                       {"disabled": True, "sessions_revoked": sessions, "tokens_revoked": tokens}))
        return _show(conn, _require_user(conn, name))


def enable_user(database: Database, name: str, *, actor: Actor | str | None = None) -> dict:
    """Let a disabled account sign in again (the tokens revoked when it was disabled stay revoked)."""
    manager = as_actor(actor)
    authorize(manager, "portal.manage")
    with database.transaction(immediate=True) as conn:
        row = _require_user(conn, name)
        if row.disabled_at is None:
            raise Conflict(f"user {name} is not disabled")
        conn.execute(update(T_USER).where(T_USER.c.id == row.id).values(disabled_at=None, updated_at=utcnow()))
        audit.record(conn, audit.Event(manager.name, "user.enabled", "user", name, {"disabled": True},
                                       {"disabled": False}))
        return _show(conn, _require_user(conn, name))


def reset_password(database: Database, name: str, password: str, *, actor: Actor | str | None = None) -> dict:
    """Give a local account a new password and sign it out everywhere; audited `user.password-reset`.

    A person may set their own (the web app asks for the current one first); anyone else's
    needs portal.manage.
    """
    who = as_actor(actor)
    if who.name != name:
        authorize(who, "portal.manage")
    _require_name(name)
    with database.transaction() as conn:
        row = _require_user(conn, name)
    if row.source != "local":
        raise Conflict(f"user {name} signs in through OpenID Connect: it has no password here")
    problems = password_problems(password, name)
    if problems:
        raise ValidationError(problems)
    password_hash = hash_password(password)
    now = utcnow()
    with database.transaction(immediate=True) as conn:
        row = _require_user(conn, name)
        conn.execute(update(T_USER).where(T_USER.c.id == row.id).values(password_hash=password_hash, updated_at=now))
        sessions = revoke_sessions(conn, row.id, now)
        audit.record(conn, audit.Event(who.name, "user.password-reset", "user", name, None,
                                       {"sessions_revoked": sessions}))
        return _show(conn, row)


def actor_for_user(conn: Connection, user_id: int) -> Actor:
    """The account as an actor: its name, and the roles it holds now (ministry codes joined in)."""
    name = conn.execute(select(T_USER.c.name).where(T_USER.c.id == user_id)).scalar()
    if name is None:
        raise NotFound(f"no user {user_id}")
    return Actor(name, _grants_by_user(conn, [user_id]).get(user_id, frozenset()))


def set_language(database: Database, user_id: int, language: str) -> None:
    """Remember the portal language the person chose (en or lo)."""
    if language not in LANGUAGES:
        raise ValidationError([f"language {language!r}: must be one of {', '.join(LANGUAGES)}"])
    with database.transaction(immediate=True) as conn:
        done = conn.execute(update(T_USER).where(T_USER.c.id == user_id)
                            .values(language=language, updated_at=utcnow())).rowcount
    if not done:
        raise NotFound(f"no user {user_id}")


# --------------------------------------------------------------------------- signing in


def _attempted(text: str) -> str:
    return str(text or "").strip()[:_MAX_ATTEMPT_TEXT]


def _throttle(conn: Connection, name: str, client: str, now: datetime) -> None:
    """Refuse the attempt when the name or the client has used up its failures in the window."""
    since = now - FAILURE_WINDOW
    for column, value, limit in ((T_FAILURE.c.name, name, MAX_FAILURES_PER_NAME),
                                 (T_FAILURE.c.client, client, MAX_FAILURES_PER_CLIENT)):
        recent = conn.execute(select(T_FAILURE.c.at).where(column == value, T_FAILURE.c.at > since)
                              .order_by(T_FAILURE.c.at.desc()).limit(limit)).scalars().all()
        if len(recent) >= limit:
            # Attempts open again when the oldest of the `limit` newest failures leaves the window.
            wait = recent[limit - 1] + FAILURE_WINDOW - now
            minutes = max(1, math.ceil(wait.total_seconds() / 60))
            unit = "minutes" if minutes > 1 else "minute"
            raise TooManyAttempts(f"too many failed sign-ins: try again in {minutes} {unit}")


def authenticate(database: Database, name: str, password: str, *, client: str, now: datetime | None = None) -> Actor:
    """The actor whose name and password these are; else Unauthenticated("wrong name or password").

    An unknown name, a wrong password, a disabled account and one that signs in through OpenID
    Connect all get the same answer after the same Argon2 work. Before that, a name or a client
    address with too many recent failures is refused (TooManyAttempts), nothing written.

    The attempt is written as a failure before its password is checked (so parallel guesses
    cannot all pass the count), and that row deleted again if it succeeds; a failure is
    committed with its audit entry `user.signin-failed` before the error is raised.
    """
    now = now or utcnow()
    name = _attempted(name).lower()
    client = _attempted(client)
    with database.transaction(immediate=True) as conn:
        _throttle(conn, name, client, now)
        failure_id = conn.execute(insert(T_FAILURE).values(at=now, name=name, client=client)
                                  .returning(T_FAILURE.c.id)).scalar_one()
        user = _user_row(conn, name)
    stored = user.password_hash if user is not None and user.source == "local" else None
    if not isinstance(password, str) or len(password) > MAX_PASSWORD_LENGTH:
        password, stored = "", None  # not worth hashing; the answer is the same
    matched = _verify(stored or _dummy_hash(), password) and stored is not None
    if user is None:
        reason = "unknown name"
    elif user.source != "local":
        reason = "signs in through OpenID Connect"
    elif stored is None:
        reason = "no password set" if user.password_hash is None else "wrong password"  # else: too long
    elif not matched:
        reason = "wrong password"
    elif user.disabled_at is not None:
        reason = "disabled"
    else:
        reason = None
    if reason is not None:
        with database.transaction(immediate=True) as conn:
            conn.execute(delete(T_FAILURE).where(T_FAILURE.c.at < now - FAILURE_RETENTION))
            audit.record(conn, audit.Event(ANONYMOUS, "user.signin-failed", "user", name, None,
                                           {"name": name, "client": client, "reason": reason}))
        raise Unauthenticated(WRONG_CREDENTIALS)
    rehashed = hash_password(password) if _hasher().check_needs_rehash(stored) else None
    with database.transaction(immediate=True) as conn:
        conn.execute(delete(T_FAILURE).where(T_FAILURE.c.id == failure_id))
        if rehashed is not None:
            conn.execute(update(T_USER).where(T_USER.c.id == user.id, T_USER.c.password_hash == stored)
                         .values(password_hash=rehashed))
        audit.record(conn, audit.Event(user.name, "user.signed-in", "user", user.name, None,
                                       {"client": client, "via": "password"}))
        return actor_for_user(conn, user.id)


# --------------------------------------------------------------------------- sessions


@dataclass(frozen=True)
class SessionInfo:
    """A signed-in browser's session as the web app needs it on each request."""

    actor: Actor
    user_id: int
    csrf_token: str
    language: str
    display_name: str
    expires_at: datetime  # the absolute timeout: signed out then, however busy


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def _touching(database: Database) -> dict:
    # SQLite needs its write lock taken at BEGIN; PostgreSQL needs no writer lock for one UPDATE.
    return {"immediate": database.engine.dialect.name == "sqlite"}


def open_session(database: Database, actor_or_user_name: Actor | str, *, client: str,
                 now: datetime | None = None) -> tuple[str, str]:
    """A new session for a signed-in person: (session token for the cookie, CSRF token).

    Only the session token's SHA-256 is stored. The person's expired and revoked sessions are
    cleared on the way.
    """
    name = actor_or_user_name.name if isinstance(actor_or_user_name, Actor) else actor_or_user_name
    now = now or utcnow()
    token, csrf = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
    with database.transaction(immediate=True) as conn:
        row = _user_row(conn, name)
        if row is None or row.disabled_at is not None:
            raise Unauthenticated(f"user {name} cannot sign in")
        conn.execute(delete(T_SESSION).where(T_SESSION.c.user_id == row.id,
                                             (T_SESSION.c.expires_at <= now) | T_SESSION.c.revoked_at.is_not(None)))
        conn.execute(insert(T_SESSION).values(
            token_hash=_digest(token), user_id=row.id, csrf_token=csrf, created_at=now, last_seen_at=now,
            expires_at=now + ABSOLUTE_TIMEOUT, client=_attempted(client)))
    return token, csrf


def session_for(database: Database, token: str, *, now: datetime | None = None) -> SessionInfo | None:
    """The session of a cookie's token; None when unknown, revoked, idle or absolutely expired, or
    its person disabled. Marks it seen (at most once a minute)."""
    if not isinstance(token, str) or not token or len(token) > _MAX_BEARER_TEXT:
        return None
    now = now or utcnow()
    digest = _digest(token)
    with database.transaction() as conn:
        row = conn.execute(
            select(T_SESSION.c.user_id, T_SESSION.c.csrf_token, T_SESSION.c.last_seen_at, T_SESSION.c.expires_at,
                   T_SESSION.c.revoked_at, T_USER.c.language, T_USER.c.display_name, T_USER.c.disabled_at)
            .join(T_USER, T_USER.c.id == T_SESSION.c.user_id)
            .where(T_SESSION.c.token_hash == digest)).first()
        if (row is None or row.revoked_at is not None or row.disabled_at is not None or now >= row.expires_at
                or now - row.last_seen_at >= IDLE_TIMEOUT):
            return None
        actor = actor_for_user(conn, row.user_id)
    if now - row.last_seen_at >= TOUCH_INTERVAL:
        try:
            with database.transaction(**_touching(database)) as conn:
                conn.execute(update(T_SESSION).where(T_SESSION.c.token_hash == digest,
                                                     T_SESSION.c.last_seen_at < now)
                             .values(last_seen_at=now))
        except DatabaseBusy:
            pass  # seen again on the next request; not worth failing this one
    return SessionInfo(actor=actor, user_id=row.user_id, csrf_token=row.csrf_token, language=row.language,
                       display_name=row.display_name, expires_at=row.expires_at)


def close_session(database: Database, token: str, *, now: datetime | None = None) -> bool:
    """Sign out: revoke the session (audited `user.signed-out`); False when it was no live session."""
    if not isinstance(token, str) or not token or len(token) > _MAX_BEARER_TEXT:
        return False
    now = now or utcnow()
    digest = _digest(token)
    with database.transaction(immediate=True) as conn:
        row = conn.execute(select(T_SESSION.c.user_id, T_SESSION.c.client, T_USER.c.name)
                           .join(T_USER, T_USER.c.id == T_SESSION.c.user_id)
                           .where(T_SESSION.c.token_hash == digest, T_SESSION.c.revoked_at.is_(None))).first()
        if row is None:
            return False
        conn.execute(update(T_SESSION).where(T_SESSION.c.token_hash == digest).values(revoked_at=now))
        audit.record(conn, audit.Event(row.name, "user.signed-out", "user", row.name, None, {"client": row.client}))
    return True


def revoke_sessions(conn: Connection, user_id: int, now: datetime) -> int:
    """Revoke every live session of the user, in the caller's transaction; returns how many."""
    return conn.execute(update(T_SESSION).where(T_SESSION.c.user_id == user_id, T_SESSION.c.revoked_at.is_(None),
                                                T_SESSION.c.expires_at > now)
                        .values(revoked_at=now)).rowcount


# --------------------------------------------------------------------------- API tokens


def _token_dict(row) -> dict:
    return {
        "id": row.id,
        "user": row.user,
        "prefix": row.prefix,
        "label": row.label,
        "created_at": iso_utc(row.created_at),
        "last_used_at": iso_utc(row.last_used_at),
        "revoked_at": iso_utc(row.revoked_at),
    }


def _tokens(conn: Connection, *conditions) -> list:
    return conn.execute(select(T_TOKEN, T_USER.c.name.label("user")).join(T_USER, T_USER.c.id == T_TOKEN.c.user_id)
                        .where(*conditions).order_by(T_TOKEN.c.id)).all()


def create_token(database: Database, name: str, *, label: str = "", actor: Actor | str | None = None) -> str:
    """A new API token for the user `name`, returned this once: only its SHA-256 and its prefix are kept.

    A person may make their own; anyone else's needs portal.manage. Audited `token.created`
    (with the prefix, never the token).
    """
    who = as_actor(actor)
    if who.name != name:
        authorize(who, "portal.manage")
    if not isinstance(label, str) or len(label) > MAX_TOKEN_LABEL or not label.isprintable():
        raise ValidationError([f"label: must be one line of at most {MAX_TOKEN_LABEL} characters"])
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    prefix = token[:TOKEN_PREFIX_LENGTH]
    with database.transaction(immediate=True) as conn:
        row = _require_user(conn, name)
        if row.disabled_at is not None:
            raise Conflict(f"user {name} is disabled: enable it before giving it a token")
        token_id = conn.execute(insert(T_TOKEN).values(
            user_id=row.id, token_hash=_digest(token), prefix=prefix, label=label, created_at=utcnow(),
        ).returning(T_TOKEN.c.id)).scalar_one()
        audit.record(conn, audit.Event(who.name, "token.created", "token", str(token_id), None,
                                       {"user": name, "prefix": prefix, "label": label}))
    return token


def revoke_token(database: Database, prefix_or_id: str, *, actor: Actor | str | None = None) -> dict:
    """Revoke a token named by its id, its prefix (as listed) or itself; audited `token.revoked`.

    A person may revoke their own; anyone else's needs portal.manage (and is otherwise not found).
    """
    who = as_actor(actor)
    value = str(prefix_or_id).strip()
    if value.isdigit():
        condition = T_TOKEN.c.id == int(value) if int(value) < 2**63 else T_TOKEN.c.id.is_(None)
    elif len(value) > TOKEN_PREFIX_LENGTH:
        condition = T_TOKEN.c.token_hash == _digest(value)
    else:
        condition = T_TOKEN.c.prefix == value
    shown = value if len(value) <= TOKEN_PREFIX_LENGTH else value[:TOKEN_PREFIX_LENGTH] + "…"
    with database.transaction(immediate=True) as conn:
        rows = [r for r in _tokens(conn, condition) if r.user == who.name or who.can("portal.manage")]
        if not rows:
            raise NotFound(f"no token {shown} (see `dcops portal token list`)")
        if len(rows) > 1:
            raise Conflict(f"prefix {shown} names {len(rows)} tokens ({', '.join(str(r.id) for r in rows)}): "
                           "give its id")
        row = rows[0]
        if row.revoked_at is not None:
            raise Conflict(f"token {row.prefix} (id {row.id}) was already revoked at {iso_utc(row.revoked_at)}")
        conn.execute(update(T_TOKEN).where(T_TOKEN.c.id == row.id).values(revoked_at=utcnow()))
        revoked = _token_dict(_tokens(conn, T_TOKEN.c.id == row.id)[0])
        audit.record(conn, audit.Event(who.name, "token.revoked", "token", str(row.id), None,
                                       {"user": row.user, "prefix": row.prefix}))
    return revoked


def list_tokens(conn: Connection, *, name: str | None = None) -> list[dict]:
    """Tokens (never their values), oldest first; only `name`'s when given."""
    conditions = []
    if name is not None:
        conditions.append(T_TOKEN.c.user_id == _require_user(conn, name).id)
    return [_token_dict(row) for row in _tokens(conn, *conditions)]


def token_actor(database: Database, token: str, *, now: datetime | None = None) -> Actor | None:
    """The actor a bearer token acts as (its user, with the roles they hold now); None when the
    token is unknown or revoked or its user disabled. Marks it used (at most once a minute)."""
    if not isinstance(token, str) or not token.startswith(TOKEN_PREFIX) or len(token) > _MAX_BEARER_TEXT:
        return None
    now = now or utcnow()
    digest = _digest(token)
    with database.transaction() as conn:
        row = conn.execute(select(T_TOKEN.c.id, T_TOKEN.c.user_id, T_TOKEN.c.last_used_at, T_TOKEN.c.revoked_at,
                                  T_USER.c.disabled_at)
                           .join(T_USER, T_USER.c.id == T_TOKEN.c.user_id)
                           .where(T_TOKEN.c.token_hash == digest)).first()
        if row is None or row.revoked_at is not None or row.disabled_at is not None:
            return None
        actor = actor_for_user(conn, row.user_id)
    if row.last_used_at is None or now - row.last_used_at >= TOUCH_INTERVAL:
        try:
            with database.transaction(**_touching(database)) as conn:
                conn.execute(update(T_TOKEN).where(T_TOKEN.c.id == row.id).values(last_used_at=now))
        except DatabaseBusy:
            pass
    return actor


# --------------------------------------------------------------------------- OpenID Connect


def _clean(text: str, limit: int) -> str:
    """A claim's text fit to keep: control characters dropped, cut to `limit`."""
    return "".join(ch for ch in str(text or "") if ch.isprintable())[:limit]


def upsert_oidc_user(database: Database, *, issuer: str, subject: str, name: str, email: str, display_name: str,
                     grants: frozenset[Grant]) -> str:
    """The account of an identity provider's person, created or brought up to date; returns its name.

    Found by (issuer, subject); failing that, a name that belongs to a local account (or to
    another identity) is a Conflict, and an OIDC account made ahead under that name (no issuer
    yet) is linked. Its roles become those the provider's claims gave (`grants`), its e-mail
    and display name the provider's. A person keeps the name they were first known by, so
    that the audit log's actor stays one person. Audited only when something changed
    (`user.created`, `user.updated`, `user.roles-changed`).
    """
    problems = check_name(name) + _grant_problems(grants)
    if not issuer or not subject:
        problems.append("the identity provider gave no issuer or subject")
    if problems:
        raise ValidationError(problems)
    email = _clean(email, MAX_EMAIL)
    email = email if _EMAIL_RE.match(email) else ""
    display_name = _clean(display_name, MAX_DISPLAY_NAME)
    grants = frozenset(grants)
    now = utcnow()
    with database.transaction(immediate=True) as conn:
        ministry_ids, missing = _ministry_ids(conn, grants)
        if missing:
            raise ValidationError(missing)
        row = conn.execute(select(T_USER).where(T_USER.c.oidc_issuer == issuer, T_USER.c.oidc_subject == subject)
                           ).first()
        if row is None:
            row = _user_row(conn, name)
            if row is not None and (row.source != "oidc" or row.oidc_issuer is not None):
                kind = "a local account" if row.source != "oidc" else "another identity"
                raise Conflict(f"the name {name} belongs to {kind}: the identity provider's person cannot sign in "
                               "under it")
        if row is None:
            user_id = conn.execute(insert(T_USER).values(
                name=name, display_name=display_name, email=email, source="oidc", password_hash=None,
                oidc_issuer=issuer, oidc_subject=subject, language="en", created_at=now, updated_at=now,
            ).returning(T_USER.c.id)).scalar_one()
            _write_grants(conn, user_id, grants, ministry_ids)
            user = _show(conn, _require_user(conn, name))
            audit.record(conn, audit.Event(name, "user.created", "user", name, None, {**user, "issuer": issuer}))
            return name
        before = {"display_name": row.display_name, "email": row.email}
        after = {"display_name": display_name, "email": email}
        if row.oidc_issuer is None:
            before.update(issuer=None)
            after.update(issuer=issuer)
        if before != after:
            conn.execute(update(T_USER).where(T_USER.c.id == row.id).values(
                display_name=display_name, email=email, oidc_issuer=issuer, oidc_subject=subject, updated_at=now))
            audit.record(conn, audit.Event(row.name, "user.updated", "user", row.name,
                                           {k: v for k, v in before.items() if after[k] != v},
                                           {k: v for k, v in after.items() if before[k] != v}))
        _change_grants(conn, row, grants, ministry_ids, row.name, {"issuer": issuer})
        return row.name


def ministry_codes(conn: Connection) -> list[str]:
    """Every ministry's code, for checking grants before anything is written."""
    return list(conn.execute(select(T_MINISTRY.c.code).order_by(T_MINISTRY.c.code)).scalars())


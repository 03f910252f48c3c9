"""dcops.accounts: portal accounts, Argon2 passwords, sign-in limits, sessions, API tokens, OpenID Connect users."""

from __future__ import annotations

import hashlib
import time
from datetime import timedelta

import pytest
import sqlalchemy as sa

from dcops import accounts, audit
from dcops.access import Actor, Grant
from dcops.db import utcnow
from dcops.errors import Conflict, Forbidden, NotFound, TooManyAttempts, Unauthenticated, ValidationError
from dcops.inventory.service import load_directory

import inventories

PASSWORD = "correct horse battery staple"
REQUESTER = frozenset({Grant("requester", "moh"), Grant("viewer", "mtc")})


@pytest.fixture
def db(any_database, tmp_path):
    """SQLite and PostgreSQL, with the ministries moh and mtc."""
    load_directory(any_database, inventories.write(tmp_path / "inv", inventories.base()))
    return any_database


def add(db, name="somchai", grants=REQUESTER, password=PASSWORD, **kwargs):
    return accounts.add_user(db, name, grants=grants, password=password, actor="ops", **kwargs)


def entries(db, action=None):
    with db.transaction() as conn:
        log = audit.list_entries(conn, limit=0)
    return [e for e in log if action is None or e["action"] == action]


def scalar(db, sql, **params):
    with db.transaction() as conn:
        return conn.execute(sa.text(sql), params).scalar()


def user_id(db, name):
    return scalar(db, "SELECT id FROM portal_user WHERE name = :n", n=name)


def failures(db):
    return scalar(db, "SELECT count(*) FROM signin_failure")


def signs_in(db, name, password=PASSWORD, client="192.0.2.1", now=None):
    return accounts.authenticate(db, name, password, client=client, now=now)


# --------------------------------------------------------------------------- accounts and passwords


def test_add_user_keeps_an_argon2id_hash_and_audits_no_secret(db):
    user = add(db, display_name="Somchai K.", email="somchai@moh.gov.la")
    assert user == {"name": "somchai", "display_name": "Somchai K.", "email": "somchai@moh.gov.la", "source": "local",
                    "roles": ["requester@moh", "viewer@mtc"], "disabled": False, "created_at": user["created_at"]}
    assert user["created_at"].endswith("Z")
    stored = scalar(db, "SELECT password_hash FROM portal_user WHERE name = 'somchai'")
    assert stored.startswith("$argon2id$v=19$m=65536,t=2,p=2$")
    created = entries(db, "user.created")
    assert [(e["actor"], e["object"]) for e in created] == [("ops", "user:somchai")]
    logged = repr(entries(db))
    assert PASSWORD not in logged and stored not in logged and "$argon2" not in logged
    with pytest.raises(Conflict, match="user somchai already exists"):
        add(db)


def test_every_problem_at_once_and_nothing_written(db):
    before = len(entries(db))
    with pytest.raises(ValidationError) as caught:
        add(db, "Somchai", grants=frozenset({Grant("requester", "nowhere")}), password="short",
            email="not an address")
    text = "\n".join(caught.value.problems)
    for expected in ("name 'Somchai': must be 2-63 characters", "password: must be at least 12 characters",
                     "email 'not an address'"):
        assert expected in text
    with pytest.raises(ValidationError, match="unknown ministry 'nowhere'"):
        add(db, grants=frozenset({Grant("requester", "nowhere")}))
    with pytest.raises(ValidationError, match="must not be the sign-in name"):
        add(db, "somchai.phommachanh", password="Somchai.Phommachanh")
    with pytest.raises(ValidationError, match="at most 1024"):
        add(db, password="x" * 1025)
    assert scalar(db, "SELECT count(*) FROM portal_user") == 0
    assert scalar(db, "SELECT count(*) FROM portal_grant") == 0
    assert len(entries(db)) == before


def test_parse_grants_from_the_command_line():
    assert accounts.parse_grants(["requester@moh", "viewer@moes", "auditor"]) == frozenset(
        {Grant("requester", "moh"), Grant("viewer", "moes"), Grant("auditor")})
    with pytest.raises(ValidationError) as caught:
        accounts.parse_grants(["boss@moh", "requester", "operator@moh", "viewer@Bad Code", "viewer@mars"],
                              ministries=["moh", "moes"])
    assert caught.value.problems == [
        "boss@moh: no role 'boss' (one of viewer, requester, operator, security-officer, auditor)",
        "requester: requester is held in one ministry: give it as requester@MINISTRY (or with --ministry CODE)",
        "operator@moh: operator is a data-centre role, held in no one ministry: give it as operator",
        "viewer@Bad Code: 'Bad Code' is not a ministry code",
        "viewer@mars: unknown ministry 'mars' (see `dcops ministry list`)",
    ]


def test_a_grant_made_by_hand_is_held_to_the_same_rules(db):
    with pytest.raises(ValidationError, match="operator is a data-centre role"):
        add(db, grants=frozenset({Grant("operator", "moh")}))
    with pytest.raises(ValidationError, match="viewer is held in one ministry"):
        add(db, grants=frozenset({Grant("viewer")}))


def test_listing_showing_and_who_may_manage(db):
    add(db, "somchai")
    add(db, "admin.ops", grants=frozenset({Grant("operator")}))
    with db.transaction() as conn:
        assert [u["name"] for u in accounts.list_users(conn)] == ["admin.ops", "somchai"]
        assert accounts.show_user(conn, "admin.ops")["roles"] == ["operator"]
        somchai = accounts.actor_for_user(conn, user_id(db, "somchai"))
        assert somchai == Actor("somchai", REQUESTER)
        assert accounts.show_user(conn, "somchai", actor=somchai)["name"] == "somchai"  # their own
        with pytest.raises(Forbidden):
            accounts.show_user(conn, "admin.ops", actor=somchai)
        with pytest.raises(Forbidden):
            accounts.list_users(conn, actor=somchai)
        with pytest.raises(NotFound, match="no user nobody"):
            accounts.show_user(conn, "nobody")
    with pytest.raises(Forbidden, match="somchai may not manage portal"):
        accounts.add_user(db, "another", grants=frozenset(), password=PASSWORD, actor=somchai)
    # An operator who signed in to the portal manages people under their own name.
    operator = signs_in(db, "admin.ops")
    accounts.set_grants(db, "somchai", frozenset({Grant("viewer", "moh")}), actor=operator)
    assert entries(db, "user.roles-changed")[-1]["actor"] == "admin.ops"


def test_set_grants_replaces_roles_and_audits_only_a_change(db):
    add(db)
    changed = accounts.set_grants(db, "somchai", frozenset({Grant("viewer", "moh"), Grant("auditor")}), actor="ops")
    assert changed["roles"] == ["auditor", "viewer@moh"]
    [entry] = entries(db, "user.roles-changed")
    assert entry["before"] == {"roles": ["requester@moh", "viewer@mtc"]}
    assert entry["after"] == {"roles": ["auditor", "viewer@moh"]}
    accounts.set_grants(db, "somchai", frozenset({Grant("viewer", "moh"), Grant("auditor")}), actor="ops")
    assert len(entries(db, "user.roles-changed")) == 1
    with pytest.raises(ValidationError, match="unknown ministry 'mars'"):
        accounts.set_grants(db, "somchai", frozenset({Grant("viewer", "mars")}))
    with pytest.raises(NotFound, match="no user nobody"):
        accounts.set_grants(db, "nobody", frozenset())
    assert accounts.set_grants(db, "somchai", frozenset())["roles"] == []


def test_set_language(db):
    add(db)
    uid = user_id(db, "somchai")
    accounts.set_language(db, uid, "lo")
    assert scalar(db, "SELECT language FROM portal_user WHERE id = :i", i=uid) == "lo"
    with pytest.raises(ValidationError, match="must be one of en, lo"):
        accounts.set_language(db, uid, "fr")
    with pytest.raises(NotFound):
        accounts.set_language(db, uid + 100, "en")


# --------------------------------------------------------------------------- signing in


def test_sign_in_gives_the_actor_and_is_audited(db):
    add(db)
    actor = signs_in(db, "somchai", client="198.51.100.7")
    assert actor == Actor("somchai", REQUESTER)
    assert signs_in(db, "Somchai ").name == "somchai"  # typed with a capital and a space
    [first, _second] = entries(db, "user.signed-in")
    assert (first["actor"], first["object"], first["after"]) == (
        "somchai", "user:somchai", {"client": "198.51.100.7", "via": "password"})
    assert failures(db) == 0  # a success leaves no failure row behind


def test_unknown_name_wrong_password_disabled_and_oidc_are_one_answer(db):
    add(db, "somchai")
    add(db, "noi")
    accounts.disable_user(db, "noi", actor="ops")
    accounts.upsert_oidc_user(db, issuer="https://id.gov.la", subject="42", name="keo", email="", display_name="",
                              grants=frozenset())
    attempts = [("nobody", PASSWORD), ("somchai", "wrong password here"), ("noi", PASSWORD), ("keo", PASSWORD),
                ("somchai", "")]
    for name, password in attempts:
        with pytest.raises(Unauthenticated) as caught:
            signs_in(db, name, password)
        assert str(caught.value) == "wrong name or password"
    failed = entries(db, "user.signin-failed")
    assert [(e["actor"], e["object_key"], e["after"]["reason"]) for e in failed] == [
        ("anonymous", "nobody", "unknown name"), ("anonymous", "somchai", "wrong password"),
        ("anonymous", "noi", "disabled"), ("anonymous", "keo", "signs in through OpenID Connect"),
        ("anonymous", "somchai", "wrong password")]
    assert all(e["after"]["client"] == "192.0.2.1" for e in failed)
    assert failures(db) == len(attempts)  # each committed, though the call raised
    assert "wrong password here" not in repr(entries(db))


def test_an_unknown_name_costs_the_same_argon2_work(db):
    add(db)
    def slowest_of_three(name, client):
        times = []
        for _ in range(3):
            start = time.perf_counter()
            with pytest.raises(Unauthenticated):
                signs_in(db, name, "not the password", client=client)
            times.append(time.perf_counter() - start)
        return min(times)

    known = slowest_of_three("somchai", "192.0.2.10")
    unknown = slowest_of_three("nobody", "192.0.2.11")
    # Without the dummy hash an unknown name would answer in a few milliseconds, not ~0.1 s.
    assert unknown > 0.5 * known and unknown > 0.03, (known, unknown)


def test_failures_per_name_are_limited_then_expire(db):
    add(db)
    start = utcnow()
    for minute in range(accounts.MAX_FAILURES_PER_NAME):
        with pytest.raises(Unauthenticated):
            signs_in(db, "somchai", "guess number one", client=f"203.0.113.{minute}",
                     now=start + timedelta(minutes=minute))
    recorded = len(entries(db))
    # The sixth is refused before its password is checked: even the right one.
    with pytest.raises(TooManyAttempts) as caught:
        signs_in(db, "somchai", PASSWORD, client="203.0.113.99", now=start + timedelta(minutes=5))
    assert str(caught.value) == "too many failed sign-ins: try again in 10 minutes"
    assert failures(db) == accounts.MAX_FAILURES_PER_NAME and len(entries(db)) == recorded  # nothing written
    # Another name from the same addresses is not held back.
    add(db, "noi")
    assert signs_in(db, "noi", client="203.0.113.0", now=start + timedelta(minutes=5)).name == "noi"
    with pytest.raises(TooManyAttempts, match="try again in 1 minute$"):
        signs_in(db, "somchai", PASSWORD, now=start + timedelta(minutes=14, seconds=30))
    # Once the first failure is 15 minutes old, one more attempt is allowed.
    assert signs_in(db, "somchai", now=start + timedelta(minutes=15, seconds=1)).name == "somchai"


def test_failures_per_client_are_limited(db):
    add(db)
    now = utcnow()
    for n in range(accounts.MAX_FAILURES_PER_CLIENT):
        with pytest.raises(Unauthenticated):
            signs_in(db, f"guess{n}", PASSWORD, client="198.51.100.66", now=now)
    with pytest.raises(TooManyAttempts, match="try again in 15 minutes"):
        signs_in(db, "somchai", PASSWORD, client="198.51.100.66", now=now)
    assert failures(db) == accounts.MAX_FAILURES_PER_CLIENT
    assert len(entries(db, "user.signin-failed")) == accounts.MAX_FAILURES_PER_CLIENT
    assert signs_in(db, "somchai", client="198.51.100.67", now=now).name == "somchai"


def test_an_older_hash_is_redone_at_sign_in(db):
    from argon2 import PasswordHasher

    add(db)
    weak = PasswordHasher(time_cost=1, memory_cost=8192, parallelism=1).hash(PASSWORD)
    with db.transaction() as conn:
        conn.execute(sa.text("UPDATE portal_user SET password_hash = :h WHERE name = 'somchai'"), {"h": weak})
    signs_in(db, "somchai")
    renewed = scalar(db, "SELECT password_hash FROM portal_user WHERE name = 'somchai'")
    assert renewed != weak and renewed.startswith("$argon2id$v=19$m=65536,t=2,p=2$")
    assert signs_in(db, "somchai").name == "somchai"


def test_reset_password(db):
    add(db)
    accounts.reset_password(db, "somchai", "a new and longer passphrase", actor="ops")
    with pytest.raises(Unauthenticated):
        signs_in(db, "somchai")
    assert signs_in(db, "somchai", "a new and longer passphrase").name == "somchai"
    [entry] = entries(db, "user.password-reset")
    assert "passphrase" not in repr(entry) and entry["actor"] == "ops"
    with pytest.raises(ValidationError, match="at least 12"):
        accounts.reset_password(db, "somchai", "short", actor="ops")
    with pytest.raises(NotFound):
        accounts.reset_password(db, "nobody", PASSWORD, actor="ops")


# --------------------------------------------------------------------------- sessions


def test_a_session_token_is_stored_only_as_its_sha256(db):
    add(db, display_name="Somchai K.")
    actor = signs_in(db, "somchai")
    token, csrf = accounts.open_session(db, actor, client="192.0.2.1")
    assert len(token) >= 43 and len(csrf) >= 43 and token != csrf
    with db.transaction() as conn:
        rows = [tuple(r) for r in conn.execute(sa.text("SELECT * FROM portal_session"))]
    assert len(rows) == 1 and token not in repr(rows)
    assert scalar(db, "SELECT count(*) FROM portal_session WHERE token_hash = :h",
                  h=hashlib.sha256(token.encode()).hexdigest()) == 1
    session = accounts.session_for(db, token)
    assert session.actor == actor and session.csrf_token == csrf and session.display_name == "Somchai K."
    assert session.language == "en" and session.user_id == user_id(db, "somchai")
    assert accounts.session_for(db, token + "x") is None
    assert accounts.session_for(db, "") is None


def test_idle_sessions_end_and_last_seen_is_written_at_most_once_a_minute(db):
    add(db)
    start = utcnow()
    token, _csrf = accounts.open_session(db, "somchai", client="192.0.2.1", now=start)

    def last_seen():
        with db.transaction() as conn:
            return conn.execute(sa.select(accounts.T_SESSION.c.last_seen_at)).scalar()

    assert accounts.session_for(db, token, now=start + timedelta(seconds=30)) is not None
    assert last_seen() == start  # not written for a request within the minute
    assert accounts.session_for(db, token, now=start + timedelta(minutes=29)) is not None
    assert last_seen() == start + timedelta(minutes=29)
    assert accounts.session_for(db, token, now=start + timedelta(minutes=58, seconds=59)) is not None
    assert accounts.session_for(db, token, now=start + timedelta(minutes=88, seconds=59)) is None  # 30 min idle


def test_sessions_end_12_hours_after_sign_in_however_busy(db):
    add(db)
    start = utcnow()
    token, _csrf = accounts.open_session(db, "somchai", client="192.0.2.1", now=start)
    for minutes in range(20, 12 * 60, 20):
        assert accounts.session_for(db, token, now=start + timedelta(minutes=minutes)) is not None, minutes
    session = accounts.session_for(db, token, now=start + timedelta(hours=12) - timedelta(seconds=1))
    assert session.expires_at == start + accounts.ABSOLUTE_TIMEOUT
    assert accounts.session_for(db, token, now=start + timedelta(hours=12)) is None


def test_signing_out_revokes_the_session(db):
    add(db)
    token, _csrf = accounts.open_session(db, "somchai", client="192.0.2.1")
    other, _csrf = accounts.open_session(db, "somchai", client="192.0.2.2")
    assert accounts.close_session(db, token) is True
    assert accounts.session_for(db, token) is None
    assert accounts.session_for(db, other) is not None  # another browser stays signed in
    assert accounts.close_session(db, token) is False
    [entry] = entries(db, "user.signed-out")
    assert (entry["actor"], entry["object"], entry["after"]) == ("somchai", "user:somchai", {"client": "192.0.2.1"})


def test_disabling_revokes_sessions_and_tokens_and_reset_revokes_sessions(db):
    add(db)
    token, _csrf = accounts.open_session(db, "somchai", client="192.0.2.1")
    api = accounts.create_token(db, "somchai", actor="ops")
    assert accounts.token_actor(db, api).name == "somchai"
    disabled = accounts.disable_user(db, "somchai", actor="ops")
    assert disabled["disabled"] is True
    assert accounts.session_for(db, token) is None and accounts.token_actor(db, api) is None
    assert scalar(db, "SELECT count(*) FROM portal_session WHERE revoked_at IS NULL") == 0
    assert scalar(db, "SELECT count(*) FROM api_token WHERE revoked_at IS NULL") == 0
    [entry] = entries(db, "user.disabled")
    assert entry["after"] == {"disabled": True, "sessions_revoked": 1, "tokens_revoked": 1}
    with pytest.raises(Unauthenticated):
        accounts.open_session(db, "somchai", client="192.0.2.1")
    with pytest.raises(Conflict, match="already disabled"):
        accounts.disable_user(db, "somchai", actor="ops")
    accounts.enable_user(db, "somchai", actor="ops")
    assert accounts.token_actor(db, api) is None  # a revoked token stays revoked
    assert signs_in(db, "somchai").name == "somchai"
    again, _csrf = accounts.open_session(db, "somchai", client="192.0.2.1")
    accounts.reset_password(db, "somchai", "another good passphrase", actor="ops")
    assert accounts.session_for(db, again) is None
    assert [e["action"] for e in entries(db) if e["action"].startswith("user.")][-3:] == [
        "user.enabled", "user.signed-in", "user.password-reset"]


def test_a_session_acts_with_the_roles_held_now(db):
    add(db)
    token, _csrf = accounts.open_session(db, "somchai", client="192.0.2.1")
    accounts.set_grants(db, "somchai", frozenset({Grant("viewer", "moh")}), actor="ops")
    assert accounts.session_for(db, token).actor.grants == frozenset({Grant("viewer", "moh")})


# --------------------------------------------------------------------------- API tokens


def test_api_tokens_are_shown_once_stored_hashed_and_revocable(db):
    add(db)
    token = accounts.create_token(db, "somchai", label="nightly export", actor="ops")
    assert token.startswith("dcops_") and len(token) == len("dcops_") + 43
    with db.transaction() as conn:
        [row] = conn.execute(sa.text("SELECT token_hash, prefix, label FROM api_token")).all()
        [listed] = accounts.list_tokens(conn, name="somchai")
        assert accounts.list_tokens(conn, name=None) == [listed]
        with pytest.raises(NotFound):
            accounts.list_tokens(conn, name="nobody")
    assert tuple(row) == (hashlib.sha256(token.encode()).hexdigest(), token[:12], "nightly export")
    assert listed["prefix"] == token[:12] and listed["revoked_at"] is None and listed["last_used_at"] is None
    assert token not in repr(listed)
    [created] = entries(db, "token.created")
    assert created["after"] == {"user": "somchai", "prefix": token[:12], "label": "nightly export"}
    assert token not in repr(entries(db))

    now = utcnow()
    assert accounts.token_actor(db, token, now=now) == Actor("somchai", REQUESTER)
    assert accounts.token_actor(db, token, now=now + timedelta(seconds=20)) is not None
    assert scalar(db, "SELECT count(*) FROM api_token WHERE last_used_at IS NOT NULL") == 1
    with db.transaction() as conn:
        assert accounts.list_tokens(conn)[0]["last_used_at"] is not None
    # The token acts with the roles its person holds at the time of use.
    accounts.set_grants(db, "somchai", frozenset({Grant("auditor")}), actor="ops")
    assert accounts.token_actor(db, token).grants == frozenset({Grant("auditor")})
    assert accounts.token_actor(db, "dcops_not-a-token") is None
    assert accounts.token_actor(db, "not even the prefix") is None

    revoked = accounts.revoke_token(db, token[:12], actor="ops")
    assert revoked["revoked_at"] is not None and revoked["user"] == "somchai"
    assert accounts.token_actor(db, token) is None
    assert entries(db, "token.revoked")[0]["after"] == {"user": "somchai", "prefix": token[:12]}
    with pytest.raises(Conflict, match="already revoked"):
        accounts.revoke_token(db, str(revoked["id"]), actor="ops")
    with pytest.raises(NotFound, match="no token dcops_nothin "):
        accounts.revoke_token(db, "dcops_nothin", actor="ops")


def test_a_person_makes_and_revokes_their_own_tokens_only(db):
    add(db, "somchai")
    add(db, "noi")
    somchai = Actor("somchai", REQUESTER)
    own = accounts.create_token(db, "somchai", actor=somchai)
    theirs = accounts.create_token(db, "noi", actor="ops")
    with pytest.raises(Forbidden):
        accounts.create_token(db, "noi", actor=somchai)
    with pytest.raises(NotFound):  # another's token is not even there for them
        accounts.revoke_token(db, theirs[:12], actor=somchai)
    accounts.revoke_token(db, own[:12], actor=somchai)
    assert accounts.token_actor(db, own) is None and accounts.token_actor(db, theirs) is not None


def test_a_prefix_that_names_two_tokens_asks_for_the_id(db):
    add(db)
    token = accounts.create_token(db, "somchai", actor="ops")
    with db.transaction() as conn:  # a second token that happens to share the first 12 characters
        conn.execute(sa.text("INSERT INTO api_token (user_id, token_hash, prefix, label, created_at) "
                             "SELECT user_id, 'another-hash', prefix, '', created_at FROM api_token"))
    with pytest.raises(Conflict, match="names 2 tokens"):
        accounts.revoke_token(db, token[:12], actor="ops")
    assert accounts.revoke_token(db, token, actor="ops")["id"] == 1  # the whole token names one


# --------------------------------------------------------------------------- OpenID Connect


def test_upsert_oidc_user_creates_then_follows_the_claims(db):
    claims = {"issuer": "https://id.gov.la", "subject": "sub-7", "email": "keo@moh.gov.la", "display_name": "Keo"}
    assert accounts.upsert_oidc_user(db, name="keo", grants=frozenset({Grant("viewer", "moh")}), **claims) == "keo"
    with db.transaction() as conn:
        user = accounts.show_user(conn, "keo")
        row = conn.execute(sa.text("SELECT password_hash, oidc_issuer, oidc_subject FROM portal_user")).one()
    assert (user["source"], user["roles"], user["email"]) == ("oidc", ["viewer@moh"], "keo@moh.gov.la")
    assert tuple(row) == (None, "https://id.gov.la", "sub-7")
    assert [e["action"] for e in entries(db) if e["object_type"] == "user"] == ["user.created"]

    # The provider now gives other roles: they replace the old ones.
    accounts.upsert_oidc_user(db, name="keo", grants=frozenset({Grant("requester", "moh"), Grant("viewer", "mtc")}),
                              **claims)
    [changed] = entries(db, "user.roles-changed")
    assert changed["before"]["roles"] == ["viewer@moh"] and changed["after"]["roles"] == ["requester@moh",
                                                                                           "viewer@mtc"]
    count = len(entries(db))
    accounts.upsert_oidc_user(db, name="keo", grants=frozenset({Grant("requester", "moh"), Grant("viewer", "mtc")}),
                              **claims)
    assert len(entries(db)) == count  # nothing changed, nothing audited
    accounts.upsert_oidc_user(db, name="keo", grants=frozenset(), **{**claims, "display_name": "Keo S."})
    assert [e["action"] for e in entries(db)][-2:] == ["user.updated", "user.roles-changed"]
    with db.transaction() as conn:
        assert accounts.show_user(conn, "keo")["roles"] == []
        assert accounts.actor_for_user(conn, user_id(db, "keo")) == Actor("keo", frozenset())
    with pytest.raises(Unauthenticated):
        signs_in(db, "keo", "")


def test_an_oidc_name_cannot_take_a_local_account(db):
    add(db, "somchai")
    with pytest.raises(Conflict, match="belongs to a local account"):
        accounts.upsert_oidc_user(db, issuer="https://id.gov.la", subject="9", name="somchai", email="",
                                  display_name="", grants=frozenset({Grant("operator")}))
    accounts.upsert_oidc_user(db, issuer="https://id.gov.la", subject="10", name="keo", email="", display_name="",
                              grants=frozenset())
    with pytest.raises(Conflict, match="belongs to another identity"):
        accounts.upsert_oidc_user(db, issuer="https://other.example", subject="10", name="keo", email="",
                                  display_name="", grants=frozenset())
    with pytest.raises(ValidationError, match="unknown ministry 'mars'"):
        accounts.upsert_oidc_user(db, issuer="https://id.gov.la", subject="11", name="noi", email="", display_name="",
                                  grants=frozenset({Grant("viewer", "mars")}))
    with db.transaction() as conn:
        assert [u["name"] for u in accounts.list_users(conn)] == ["keo", "somchai"]
        assert accounts.show_user(conn, "somchai")["roles"] == ["requester@moh", "viewer@mtc"]


def test_an_oidc_account_made_ahead_is_linked_at_first_sign_in(db):
    accounts.add_user(db, "keo", grants=frozenset(), password=None, source="oidc", actor="ops")
    name = accounts.upsert_oidc_user(db, issuer="https://id.gov.la", subject="s", name="keo", email="",
                                     display_name="", grants=frozenset({Grant("viewer", "moh")}))
    assert name == "keo"
    assert scalar(db, "SELECT oidc_subject FROM portal_user WHERE name = 'keo'") == "s"
    assert scalar(db, "SELECT count(*) FROM portal_user") == 1

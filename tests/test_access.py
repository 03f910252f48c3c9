"""dcops.access: who may do what, for one object and for a listing."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from dcops import access
from dcops.access import Actor, Grant, Owned, authorize
from dcops.errors import Forbidden, NotFound


def person(*grants: tuple[str, str | None]) -> Actor:
    return Actor("someone", frozenset(Grant(role, ministry) for role, ministry in grants))


MOH_REQUEST = Owned("request", "7", "moh")


def test_a_ministry_role_reads_its_own_ministry_only():
    viewer = person(("viewer", "moh"))
    authorize(viewer, "request.read", MOH_REQUEST)
    with pytest.raises(NotFound) as missing:
        authorize(viewer, "request.read", Owned("request", "7", "moes"))
    # Worded as for a request that does not exist: nothing to learn by guessing ids.
    assert str(missing.value) == "no request 7"


def test_reading_but_not_acting_is_forbidden_not_hidden():
    viewer = person(("viewer", "moh"))
    with pytest.raises(Forbidden, match="may not withdraw request 7 of ministry moh: that needs the role operator or requester"):
        authorize(viewer, "request.withdraw", MOH_REQUEST)
    with pytest.raises(NotFound):
        authorize(viewer, "request.withdraw", Owned("request", "7", "moes"))


def test_roles_in_several_ministries_each_count_in_their_own():
    both = person(("requester", "moh"), ("viewer", "moes"))
    authorize(both, "request.withdraw", MOH_REQUEST)
    authorize(both, "request.read", Owned("request", "8", "moes"))
    with pytest.raises(Forbidden):
        authorize(both, "request.withdraw", Owned("request", "8", "moes"))
    assert both.ministries("request.read") == {"moh", "moes"}
    assert both.ministries("request.submit") == {"moh"}


def test_staff_roles_reach_every_ministry_but_only_their_own_actions():
    officer = person(("security-officer", None))
    authorize(officer, "request.sign-off", MOH_REQUEST)
    authorize(officer, "request.read", Owned("request", "9", "moes"))
    with pytest.raises(Forbidden):
        authorize(officer, "request.approve", MOH_REQUEST)
    operator = person(("operator", None))
    authorize(operator, "request.approve", MOH_REQUEST)
    with pytest.raises(Forbidden):
        authorize(operator, "request.sign-off", MOH_REQUEST)
    with pytest.raises(Forbidden):
        authorize(operator, "audit.read")
    authorize(person(("auditor", None)), "audit.read")


def test_a_ministry_role_never_reaches_the_data_centre_as_a_whole():
    requester = person(("requester", "moh"))
    authorize(requester, "catalogue.read")  # the catalogue is published to every ministry
    for action in ("report.read", "inventory.write", "audit.read", "programme.read"):
        with pytest.raises(Forbidden):
            authorize(requester, action)


def test_nobody_with_no_role_reads_anything():
    nobody = person()
    with pytest.raises(NotFound):
        authorize(nobody, "programme.read", Owned("programme", "e-crvs", "moha"))
    with pytest.raises(Forbidden):
        authorize(nobody, "catalogue.read")


def test_the_cli_actor_is_the_data_centre_staff():
    operator = access.as_actor("somchai")
    assert operator.name == "somchai"
    assert {g.role for g in operator.grants} == set(access.STAFF_ROLES)
    assert all(g.ministry is None for g in operator.grants)
    assert access.as_actor(operator) is operator


def test_every_action_names_known_roles():
    for action, roles in access.PERMISSIONS.items():
        assert roles and roles <= set(access.ROLES), action


def test_visible_scopes_a_listing_in_the_query():
    metadata = sa.MetaData()
    table = sa.Table("t", metadata, sa.Column("ministry", sa.String))
    engine = sa.create_engine("sqlite://")
    metadata.create_all(engine)
    with engine.begin() as conn:
        conn.execute(table.insert(), [{"ministry": code} for code in ("moh", "moes", "mof", "moh")])

        def rows(actor):
            query = sa.select(table.c.ministry).where(access.visible(actor, "request.read", table.c.ministry))
            return sorted(conn.execute(query).scalars())

        assert rows(person(("viewer", "moh"))) == ["moh", "moh"]
        assert rows(person(("viewer", "moh"), ("requester", "mof"))) == ["mof", "moh", "moh"]
        assert rows(person(("auditor", None))) == ["moes", "mof", "moh", "moh"]
        assert rows(person()) == []


def test_the_cli_write_use_cases_authorise_their_actor(tmp_path):
    """The data centre's own work refuses an actor without the operator role, before writing anything."""
    from datetime import datetime, timedelta, timezone

    from dcops import maintenance
    from dcops.inventory.service import load_directory
    from dcops.reports.documents import freeze

    auditor = person(("auditor", None))
    requester = person(("requester", "moh"))
    start = datetime(2030, 1, 1, tzinfo=timezone.utc)
    for actor in (auditor, requester):
        with pytest.raises(Forbidden, match="operator"):
            load_directory(None, tmp_path, actor=actor)
        with pytest.raises(Forbidden, match="operator"):
            maintenance.add_window(None, programme="x", cluster=None, starts_at=start,
                                   ends_at=start + timedelta(hours=1), reason="r", change_ref="c", actor=actor)
        with pytest.raises(Forbidden, match="operator"):
            freeze(None, {}, actor=actor)
    with pytest.raises(Forbidden, match="auditor"):
        from dcops.audit import list_entries

        list_entries(None, actor=person(("operator", None)))

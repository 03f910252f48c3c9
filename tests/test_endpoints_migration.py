"""Migration 0008: offerings gain their checks and public domain; existing offerings get none; downgrade drops them."""

from __future__ import annotations

import sqlalchemy as sa

from dcops import db as dcops_db

from test_db import _migrate


def _offering_columns(url: str) -> set[str]:
    engine = dcops_db.make_engine(url)
    try:
        return {column["name"] for column in sa.inspect(engine).get_columns("offering")}
    finally:
        engine.dispose()


def test_0008_adds_checks_to_existing_offerings_and_downgrades(any_url):
    _migrate(any_url, "0007")
    engine = dcops_db.make_engine(any_url)
    with engine.begin() as conn:
        conn.execute(sa.text("INSERT INTO offering (id, name, description, display_name, long_description, tags) "
                             "VALUES ('vm', 'vm', '', '', '', '[]')"))
    engine.dispose()
    assert not {"checks", "public_domain"} & _offering_columns(any_url)

    _migrate(any_url, "0008")
    from dcops.models import Offering

    engine = dcops_db.make_engine(any_url)
    with engine.connect() as conn:
        row = conn.execute(sa.select(Offering.__table__)).one()
    engine.dispose()
    assert (row.id, row.checks, row.public_domain) == ("vm", [], "")

    _migrate(any_url, "0007", down=True)
    assert not {"checks", "public_domain"} & _offering_columns(any_url)
    _migrate(any_url, "0008")
    assert {"checks", "public_domain"} <= _offering_columns(any_url)

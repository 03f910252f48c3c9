"""The Jinja2 environment of the reports and the status page: plain dicts' keys read first."""

from __future__ import annotations

from collections import OrderedDict

import jinja2
import pytest

from dcops import templating


def render(source: str, **values) -> str:
    env = templating.environment(undefined=jinja2.StrictUndefined, autoescape=True)
    return env.from_string(source).render(**values)


def test_a_dict_key_reads_as_before_and_a_dicts_own_attributes_stay_attributes():
    row = {"name": "e-CRVS <civil>", "items": "not the method", "seconds": 60}
    assert render("{{ row.name }} {{ row.seconds }}", row=row) == "e-CRVS &lt;civil&gt; 60"
    # `items` is a dict method: Jinja's own rule (the attribute first) still decides it
    assert render("{{ row.items() | list | length }}", row=row) == "3"
    assert render("{{ row['items'] }}", row=row) == "not the method"
    # a dict subclass and an object go Jinja's way unchanged
    assert render("{{ row.name }}", row=OrderedDict(name="LESMIS")) == "LESMIS"


def test_a_missing_key_is_still_an_error_under_strict_undefined():
    with pytest.raises(jinja2.UndefinedError):
        render("{{ row.missing }}", row={"name": "x"})

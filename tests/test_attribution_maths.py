"""Attribution maths, pure, against hand-worked figures: dependency and own downtime, roots, chains, overlaps."""

from datetime import UTC, datetime, timedelta

import pytest

from dcops.reports import attribution
from dcops.reports.attribution import EXTERNAL, HOSTED, cause_timelines, is_major, split

T0 = datetime(2026, 11, 1, tzinfo=UTC)
MONTH = 30 * 24 * 3600  # a 30-day month: 2,592,000 s (43,200 min)


def at(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


def span(a: float, b: float) -> tuple[datetime, datetime]:
    return at(a), at(b)


def test_the_worked_example_e_crvs_and_the_external_id_service():
    # e-CRVS down 90 min of a 30-day month; 60 of them while the national ID service (external,
    # run by another ministry) was down.
    causes = cause_timelines({"e-crvs": [span(1000, 1090)]}, {"e-crvs": ("national-id",)},
                             {"national-id": [span(990, 1060)]})
    result = split("e-crvs", at(1000), at(1090), causes["e-crvs"], third_party=frozenset({"national-id"}))
    assert result.own_seconds == 30 * 60
    assert result.dependency_seconds == 60 * 60
    assert result.external_seconds == 60 * 60 and result.hosted_seconds == 0
    assert result.external_root_seconds == 60 * 60
    assert result.dependencies == ({"name": "national-id", "kind": EXTERNAL, "seconds": 3600, "root": "national-id"},)
    experienced = attribution.availability(MONTH, 90 * 60)
    attributable = attribution.availability(MONTH, result.own_seconds)
    # 43,110 / 43,200 and 43,170 / 43,200, written as the report writes them (rounded down).
    assert f"{int(experienced * 10000) / 100:.2f}" == "99.79"
    assert f"{int(attributable * 10000) / 100:.2f}" == "99.93"
    assert experienced * 100 < 99.9 <= attributable * 100


def test_a_hosted_dependency_names_its_root_and_the_outage_is_one():
    # The ID service is hosted here: its 60 minutes are its own; e-CRVS names it as the cause.
    causes = cause_timelines({"e-crvs": [span(1000, 1090)], "id": [span(990, 1060)]}, {"e-crvs": ("id",)}, {})
    crvs = split("e-crvs", at(1000), at(1090), causes["e-crvs"])
    ident = split("id", at(990), at(1060), causes["id"])
    assert (crvs.own_seconds, crvs.hosted_seconds, crvs.external_root_seconds) == (1800, 3600, 0)
    assert crvs.dependencies[0]["kind"] == HOSTED and crvs.dependencies[0]["root"] == "id"
    assert ident.own_seconds == 70 * 60 and ident.dependency_seconds == 0
    # Two outages, not three: the ID service's, and e-CRVS's own last 30 minutes.
    assert ident.roots | crvs.roots == {("id", attribution.us(at(990))), ("e-crvs", attribution.us(at(1000)))}


def test_a_chain_a_b_c_is_attributed_along_the_chain():
    # C down [0, 60); B, which needs C, down [10, 70); A, which needs B, down [20, 80).
    down = {"a": [span(20, 80)], "b": [span(10, 70)], "c": [span(0, 60)]}
    causes = cause_timelines(down, {"a": ("b",), "b": ("c",)}, {})
    a = split("a", at(20), at(80), causes["a"])
    # [20, 60) through B with C as root; [60, 70) through B, B's own; [70, 80) A's own.
    assert a.own_seconds == 600 and a.hosted_seconds == 3000
    assert a.dependencies == ({"name": "b", "kind": HOSTED, "seconds": 2400, "root": "c"},
                              {"name": "b", "kind": HOSTED, "seconds": 600, "root": "b"})
    b = split("b", at(10), at(70), causes["b"])
    assert (b.own_seconds, b.dependency_seconds) == (600, 3000)
    c = split("c", at(0), at(60), causes["c"])
    outages = a.roots | b.roots | c.roots
    assert outages == {("c", attribution.us(at(0))), ("b", attribution.us(at(10))), ("a", attribution.us(at(20)))}


def test_overlapping_dependencies_count_the_time_once_under_the_first_down():
    # P needs Q and R: Q down [0, 30), R down [10, 50); P down [5, 60).
    causes = cause_timelines({"p": [span(5, 60)], "q": [span(0, 30)], "r": [span(10, 50)]}, {"p": ("r", "q")}, {})
    p = split("p", at(5), at(60), causes["p"])
    assert p.dependency_seconds == 45 * 60 and p.own_seconds == 10 * 60
    assert [(d["name"], d["seconds"]) for d in p.dependencies] == [("q", 1500), ("r", 1200)]


def test_an_unknown_dependency_leaves_the_downtime_its_own():
    # Q's state was unknown (no down spans) while P was down; and a name nothing declares.
    causes = cause_timelines({"p": [span(0, 90)], "q": []}, {"p": ("q", "no-such-thing")}, {})
    p = split("p", at(0), at(90), causes["p"])
    assert (p.own_seconds, p.dependency_seconds, p.dependencies) == (5400, 0, ())


def test_a_cycle_does_not_loop_and_gives_each_time_once():
    causes = cause_timelines({"a": [span(0, 60)], "b": [span(30, 90)]}, {"a": ("b",), "b": ("a",)}, {})
    a = split("a", at(0), at(60), causes["a"])
    b = split("b", at(30), at(90), causes["b"])
    assert a.own_seconds + a.dependency_seconds == 3600 and b.own_seconds + b.dependency_seconds == 3600


def test_a_data_centre_component_is_never_a_third_party_root():
    causes = cause_timelines({"p": [span(0, 60)]}, {"p": ("power",)}, {"power": [span(0, 120)]})
    p = split("p", at(0), at(60), causes["p"], third_party=frozenset())
    assert p.external_seconds == 3600 and p.external_root_seconds == 0


def test_an_operators_attribution_replaces_the_computed_one():
    causes = cause_timelines({"p": [span(0, 60)], "q": [span(0, 60)]}, {"p": ("q",)}, {})
    own = split("p", at(0), at(60), causes["p"], operator=("own", "data-centre", "p"))
    assert (own.own_seconds, own.dependency_seconds, own.source) == (3600, 0, "operator")
    assert own.roots == {("p", attribution.us(at(0)))}
    external = split("p", at(0), at(60), causes["p"], third_party=frozenset({"bank-switch"}),
                     operator=(EXTERNAL, "bank-switch", "bank-switch"))
    assert (external.external_seconds, external.external_root_seconds, external.own_seconds) == (3600, 3600, 0)


def test_causes_cover_the_down_time_exactly():
    down = {"p": [span(0, 10), span(10, 20), span(40, 100)], "q": [span(5, 15), span(50, 60), span(55, 70)]}
    causes = cause_timelines(down, {"p": ("q",)}, {})["p"]
    pieces = [(c.start, c.end, c.via) for c in causes]
    m = 60_000_000
    t = attribution.us(T0)
    assert pieces == [(t, t + 5 * m, None), (t + 5 * m, t + 15 * m, "q"), (t + 15 * m, t + 20 * m, None),
                      (t + 40 * m, t + 50 * m, None), (t + 50 * m, t + 70 * m, "q"), (t + 70 * m, t + 100 * m, None)]


@pytest.mark.parametrize(("seconds", "budget", "threshold", "major"), [
    (0, 2592, 50, False),
    (1296, 2592, 50, True),  # exactly half the budget
    (1295, 2592, 50, False),
    (2593, 2592, 100, True),  # alone breaches
    (1, 0, 50, True),  # no budget at all (a 100 % target): any downtime breaches
])
def test_major_incidents(seconds, budget, threshold, major):
    assert is_major(seconds, budget, threshold_percent=threshold) is major


def test_naive_times_are_refused():
    with pytest.raises(ValueError, match="timezone-aware"):
        cause_timelines({"p": [(datetime(2026, 1, 1), datetime(2026, 1, 2))]}, {}, {})

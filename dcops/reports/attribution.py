"""Attribution maths, pure: which part of a programme's downtime overlaps downtime of what it depends on, and its root.

A programme P declares what it depends on: other programmes hosted here, and external
components (the national ID service, a bank's switch). Each instant of P's downtime that falls
in downtime of a dependency is *dependency downtime*, caused "via" that dependency; the rest is
P's *own*. Each instant also has a *root*: the first thing down along the chain (P depends on B,
B on C, all three down: the root is C), so that the data centre counts one outage once, under
its root. Where several dependencies are down at once, the one that went down first is named
(then the first by name): the time is counted once.

A dependency whose state is unknown, or that has no history, is not down: P's downtime then
stays its own, since nothing shows it was caused elsewhere.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass
from datetime import datetime

from dcops.reports.uptime import _EPOCH, _MICROSECOND

HOSTED = "hosted"  # the dependency is a programme dcops hosts
EXTERNAL = "external"  # the dependency is an external component

_Interval = tuple[int, int]  # [start, end) in µs since the epoch


@dataclass(frozen=True)
class Cause:
    """One stretch of a programme's downtime and what caused it: `via` None is its own."""

    start: int  # µs
    end: int
    via: str | None  # the dependency it was down through (None: its own)
    via_kind: str | None  # HOSTED or EXTERNAL (None: its own)
    root: str  # the first thing down along the chain (the programme itself, when its own)
    root_kind: str  # "own" (a programme's own fault), HOSTED or EXTERNAL
    root_start: int  # when the root's own outage began: with `root`, names one outage
    down_start: int  # when the programme's own stretch of down time holding this piece began


@dataclass(frozen=True)
class Split:
    """An incident's (or a programme's) downtime split by cause; seconds."""

    own_seconds: float
    dependency_seconds: float
    hosted_seconds: float  # dependency time via a hosted programme
    external_seconds: float  # dependency time via an external component
    external_root_seconds: float  # any time whose root is a third-party external component
    dependencies: tuple[dict, ...]  # [{"name", "kind", "seconds", "root"}], most seconds first
    roots: frozenset[tuple[str, int]]  # the outages it is part of: (root, root_start µs)
    source: str  # "computed" from the histories, or "operator" (an operator's attribution)

    def as_dict(self) -> dict:
        return {"own_seconds": _round(self.own_seconds), "dependency_seconds": _round(self.dependency_seconds),
                "dependencies": [dict(d) for d in self.dependencies], "source": self.source}


def us(moment: datetime) -> int:
    """An aware datetime as integer µs since the epoch (the maths is exact in µs)."""
    if moment.tzinfo is None:
        raise ValueError(f"naive datetime {moment.isoformat()}: attribution needs timezone-aware times")
    return (moment - _EPOCH) // _MICROSECOND


def _merge(intervals: list[_Interval]) -> list[_Interval]:
    """Sorted, disjoint, adjacent ones joined."""
    merged: list[list[int]] = []
    for lo, hi in sorted(intervals):
        if hi <= lo:
            continue
        if merged and lo <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], hi)
        else:
            merged.append([lo, hi])
    return [(lo, hi) for lo, hi in merged]


def _resolve(labelled: list[tuple[int, int, tuple]]) -> list[tuple[int, int, tuple]]:
    """Overlapping labelled intervals as disjoint segments, each instant under the interval that
    began first (then the smallest label): (start, end, label)."""
    if not labelled:
        return []
    bounds = sorted({t for lo, hi, _l in labelled for t in (lo, hi)})
    by_start = sorted(labelled, key=lambda item: (item[0], item[2]))
    active: list[tuple[int, tuple, int]] = []  # heap of (start, label, end)
    segments: list[tuple[int, int, tuple]] = []
    k = 0
    for lo, hi in zip(bounds, bounds[1:]):
        while k < len(by_start) and by_start[k][0] <= lo:
            start, end, label = by_start[k]
            heapq.heappush(active, (start, label, end))
            k += 1
        while active and active[0][2] <= lo:
            heapq.heappop(active)
        if active:
            label = active[0][1]
            if segments and segments[-1][1] == lo and segments[-1][2] == label:
                segments[-1] = (segments[-1][0], hi, label)
            else:
                segments.append((lo, hi, label))
    return segments


def _intersect(down: list[_Interval], segments: list[tuple[int, int, tuple]]):
    """Walk `down` (disjoint, sorted) against labelled `segments` (disjoint, sorted): yields
    (lo, hi, label or None, the start of the down interval it is in) covering `down` exactly."""
    j = 0
    for lo, hi in down:
        at = lo
        while j < len(segments) and segments[j][1] <= at:
            j += 1
        k = j
        while at < hi:
            if k < len(segments) and segments[k][0] < hi:
                s_lo, s_hi, label = segments[k]
                if s_lo > at:
                    yield at, s_lo, None, lo
                    at = s_lo
                piece_end = min(s_hi, hi)
                if piece_end > at:
                    yield at, piece_end, label, lo
                    at = piece_end
                if s_hi <= hi:
                    k += 1
            else:
                yield at, hi, None, lo
                at = hi


def cause_timelines(down: dict[str, list[tuple[datetime, datetime]]], depends_on: dict[str, tuple[str, ...]],
                    outages: dict[str, list[tuple[datetime, datetime]]]) -> dict[str, list[Cause]]:
    """Each programme's down time, cut into Causes.

    `down`: per programme, the time it was down (its state was down, whatever else held then);
    `depends_on`: per programme, the names it depends on (programmes, or keys of `outages`);
    `outages`: per external component, the time it was down. A name that is neither, and a
    cycle's way back, contribute nothing.
    """
    merged = {name: _merge([(us(a), us(b)) for a, b in spans]) for name, spans in down.items()}
    external = {name: _merge([(us(a), us(b)) for a, b in spans]) for name, spans in outages.items()}
    done: dict[str, list[Cause]] = {}
    in_progress: set[str] = set()

    def timeline(name: str) -> list[Cause]:
        if name in done:
            return done[name]
        in_progress.add(name)
        labelled: list[tuple[int, int, tuple]] = []
        for dependency in depends_on.get(name, ()):
            if dependency in external:
                labelled += [(lo, hi, (dependency, EXTERNAL, dependency, EXTERNAL, lo))
                             for lo, hi in external[dependency]]
            elif dependency in merged and dependency not in in_progress and dependency != name:
                for cause in timeline(dependency):
                    labelled.append((cause.start, cause.end,
                                     (dependency, HOSTED, cause.root, cause.root_kind, cause.root_start)))
        own_down = merged.get(name, [])
        if not labelled:  # nothing it needs was down: all its own (most programmes, most of the time)
            causes = [Cause(lo, hi, None, None, name, "own", lo, lo) for lo, hi in own_down]
            in_progress.discard(name)
            done[name] = causes
            return causes
        segments = _resolve(labelled)
        causes = []
        for piece_lo, piece_hi, label, lo in _intersect(own_down, segments):
            if label is None:
                causes.append(Cause(piece_lo, piece_hi, None, None, name, "own", lo, lo))
            else:
                via, via_kind, root, root_kind, root_start = label
                # A hosted root's own fault is a hosted root for its dependants.
                causes.append(Cause(piece_lo, piece_hi, via, via_kind, root,
                                    HOSTED if root_kind == "own" else root_kind, root_start, lo))
        in_progress.discard(name)
        done[name] = causes
        return causes

    for name in merged:
        timeline(name)
    return done


def _own_outage(programme: str, lo: int, hi: int, causes: list[Cause]) -> tuple[str, int]:
    # The programme's own outage is named by when its stretch of down time began (which may be
    # before this incident, cut by the period or by maintenance), as its dependants name it.
    return (programme, next((c.down_start for c in causes if c.start < hi and c.end > lo), lo))


def all_own(programme: str, lo: int, hi: int, causes: list[Cause]) -> tuple[str, int] | None:
    """The outage [lo, hi) (µs) is part of, when none of `causes` (those it overlaps) is through a
    dependency: what split says of such an incident without an operator's word, where it is all
    the programme's own (own_seconds (hi - lo) / 1e6, nothing else) and its one root this.
    None when some cause is through a dependency."""
    for cause in causes:
        if cause.via is not None:
            return None
    return _own_outage(programme, lo, hi, causes)


def split(programme: str, start: datetime, end: datetime, causes: list[Cause], *,
          third_party: frozenset[str] = frozenset(), operator: tuple[str, str, str] | None = None) -> Split:
    """How the downtime [start, end) of `programme` (a counted incident) divides by cause.

    `third_party`: the external components run outside the data centre (their time may be left
    out of an SLA). `operator`: an operator's attribution of the whole incident, (kind, name,
    root) with kind "own", HOSTED or EXTERNAL, which replaces what the histories say.
    """
    lo, hi = us(start), us(end)
    own_outage = _own_outage(programme, lo, hi, causes)
    if operator is None and all(c.via is None for c in causes):  # the common case: all its own
        return Split((hi - lo) / 1_000_000, 0.0, 0.0, 0.0, 0.0, (), frozenset({own_outage}), "computed")
    if operator is not None:
        kind, name, root = operator
        seconds = (hi - lo) / 1_000_000
        if kind == "own":
            return Split(seconds, 0.0, 0.0, 0.0, 0.0, (), frozenset({own_outage}), "operator")
        external_root = seconds if kind == EXTERNAL and root in third_party else 0.0
        return Split(0.0, seconds, seconds if kind == HOSTED else 0.0, seconds if kind == EXTERNAL else 0.0,
                     external_root, ({"name": name, "kind": kind, "seconds": _round(seconds), "root": root},),
                     frozenset({(root, lo)}), "operator")
    own = hosted = external = external_root = 0
    by_dependency: dict[tuple[str, str, str], int] = {}
    roots = set()
    covered = 0
    for cause in causes:
        a, b = max(cause.start, lo), min(cause.end, hi)
        if a >= b:
            continue
        length = b - a
        covered += length
        roots.add((cause.root, cause.root_start) if cause.via is not None else own_outage)
        if cause.via is None:
            own += length
            continue
        key = (cause.via, cause.via_kind, cause.root)
        by_dependency[key] = by_dependency.get(key, 0) + length
        if cause.via_kind == HOSTED:
            hosted += length
        else:
            external += length
        if cause.root_kind == EXTERNAL and cause.root in third_party:
            external_root += length
    # Downtime the histories do not cover as down (there should be none) is the programme's own.
    if (hi - lo) > covered:
        own += (hi - lo) - covered
        roots.add(own_outage)
    dependencies = tuple(
        {"name": via, "kind": kind, "seconds": _round(length / 1_000_000), "root": root}
        for (via, kind, root), length in sorted(by_dependency.items(), key=lambda item: (-item[1], item[0])))
    return Split(own / 1_000_000, (hosted + external) / 1_000_000, hosted / 1_000_000, external / 1_000_000,
                 external_root / 1_000_000, dependencies, frozenset(roots), "computed")


def availability(counted_seconds: float, downtime_seconds: float) -> float | None:
    """(T - M - U - D') / (T - M - U), with D' the downtime that counts: None without counted time."""
    if counted_seconds <= 0:
        return None
    return (counted_seconds - downtime_seconds) / counted_seconds


def is_major(seconds: float, budget_seconds: float, *, threshold_percent: float) -> bool:
    """An incident is major if it alone breaches the SLA (uses the whole budget, or any downtime
    when the budget is none) or uses at least `threshold_percent` of the error budget."""
    if seconds <= 0:
        return False
    if budget_seconds <= 0:
        return True
    return 100 * seconds / budget_seconds >= threshold_percent - 1e-9


def _round(seconds: float) -> float:
    return seconds if float(seconds).is_integer() else round(seconds, 3)


"""The portal's short cache: computed once per key and period, shared safely, forgotten after a change."""

from __future__ import annotations

import threading

from dcops.portal.cache import TtlCache


class Clock:
    def __init__(self):
        self.now = 100.0

    def __call__(self):
        return self.now


def test_a_value_is_served_until_it_expires_then_computed_again():
    clock, calls = Clock(), []
    cache = TtlCache(10, clock=clock)
    compute = lambda: calls.append(1) or len(calls)  # noqa: E731
    assert cache.get("moh", compute) == 1
    clock.now += 9.9
    assert cache.get("moh", compute) == 1
    clock.now += 0.2
    assert cache.get("moh", compute) == 2
    assert cache.get("mof", compute) == 3  # keys apart
    cache.clear()
    assert cache.get("moh", compute) == 4


def test_many_asking_at_once_compute_once():
    cache, calls, started = TtlCache(10), [], threading.Event()

    def slow():
        calls.append(1)
        started.wait(1)
        return "section"

    results = []
    threads = [threading.Thread(target=lambda: results.append(cache.get("moh", slow))) for _ in range(20)]
    for thread in threads:
        thread.start()
    started.set()
    for thread in threads:
        thread.join()
    assert results == ["section"] * 20 and len(calls) == 1

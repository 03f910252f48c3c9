"""A short-lived cache of what the portal renders for many people alike (a ministry's home section)."""

from __future__ import annotations

import threading
import time
from typing import Callable, Hashable, TypeVar

T = TypeVar("T")

# How long a ministry's home section is served before it is computed again. Its figures move at the
# prober's pace (checks every 30-60 s; a month's availability by hundredths of a percent), and its
# open requests are the same in this worker at once after a change made here (see `clear`).
HOME_SECTION_SECONDS = 10.0


class TtlCache:
    """Values kept `seconds` after they were computed, per key; computed once however many ask at once.

    Only a cache: it holds nothing the database does not, and nothing about who is asking
    (authorisation happens before a lookup, on every request).
    """

    def __init__(self, seconds: float, *, clock: Callable[[], float] = time.monotonic, max_entries: int = 1024):
        self.seconds = seconds
        self.clock = clock
        self.max_entries = max_entries
        self._values: dict[Hashable, tuple[float, object]] = {}
        self._lock = threading.Lock()
        self._computing: dict[Hashable, threading.Lock] = {}

    def get(self, key: Hashable, compute: Callable[[], T]) -> T:
        """The cached value of `key`, or `compute()`'s, stored for the next `seconds`."""
        found = self._fresh(key)
        if found is not None:
            return found[1]  # type: ignore[return-value]
        with self._lock:
            gate = self._computing.setdefault(key, threading.Lock())
        with gate:  # fifty sessions asking at once compute it once
            found = self._fresh(key)
            if found is not None:
                return found[1]  # type: ignore[return-value]
            value = compute()
            with self._lock:
                if len(self._values) >= self.max_entries:
                    self._values.clear()
                self._values[key] = (self.clock() + self.seconds, value)
            return value

    def _fresh(self, key: Hashable):
        entry = self._values.get(key)
        if entry is not None and entry[0] > self.clock():
            return entry
        return None

    def clear(self) -> None:
        """Forget everything: after a change made through this worker, its pages show it at once."""
        with self._lock:
            self._values.clear()

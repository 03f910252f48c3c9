"""The cycle collector paused while a large tree of short-lived objects is built: a report, a status page, a parse."""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def paused() -> Iterator[None]:
    """No cyclic collection inside the block; the collector runs as before afterwards.

    A year's uptime report makes some 300,000 containers (day shares, incidents, their dicts),
    none in a cycle: the collector freed nothing, but its full passes walked the growing heap
    again and again, about a third of the year's document (a fifth of a status page's view, half
    of an inventory file's parse). Reference counting still frees
    everything as usual. Nested or concurrent blocks are safe: only a block that found the
    collector running turns it back on.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()

"""The Jinja2 environment that dcops' reports and status pages render with."""

from __future__ import annotations

from functools import lru_cache
from typing import Any

_DICT_ATTRIBUTES = frozenset(dir(dict))


@lru_cache(maxsize=1)
def _environment_class():
    import jinja2  # here, not at import: the CLI's start-up stays without it

    class DictFirstEnvironment(jinja2.Environment):
        """`x.name` on a plain dict (what documents and views are made of) reads its key at once.

        Jinja tries the attribute first and takes the key when that raises AttributeError: a
        year's uptime report reads some 70,000 keys so, and the exceptions were a fifth of its
        HTML. A name a dict has as an attribute (`items`, `get`...) still goes Jinja's way, so
        every lookup gives what it gave before.
        """

        def getattr(self, obj: Any, attribute: str) -> Any:
            if obj.__class__ is dict and attribute not in _DICT_ATTRIBUTES:
                try:
                    return obj[attribute]
                except KeyError:
                    pass
            return super().getattr(obj, attribute)

    return DictFirstEnvironment


def environment(**options: Any):
    """A jinja2 Environment with `options`, reading plain dicts' keys first (DictFirstEnvironment)."""
    return _environment_class()(**options)

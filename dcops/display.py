"""The house style of figures in what dcops publishes in English: money, percentages, sizes, no data.

The catalogue site, the reports and the status page write a figure through these functions, so
that a ministry reads the same "32,000,000 LAK" and "99.9 %" on each of them. (The portal writes
its figures through its own Formatter, in the reader's language, in the same order.)
"""

from __future__ import annotations

import math

NO_DATA = "—"  # no data is a dash: never "0 min", "0 %" or "n/a"
CURRENCY = "LAK"
GIB_PER_TIB = 1024


def lak(amount: float | None) -> str:
    """Whole kip, grouped, then the currency's code: 32000000 -> "32,000,000 LAK"; None -> "—".

    The amount comes first, as the kip is written in Lao; the ISO code, as English has no sign of its own.
    """
    if amount is None:
        return NO_DATA
    return f"{round(amount):,} {CURRENCY}"


def percent(value: float | None, digits: int | None = None) -> str:
    """A 0-100 percentage, a space before the sign: 99.9 -> "99.9 %", (51.234, 1) -> "51.2 %".

    Without `digits`, as written (a target: 99.95 -> "99.95 %"); None -> "—".
    """
    if value is None:
        return NO_DATA
    if digits is None:
        return f"{float(value):.6g} %"
    return f"{value:,.{digits}f} %"


def share(ratio: float | None, digits: int = 2) -> str:
    """A 0-1 ratio as a percentage rounded DOWN, so that only a whole 1.0 reads 100 %:
    0.99996 -> "99.99 %"; None -> "—"."""
    if ratio is None:
        return NO_DATA
    scale = 10 ** (digits + 2)
    # The epsilon absorbs float noise (0.99876 * 1e5 = 99875.99999...).
    return f"{math.floor(ratio * scale + 1e-6) / 10**digits:.{digits}f} %"


def gib(amount: float | None) -> str:
    """A size in GiB, grouped, whole: 1024 -> "1,024 GiB"; None -> "—"."""
    if amount is None:
        return NO_DATA
    return f"{round(amount):,}\u00a0GiB"

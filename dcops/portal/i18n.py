"""The portal's languages: the Lao and English catalogues, and dates and amounts formatted for each.

English is the source: the templates' strings are the message ids. dcops/locale/messages.pot lists
them all, dcops/locale/lo/LC_MESSAGES/messages.po translates them into Lao (which still needs a
native Lao speaker's review). After changing a string in a template, refresh both from the checkout:

    pybabel extract -F dcops/locale/babel.cfg --project=dcops -o dcops/locale/messages.pot dcops/portal
    pybabel update -i dcops/locale/messages.pot -d dcops/locale --ignore-obsolete

then translate each new entry of the .po, and check each one marked fuzzy and remove the flag
(a fuzzy entry is not used: the page shows its English). tests/test_portal_i18n.py fails until
every message has its Lao.
"""

from __future__ import annotations

import gettext
import io
from datetime import date, datetime
from functools import lru_cache
from zoneinfo import ZoneInfo

from dcops import resources

LANGUAGES = {"en": "English", "lo": "ລາວ"}
DEFAULT_LANGUAGE = "en"
LOCALES = {"en": "en_GB", "lo": "lo_LA"}
DOMAIN = "messages"


def language_of(value: str | None) -> str:
    """A known language code, else the default: a cookie or form value is never trusted as is."""
    return value if value in LANGUAGES else DEFAULT_LANGUAGE


@lru_cache(maxsize=None)
def translations(language: str) -> gettext.NullTranslations:
    """The catalogue of `language`, compiled from its .po file once per process (English is the source)."""
    if language == DEFAULT_LANGUAGE or language not in LANGUAGES:
        return gettext.NullTranslations()
    from babel.messages.mofile import write_mo
    from babel.messages.pofile import read_po

    path = resources.package_dir("locale") / language / "LC_MESSAGES" / f"{DOMAIN}.po"
    if not path.is_file():
        return gettext.NullTranslations()
    with path.open("rb") as po:
        catalog = read_po(po, locale=LOCALES[language])
    compiled = io.BytesIO()
    write_mo(compiled, catalog, use_fuzzy=False)
    compiled.seek(0)
    return gettext.GNUTranslations(compiled)


class Formatter:
    """Dates, times, percentages and LAK amounts written the way `language` writes them."""

    def __init__(self, language: str, tz: ZoneInfo):
        self.language = language_of(language)
        self.locale = LOCALES[self.language]
        self.tz = tz

    def date(self, value: date | datetime | str | None) -> str:
        from babel.dates import format_date

        if value is None or value == "":
            return "—"
        if isinstance(value, str):
            value = datetime.fromisoformat(value.replace("Z", "+00:00")) if "T" in value else date.fromisoformat(value)
        if isinstance(value, datetime):
            value = value.astimezone(self.tz).date()
        return format_date(value, "medium", locale=self.locale)

    def datetime(self, value: datetime | str | None) -> str:
        from babel.dates import format_datetime

        if value is None or value == "":
            return "—"
        if isinstance(value, str):
            value = datetime.fromisoformat(value.replace("Z", "+00:00"))
        return format_datetime(value.astimezone(self.tz), "medium", tzinfo=self.tz, locale=self.locale)

    def lak(self, amount: int | float | None) -> str:
        """Whole kip grouped as the language groups digits, then the currency as the language writes
        it after an amount: "32,000,000 LAK" in English, like the catalogue site and the reports
        (dcops.display.lak), and "32.000.000 ກີບ" in Lao, where prose names the kip in its own word."""
        from babel.numbers import format_decimal

        from dcops.display import CURRENCY

        if amount is None:
            return "—"
        currency = "ກີບ" if self.language == "lo" else CURRENCY
        return format_decimal(amount, format="#,##0", locale=self.locale) + " " + currency

    def percent(self, ratio: float | None, digits: int = 3) -> str:
        """A ratio (0.9995) as a percentage (99.950 %); no data is a dash, never 0 %."""
        from babel.numbers import format_decimal

        if ratio is None:
            return "—"
        pattern = "0." + "0" * digits if digits else "0"
        return format_decimal(ratio * 100, format=pattern, locale=self.locale) + " %"

    def number(self, value: int | float | None) -> str:
        from babel.numbers import format_decimal

        return "—" if value is None else format_decimal(value, locale=self.locale)

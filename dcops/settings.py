"""The one settings object: where the database is, DCOPS_HOME, the data centre's time zone."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from dcops import resources
from dcops.errors import ConfigError

DEFAULT_TIMEZONE = "Asia/Vientiane"
DEFAULT_BUSY_TIMEOUT_MS = 5000
DEFAULT_DATA_CENTRE_NAME = "National Data Centre"
# The playbooks shipped inside the package (dcops/resources.py finds them).
DEFAULT_PLAYBOOKS_DIR = resources.playbooks_dir()


_PASSWORD_IN_URL = re.compile(r"(://[^/:@]*:)[^/@]*@")


def redacted_url(url: str) -> str:
    """A database URL fit to print: its password, if any, replaced by ***, whatever the scheme."""
    return _PASSWORD_IN_URL.sub(r"\1***@", url)


def default_home(environ: os._Environ[str] | dict[str, str]) -> Path:
    """`$XDG_DATA_HOME/dcops`, else `~/.local/share/dcops`."""
    data_home = environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(data_home) / "dcops"


@dataclass(frozen=True)
class Settings:
    """What dcops reads from the environment, read once and passed explicitly."""

    home: Path
    database_url: str
    timezone: str = DEFAULT_TIMEZONE
    busy_timeout_ms: int = DEFAULT_BUSY_TIMEOUT_MS
    playbooks_dir: Path = DEFAULT_PLAYBOOKS_DIR
    data_centre_name: str = DEFAULT_DATA_CENTRE_NAME  # the name on reports

    @classmethod
    def from_env(cls, environ: os._Environ[str] | dict[str, str] | None = None) -> "Settings":
        """Read DCOPS_HOME, DCOPS_DATABASE_URL, DCOPS_TIMEZONE, DCOPS_BUSY_TIMEOUT_MS, DCOPS_PLAYBOOKS_DIR,
        DCOPS_DATA_CENTRE_NAME."""
        env = os.environ if environ is None else environ
        home = Path(env.get("DCOPS_HOME") or default_home(env)).expanduser()
        url = env.get("DCOPS_DATABASE_URL") or f"sqlite:///{home / 'dcops.db'}"
        if not url.startswith(("sqlite:", "postgresql")):
            raise ConfigError(
                f"DCOPS_DATABASE_URL must be a sqlite:/// or postgresql+psycopg:// URL, not {redacted_url(url)!r}"
            )
        timezone = env.get("DCOPS_TIMEZONE") or DEFAULT_TIMEZONE
        try:
            ZoneInfo(timezone)
        except (ZoneInfoNotFoundError, ValueError):
            raise ConfigError(f"DCOPS_TIMEZONE: unknown time zone {timezone!r}") from None
        raw_timeout = env.get("DCOPS_BUSY_TIMEOUT_MS") or str(DEFAULT_BUSY_TIMEOUT_MS)
        if not raw_timeout.isdigit():
            raise ConfigError(f"DCOPS_BUSY_TIMEOUT_MS must be a whole number of milliseconds, not {raw_timeout!r}")
        playbooks_dir = Path(env.get("DCOPS_PLAYBOOKS_DIR") or DEFAULT_PLAYBOOKS_DIR).expanduser()
        name = (env.get("DCOPS_DATA_CENTRE_NAME") or DEFAULT_DATA_CENTRE_NAME).strip()
        if len(name) > 120 or any(ch in name for ch in "\r\n"):
            raise ConfigError("DCOPS_DATA_CENTRE_NAME: one line of at most 120 characters")
        return cls(home=home, database_url=url, timezone=timezone, busy_timeout_ms=int(raw_timeout),
                   playbooks_dir=playbooks_dir, data_centre_name=name)

    @property
    def tz(self) -> ZoneInfo:
        """The data centre's time zone, in which reports cut their periods."""
        return ZoneInfo(self.timezone)

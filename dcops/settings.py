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
# Keycloak 26's organisation claim (the aliases of the person's organisations: the ministries'
# codes), a claim of dcops' roles its realm is set to emit, and the scopes that bring both.
DEFAULT_OIDC_MINISTRY_CLAIM = "organization"
DEFAULT_OIDC_ROLES_CLAIM = "dcops_roles"
DEFAULT_OIDC_SCOPES = "openid profile email organization"
_OIDC_LOOPBACK_HOSTS = ("127.0.0.1", "localhost")  # the only hosts an http:// issuer may name (tests)
_SCOPE_TOKEN = re.compile(r"^[\x21\x23-\x5b\x5d-\x7e]+$")  # RFC 6749 3.3


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
    # Signing in to the portal through OpenID Connect (dcops.portal.oidc); no issuer: local accounts only.
    oidc_issuer: str | None = None
    oidc_client_id: str = ""
    oidc_client_secret_file: Path | None = None  # read by the portal, never the secret itself in the environment
    oidc_ministry_claim: str = DEFAULT_OIDC_MINISTRY_CLAIM
    oidc_roles_claim: str = DEFAULT_OIDC_ROLES_CLAIM
    oidc_scopes: str = DEFAULT_OIDC_SCOPES

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
                   playbooks_dir=playbooks_dir, data_centre_name=name,
                   **_oidc_from_env(env))

    @property
    def tz(self) -> ZoneInfo:
        """The data centre's time zone, in which reports cut their periods."""
        return ZoneInfo(self.timezone)


def _oidc_from_env(env) -> dict:
    """DCOPS_OIDC_ISSUER (unset: OpenID Connect off; https, or http on 127.0.0.1/localhost), _CLIENT_ID
    (required with an issuer), _CLIENT_SECRET_FILE (none: a public client), _MINISTRY_CLAIM, _ROLES_CLAIM, _SCOPES."""
    from urllib.parse import urlsplit

    if env.get("DCOPS_OIDC_CLIENT_SECRET"):
        raise ConfigError("DCOPS_OIDC_CLIENT_SECRET is not read: put the client secret in a file named by "
                          "DCOPS_OIDC_CLIENT_SECRET_FILE (the environment is readable by other processes)")
    issuer = (env.get("DCOPS_OIDC_ISSUER") or "").strip() or None
    if issuer is not None:
        try:
            parts = urlsplit(issuer)
            parts.port  # noqa: B018 - a port that is no number raises here
        except ValueError:
            parts = None
        secure = parts is not None and parts.scheme == "https" and bool(parts.hostname)
        loopback = parts is not None and parts.scheme == "http" and parts.hostname in _OIDC_LOOPBACK_HOSTS
        if (not (secure or loopback) or parts.query or parts.fragment or "@" in parts.netloc
                or not issuer.isprintable() or " " in issuer):
            raise ConfigError(f"DCOPS_OIDC_ISSUER must be the identity provider's https:// issuer, like "
                              f"https://id.gov.la/realms/gov (http:// only on 127.0.0.1 or localhost), not {issuer!r}")
    client_id = (env.get("DCOPS_OIDC_CLIENT_ID") or "").strip()
    if issuer is not None and not client_id:
        raise ConfigError("DCOPS_OIDC_CLIENT_ID is required when DCOPS_OIDC_ISSUER is set: the portal's client id "
                          "at the identity provider")
    if client_id and (len(client_id) > 200 or not client_id.isprintable()):
        raise ConfigError("DCOPS_OIDC_CLIENT_ID must be one line of at most 200 characters")
    secret_file = (env.get("DCOPS_OIDC_CLIENT_SECRET_FILE") or "").strip() or None
    claims = {}
    for setting, default in (("MINISTRY_CLAIM", DEFAULT_OIDC_MINISTRY_CLAIM),
                             ("ROLES_CLAIM", DEFAULT_OIDC_ROLES_CLAIM)):
        claim = (env.get(f"DCOPS_OIDC_{setting}") or default).strip()
        if len(claim) > 200 or not claim.isprintable() or " " in claim:
            raise ConfigError(f"DCOPS_OIDC_{setting} must be a claim name (a dotted path for a nested claim), "
                              f"not {claim!r}")
        claims[setting] = claim
    scopes = (env.get("DCOPS_OIDC_SCOPES") or DEFAULT_OIDC_SCOPES).split()
    if "openid" not in scopes or not all(_SCOPE_TOKEN.match(scope) for scope in scopes):
        raise ConfigError(f"DCOPS_OIDC_SCOPES must be scopes separated by spaces, openid among them, "
                          f"not {' '.join(scopes)!r}")
    return {"oidc_issuer": issuer, "oidc_client_id": client_id,
            "oidc_client_secret_file": Path(secret_file).expanduser() if secret_file else None,
            "oidc_ministry_claim": claims["MINISTRY_CLAIM"], "oidc_roles_claim": claims["ROLES_CLAIM"],
            "oidc_scopes": " ".join(dict.fromkeys(scopes))}

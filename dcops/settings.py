"""The one settings object: where the database is, DCOPS_HOME, the data centre's time zone, the mail server."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError
from urllib.parse import urlsplit

from dcops import resources
from dcops.errors import ConfigError

DEFAULT_TIMEZONE = "Asia/Vientiane"
DEFAULT_BUSY_TIMEOUT_MS = 5000
DEFAULT_DATA_CENTRE_NAME = "National Data Centre"
# Below this share of its period measured, a programme's figure says "insufficient data", not met.
DEFAULT_MIN_COVERAGE_PERCENT = 90.0
# An incident that uses at least this share of its programme's error budget for the month is major
# (one that alone breaches the SLA is major whatever this says).
DEFAULT_MAJOR_INCIDENT_BUDGET_PERCENT = 50.0
# The playbooks shipped inside the package (dcops/resources.py finds them).
DEFAULT_PLAYBOOKS_DIR = resources.playbooks_dir()


_PASSWORD_IN_URL = re.compile(r"(://[^/:@]*:)[^/@]*@")
DEFAULT_SMTP_PORT = 25
DEFAULT_SMTP_TIMEOUT_S = 30.0
# The addresses dcops sends to: ASCII (no SMTPUTF8), a dot-atom local part, a DNS domain.
_LOCAL_PART = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*"
_DOMAIN = r"(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_MAIL_ADDRESS = re.compile(rf"^(?=[^@]{{1,64}}@){_LOCAL_PART}@{_DOMAIN}$")
_LOOPBACK_HOSTS = ("localhost", "127.0.0.1", "::1")
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


def mail_address(value: object) -> str | None:
    """The plain address in `value` ('a@b.la' or 'Name <a@b.la>'), or None if it is not one dcops can send to."""
    text = str(value or "").strip()
    if text.endswith(">") and "<" in text:
        text = text[text.rindex("<") + 1:-1].strip()
    if len(text) > 254 or not _MAIL_ADDRESS.match(text):
        return None
    return text


def _flag(env, name: str, default: bool) -> bool:
    raw = (env.get(name) or "").strip().lower()
    if not raw:
        return default
    if raw in ("true", "yes", "1", "on"):
        return True
    if raw in ("false", "no", "0", "off"):
        return False
    raise ConfigError(f"{name} must be true or false, not {raw!r}")


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
    # The mail server notifications go through; no host: they are queued in the outbox, not sent.
    smtp_host: str | None = None
    smtp_port: int = DEFAULT_SMTP_PORT
    smtp_from: str = ""  # the From header: 'noreply@dc.gov.la' or 'National Data Centre <noreply@dc.gov.la>'
    smtp_starttls: bool = False
    smtp_user: str | None = None
    smtp_password_file: Path | None = None  # read when sending, never the password itself in the environment
    smtp_timeout_s: float = DEFAULT_SMTP_TIMEOUT_S
    # Signing in to the portal through OpenID Connect (dcops.portal.oidc); no issuer: local accounts only.
    oidc_issuer: str | None = None
    oidc_client_id: str = ""
    oidc_client_secret_file: Path | None = None  # read by the portal, never the secret itself in the environment
    oidc_ministry_claim: str = DEFAULT_OIDC_MINISTRY_CLAIM
    oidc_roles_claim: str = DEFAULT_OIDC_ROLES_CLAIM
    oidc_scopes: str = DEFAULT_OIDC_SCOPES
    # The address browsers reach the portal at behind a reverse proxy (https://portal.example.gov.la):
    # the origin check of forms and the Secure cookies follow it. None: the address each request names.
    portal_origin: str | None = None
    # How ministries reach the data centre's service desk, printed on every public page
    # ("+856 21 000 000 · servicedesk@dc.gov.la"); empty: the pages say to ask the data centre.
    service_desk: str = ""
    min_coverage_percent: float = DEFAULT_MIN_COVERAGE_PERCENT
    major_incident_budget_percent: float = DEFAULT_MAJOR_INCIDENT_BUDGET_PERCENT
    # Where `dcops serve` publishes the status page every minute (public/ and ministries/ in it); None: it does not.
    status_dir: Path | None = None
    # Prometheus that probes through blackbox_exporter (http://127.0.0.1:9090); `dcops serve` syncs its
    # probe_success into the history store nightly. None: dcops' own prober is the only engine.
    prometheus_url: str | None = None
    # Alertmanager that gets a silence per announced maintenance window (http://127.0.0.1:9093); None: none.
    alertmanager_url: str | None = None
    # A file holding the shared secret Alertmanager's webhook presents to `dcops serve`
    # (Authorization: Bearer ...); None: the webhook path is not served.
    alertmanager_webhook_secret_file: Path | None = None

    @classmethod
    def from_env(cls, environ: os._Environ[str] | dict[str, str] | None = None) -> "Settings":
        """Read DCOPS_HOME, DCOPS_DATABASE_URL, DCOPS_TIMEZONE, DCOPS_BUSY_TIMEOUT_MS, DCOPS_PLAYBOOKS_DIR,
        DCOPS_DATA_CENTRE_NAME, DCOPS_PORTAL_ORIGIN, DCOPS_SERVICE_DESK, DCOPS_REPORT_MIN_COVERAGE_PERCENT,
        DCOPS_MAJOR_INCIDENT_BUDGET_PERCENT, DCOPS_STATUS_DIR, DCOPS_PROMETHEUS_URL, DCOPS_ALERTMANAGER_URL,
        DCOPS_ALERTMANAGER_WEBHOOK_SECRET_FILE and the DCOPS_SMTP_* and DCOPS_OIDC_* settings (see
        `_smtp_from_env`, `_oidc_from_env`)."""
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
        service_desk = (env.get("DCOPS_SERVICE_DESK") or "").strip()
        if len(service_desk) > 200 or not service_desk.isprintable():
            raise ConfigError("DCOPS_SERVICE_DESK: one line of at most 200 characters (a phone number, an address)")
        return cls(home=home, database_url=url, timezone=timezone, busy_timeout_ms=int(raw_timeout),
                   playbooks_dir=playbooks_dir, data_centre_name=name, **_smtp_from_env(env),
                   **_oidc_from_env(env), portal_origin=_portal_origin(env), service_desk=service_desk,
                   min_coverage_percent=_percent_setting(env, "DCOPS_REPORT_MIN_COVERAGE_PERCENT",
                                                         DEFAULT_MIN_COVERAGE_PERCENT),
                   major_incident_budget_percent=_percent_setting(env, "DCOPS_MAJOR_INCIDENT_BUDGET_PERCENT",
                                                                  DEFAULT_MAJOR_INCIDENT_BUDGET_PERCENT),
                   status_dir=_status_dir(env),
                   prometheus_url=_server_url(env, "DCOPS_PROMETHEUS_URL"),
                   alertmanager_url=_server_url(env, "DCOPS_ALERTMANAGER_URL"),
                   alertmanager_webhook_secret_file=_file_setting(env, "DCOPS_ALERTMANAGER_WEBHOOK_SECRET_FILE"))

    @property
    def tz(self) -> ZoneInfo:
        """The data centre's time zone, in which reports cut their periods."""
        return ZoneInfo(self.timezone)


def base_url(raw: str, *, name: str, error: type[Exception] = ConfigError) -> str:
    """An http(s) base URL of a server dcops talks to, such as http://127.0.0.1:9090, without its
    trailing slash; else `error` naming `name` (the setting, or the command's option)."""
    text = (raw or "").strip()
    parts = urlsplit(text)
    try:
        port_ok = parts.port is None or 0 < parts.port < 65536
    except ValueError:
        port_ok = False
    if parts.scheme not in ("http", "https") or not parts.hostname or not port_ok or not text.isprintable() \
            or parts.query or parts.fragment:
        raise error(f"{name} must be an http:// or https:// URL such as http://127.0.0.1:9090, "
                    f"not {redacted_url(raw)!r}")
    return text.rstrip("/")


def _server_url(env, name: str) -> str | None:
    """The setting `name` as base_url reads it; unset: None."""
    raw = (env.get(name) or "").strip()
    return base_url(raw, name=name) if raw else None


def _file_setting(env, name: str) -> Path | None:
    """A path to a file dcops reads when it needs it (a secret); unset: None. Checked when read."""
    raw = (env.get(name) or "").strip()
    if not raw:
        return None
    if not raw.isprintable() or len(raw) > 1024:
        raise ConfigError(f"{name} must be a file path on one line")
    return Path(raw).expanduser()


def _status_dir(env) -> Path | None:
    """DCOPS_STATUS_DIR: a folder path (made when first published), not a file; unset: None."""
    raw = (env.get("DCOPS_STATUS_DIR") or "").strip()
    if not raw:
        return None
    if not raw.isprintable() or len(raw) > 1024:
        raise ConfigError("DCOPS_STATUS_DIR must be a folder path on one line")
    path = Path(raw).expanduser()
    if path.exists() and not path.is_dir():
        raise ConfigError(f"DCOPS_STATUS_DIR: {path} exists and is not a folder")
    return path


def _percent_setting(env, name: str, default: float) -> float:
    raw = (env.get(name) or "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not 0 <= value <= 100:
        raise ConfigError(f"{name} must be a percentage from 0 to 100, not {raw!r}")
    return value


def _portal_origin(env) -> str | None:
    """DCOPS_PORTAL_ORIGIN: a scheme and a host (and port), nothing else."""
    value = (env.get("DCOPS_PORTAL_ORIGIN") or "").strip().rstrip("/")
    if not value:
        return None
    scheme, _, rest = value.partition("://")
    if scheme not in ("https", "http") or not rest or any(ch in rest for ch in "/?#@ \t"):
        raise ConfigError("DCOPS_PORTAL_ORIGIN must be a scheme and a host, like https://portal.example.gov.la, "
                          f"not {value!r}")
    return value


def _smtp_from_env(env) -> dict:
    """DCOPS_SMTP_HOST, _PORT (default 25), _FROM (required with a host), _STARTTLS (true/false),
    _USER with _PASSWORD_FILE (both or neither; over STARTTLS unless the host is loopback), _TIMEOUT_S."""
    if env.get("DCOPS_SMTP_PASSWORD"):
        raise ConfigError("DCOPS_SMTP_PASSWORD is not read: put the password in a file named by "
                          "DCOPS_SMTP_PASSWORD_FILE (the environment is readable by other processes)")
    host = (env.get("DCOPS_SMTP_HOST") or "").strip() or None
    if host is not None and (len(host) > 253 or not all(ch.isalnum() or ch in ".-:_" for ch in host)):
        raise ConfigError(f"DCOPS_SMTP_HOST must be a host name or an IP address, not {host!r}")
    raw_port = (env.get("DCOPS_SMTP_PORT") or str(DEFAULT_SMTP_PORT)).strip()
    if not raw_port.isdigit() or not 1 <= int(raw_port) <= 65535:
        raise ConfigError(f"DCOPS_SMTP_PORT must be a port number from 1 to 65535, not {raw_port!r}")
    sender = (env.get("DCOPS_SMTP_FROM") or "").strip()
    if sender and (mail_address(sender) is None or not sender.isprintable()):
        raise ConfigError(f"DCOPS_SMTP_FROM must be an e-mail address (or 'Name <address>'), not {sender!r}")
    if host is not None and not sender:
        raise ConfigError("DCOPS_SMTP_FROM is required when DCOPS_SMTP_HOST is set: the address notifications "
                          "are sent from")
    starttls = _flag(env, "DCOPS_SMTP_STARTTLS", False)
    user = (env.get("DCOPS_SMTP_USER") or "").strip() or None
    password_file = (env.get("DCOPS_SMTP_PASSWORD_FILE") or "").strip() or None
    if user is not None and password_file is None:
        raise ConfigError("DCOPS_SMTP_USER needs DCOPS_SMTP_PASSWORD_FILE, the file that holds the password")
    if password_file is not None and user is None:
        raise ConfigError("DCOPS_SMTP_PASSWORD_FILE needs DCOPS_SMTP_USER, the name to sign in to the mail server with")
    if user is not None and not starttls and host is not None and host.lower() not in _LOOPBACK_HOSTS:
        raise ConfigError("DCOPS_SMTP_USER needs DCOPS_SMTP_STARTTLS=true: the password would cross the network "
                          "in clear")
    raw_timeout = (env.get("DCOPS_SMTP_TIMEOUT_S") or str(DEFAULT_SMTP_TIMEOUT_S)).strip()
    try:
        timeout_s = float(raw_timeout)
    except ValueError:
        timeout_s = -1.0
    if not 0 < timeout_s <= 600:
        raise ConfigError(f"DCOPS_SMTP_TIMEOUT_S must be a number of seconds above 0 and at most 600, "
                          f"not {raw_timeout!r}")
    return {"smtp_host": host, "smtp_port": int(raw_port), "smtp_from": sender, "smtp_starttls": starttls,
            "smtp_user": user, "smtp_password_file": Path(password_file).expanduser() if password_file else None,
            "smtp_timeout_s": timeout_s}


def _oidc_from_env(env) -> dict:
    """DCOPS_OIDC_ISSUER (unset: OpenID Connect off; https, or http on 127.0.0.1/localhost), _CLIENT_ID
    (required with an issuer), _CLIENT_SECRET_FILE (none: a public client), _MINISTRY_CLAIM, _ROLES_CLAIM, _SCOPES."""
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

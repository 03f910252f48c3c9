"""The one error hierarchy of dcops, with the exit code (CLI) and HTTP status (portal) of each."""

from __future__ import annotations


class DcopsError(Exception):
    """Something went wrong that dcops can explain in one line."""

    exit_code = 1
    http_status = 500


class UserError(DcopsError):
    """A mistake in what the user asked for or gave; nothing was written."""

    exit_code = 2
    http_status = 400


class ValidationError(UserError):
    """Input failed validation; carries every problem found, not just the first."""

    http_status = 422

    def __init__(self, problems: list[str], summary: str | None = None):
        self.problems = list(problems)
        head = summary or f"{len(self.problems)} problem(s) found, nothing written"
        super().__init__(head if len(self.problems) != 1 else self.problems[0])
        self.summary = head

    def lines(self) -> list[str]:
        """Every problem, one per line, for the user."""
        if len(self.problems) == 1:
            return list(self.problems)
        return [*self.problems, self.summary]


class NotFound(UserError):
    """A named thing (programme, ministry, cluster...) does not exist, or not for whoever asks."""

    http_status = 404


class Conflict(UserError):
    """The change clashes with what is there (a duplicate, an illegal transition)."""

    http_status = 409


class Unauthenticated(UserError):
    """Nobody is signed in, or the credentials given are wrong or expired."""

    http_status = 401


class Forbidden(UserError):
    """The person may see the object but their roles do not allow this action on it."""

    http_status = 403


class TooManyAttempts(UserError):
    """Too many failed sign-ins in a short time; try again later."""

    http_status = 429


class ConfigError(UserError):
    """A setting (environment variable) is wrong."""


class DatabaseError(DcopsError):
    """The database cannot be used as it is."""

    http_status = 503  # to a web client, the service is unavailable, whoever is to fix it


class DatabaseMissing(DatabaseError, UserError):
    """No dcops database at the configured place, or no schema in it."""


class SchemaMismatch(DatabaseError, UserError):
    """The database schema is older or newer than this dcops."""


class DatabaseUnreachable(DatabaseError, UserError):
    """The database server cannot be reached, or refuses the connection: DCOPS_DATABASE_URL is to check."""


class DatabaseBusy(DatabaseError, UserError):
    """Another process holds the database lock for longer than the busy timeout."""


# Validation libraries' phrasing, said the way dcops says everything else ("must be ...").
_WORDINGS = (
    (r"Value error, ", ""),
    (r"Input should be a valid integer(, unable to parse string as an integer| \w.*)?", "must be a whole number"),
    (r"Input should be a valid number(, unable to parse string as a number)?", "must be a number"),
    (r"Input should be a valid boolean(, unable to interpret input)?", "must be true or false"),
    (r"Input should be a valid date( or datetime)?(, .*)?", "must be a date, YYYY-MM-DD"),
    (r"Input should be a valid string", "must be text"),
    (r"Input should be a finite number", "must be a finite number"),
    (r"Input should be greater than or equal to ", "must be at least "),
    (r"Input should be less than or equal to ", "must be at most "),
    (r"Input should be greater than ", "must be more than "),
    (r"Input should be less than ", "must be less than "),
    (r"Input should be a valid dictionary( or instance of \w+)?", "must be a mapping of fields"),
    (r"Input should be a valid list", "must be a list"),
    (r"String should have at most (\d+) characters?", r"must be at most \1 characters"),
    (r"String should have at least 1 character", "must not be empty"),
    (r"String should have at least (\d+) characters?", r"must be at least \1 characters"),
    (r"List should have at most (\d+) items?.*", r"must have at most \1 items"),
    (r"Input should be ", "must be "),
    # click's own, when it (not pydantic) converts an option's value.
    (r"'[^']*' is not a valid int(eger)?\.?", "must be a whole number"),
    (r"'[^']*' is not a valid float( range)?\.?", "must be a number"),
    (r"-?\d+ is not in the range (-?\d+)<=x<=9223372036854775807\.?", r"must be at least \1"),
    (r"-?[\d.]+ is not in the range (-?[\d.]+)<=x<=(-?[\d.]+)\.?", r"must be from \1 to \2"),
    (r"Field required", "is required"),
    (r"Extra inputs are not permitted", "unknown field"),
)


def in_our_words(message: str) -> str:
    """A validation library's message (pydantic's, click's) in dcops' own words."""
    import re

    for pattern, words in _WORDINGS:
        message = re.sub(pattern, words, message)
    return message


class AlertmanagerError(DcopsError):
    """Alertmanager cannot be reached or answers with a server error (5xx): worth trying again later.
    `said`: Alertmanager's own words, when it answered."""

    http_status = 502

    def __init__(self, message: str, *, said: str = "") -> None:
        super().__init__(message)
        self.said = said


class AlertmanagerRejected(AlertmanagerError):
    """Alertmanager refused what dcops sent (4xx: a bad matcher, a bad time): trying again will not help."""


class PrometheusError(DcopsError):
    """Prometheus cannot be reached, or its HTTP API answers with an error: nothing was written for
    the part it did not give (exit 3, so that a script can tell it from a mistake in what was asked)."""

    exit_code = 3
    http_status = 502

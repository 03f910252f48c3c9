"""The one error hierarchy of dcops; the CLI maps it to exit codes in one place."""

from __future__ import annotations


class DcopsError(Exception):
    """Something went wrong that dcops can explain in one line."""

    exit_code = 1


class UserError(DcopsError):
    """A mistake in what the user asked for or gave; nothing was written."""

    exit_code = 2


class ValidationError(UserError):
    """Input failed validation; carries every problem found, not just the first."""

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
    """A named thing (programme, ministry, cluster...) does not exist."""


class Conflict(UserError):
    """The change clashes with what is there (a duplicate, an illegal transition)."""


class ConfigError(UserError):
    """A setting (environment variable) is wrong."""


class DatabaseError(DcopsError):
    """The database cannot be used as it is."""


class DatabaseMissing(DatabaseError, UserError):
    """No dcops database at the configured place, or no schema in it."""


class SchemaMismatch(DatabaseError, UserError):
    """The database schema is older or newer than this dcops."""


class DatabaseBusy(DatabaseError, UserError):
    """Another process holds the database lock for longer than the busy timeout."""

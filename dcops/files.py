"""Files that people and other programs read: written whole (temporary file and rename) or not at all."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from dcops.errors import UserError


class AtomicWrite:
    """A file about to replace `path`: its temporary file is made at once, so a folder that
    cannot be written is found before any other work; commit() writes and renames it."""

    def __init__(self, path: Path | str, *, make_parents: bool = False):
        self.path = Path(path).expanduser()
        try:
            if make_parents:
                self.path.parent.mkdir(parents=True, exist_ok=True)
            handle, self._temporary = tempfile.mkstemp(dir=self.path.parent, prefix=f".{self.path.name}.",
                                                       suffix=".tmp")
        except OSError as error:
            raise UserError(f"cannot write {self.path}: {error.strerror or error}") from None
        os.close(handle)

    def commit(self, content: str) -> None:
        """Write `content` (readable by all, like any report or config file) and put it in place."""
        try:
            with open(self._temporary, "w", encoding="utf-8", newline="") as stream:
                stream.write(content)
            os.chmod(self._temporary, 0o644)
            os.replace(self._temporary, self.path)
        except OSError as error:
            self.abandon()
            raise UserError(f"cannot write {self.path}: {error.strerror or error}") from None

    def abandon(self) -> None:
        """Remove the temporary file; `path` is left as it was."""
        Path(self._temporary).unlink(missing_ok=True)


def write_atomically(path: Path | str, content: str, *, make_parents: bool = False) -> None:
    """Write `content` to `path` through a temporary file and a rename: a reader (Prometheus
    re-reading its rules, a person opening a report) never sees half a file."""
    AtomicWrite(path, make_parents=make_parents).commit(content)

"""Files that people and other programs read: written whole (temporary file and rename) or not at all.

The rules, the same for every file dcops writes (reports, the catalogue site's files,
Prometheus targets and rules):

- only a regular file is written: a folder, a device, a FIFO or a socket at the path is refused;
- a symbolic link is followed: its target is replaced, the link stays a link;
- a missing folder is an error unless the caller asks for it to be made (`--mkdir`);
- `-` means standard output.
"""

from __future__ import annotations

import os
import stat
import sys
import tempfile
from pathlib import Path

from dcops.errors import UserError

STDOUT = "-"


def is_stdout(path: Path | str | None) -> bool:
    """Whether `path` names standard output: none given, or `-`."""
    return path is None or str(path) == STDOUT


def _kind(mode: int) -> str | None:
    """What a non-regular file is, in words; None for a regular file."""
    if stat.S_ISREG(mode):
        return None
    if stat.S_ISDIR(mode):
        return "a folder"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    if stat.S_ISFIFO(mode):
        return "a FIFO"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "not a regular file"


def writable_target(path: Path | str, *, make_parents: bool = False) -> Path:
    """The regular file that writing `path` replaces (a symbolic link's target); refuses anything else."""
    given = Path(path).expanduser()
    # A link is followed to the end of its chain, so the rename replaces the target, not the link.
    target = Path(os.path.realpath(given))
    try:
        mode = os.stat(target).st_mode
    except (FileNotFoundError, NotADirectoryError):
        mode = None
    except OSError as error:
        raise UserError(f"cannot write {given}: {error.strerror or error}") from None
    if mode is not None and (kind := _kind(mode)) is not None:
        raise UserError(f"cannot write {given}: it is {kind}; dcops writes only regular files")
    parent = target.parent
    if not parent.is_dir():
        if parent.exists():
            raise UserError(f"cannot write {given}: {parent} is not a folder")
        if not make_parents:
            raise UserError(f"cannot write {given}: no folder {parent} (--mkdir creates it)")
        try:
            parent.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise UserError(f"cannot create {parent}: {error.strerror or error}") from None
    return target


class AtomicWrite:
    """A file about to replace `path`: its temporary file is made at once, so a folder that
    cannot be written is found before any other work; commit() writes and renames it."""

    def __init__(self, path: Path | str, *, make_parents: bool = False):
        self.path = Path(path).expanduser()
        self.target = writable_target(self.path, make_parents=make_parents)
        try:
            handle, self._temporary = tempfile.mkstemp(dir=self.target.parent, prefix=f".{self.target.name}.",
                                                       suffix=".tmp")
        except OSError as error:
            raise UserError(f"cannot write {self.path}: {error.strerror or error}") from None
        os.close(handle)

    def commit(self, content: str) -> None:
        """Write `content` and put it in place: an existing file keeps its mode, a new one is readable by all."""
        try:
            # Checked again: the path may have changed while the content was being made.
            writable_target(self.path)
            try:
                mode = stat.S_IMODE(os.stat(self.target).st_mode)
            except FileNotFoundError:
                mode = 0o644
            with open(self._temporary, "w", encoding="utf-8", newline="") as stream:
                stream.write(content)
            os.chmod(self._temporary, mode)
            os.replace(self._temporary, self.target)
        except UserError:
            self.abandon()
            raise
        except OSError as error:
            self.abandon()
            raise UserError(f"cannot write {self.path}: {error.strerror or error}") from None

    def abandon(self) -> None:
        """Remove the temporary file; `path` is left as it was."""
        Path(self._temporary).unlink(missing_ok=True)


class StdoutWrite:
    """The standard-output counterpart of AtomicWrite: commit() prints, abandon() does nothing."""

    path = Path(STDOUT)

    def commit(self, content: str) -> None:
        """Print `content` as it is."""
        sys.stdout.write(content)
        sys.stdout.flush()

    def abandon(self) -> None:
        """Nothing was printed yet."""


def open_output(path: Path | str | None, *, make_parents: bool = False) -> AtomicWrite | StdoutWrite:
    """Where a command's document goes: standard output for none or `-`, else the file, atomically."""
    if is_stdout(path):
        return StdoutWrite()
    return AtomicWrite(path, make_parents=make_parents)


def write_atomically(path: Path | str, content: str, *, make_parents: bool = False) -> None:
    """Write `content` to `path` through a temporary file and a rename: a reader (Prometheus
    re-reading its rules, a person opening a report) never sees half a file."""
    AtomicWrite(path, make_parents=make_parents).commit(content)

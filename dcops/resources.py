"""The files dcops ships inside its package (templates, playbooks, the sample inventory), found through importlib.resources."""

from __future__ import annotations

import os
import shutil
import tempfile
from importlib.resources import files
from pathlib import Path

from dcops.errors import UserError

TEMPLATES = "templates"
PLAYBOOKS = "playbooks"
SAMPLE = "sample"  # the sample inventory and catalogue


def package_dir(name: str) -> Path:
    """The shipped folder `name` (templates, playbooks, sample) as a directory on disk."""
    found = files("dcops") / name
    # A wheel installs unpacked, so this is a plain Path. ansible-runner and Jinja2's
    # FileSystemLoader need real folders, which a zipped package (a Traversable that is
    # not a Path) could only give through as_file: dcops does not support running zipped.
    if not isinstance(found, Path):
        raise RuntimeError(f"dcops must be installed unpacked (pip install), not zipped: {found}")
    return found


def templates_dir() -> Path:
    """The Jinja2 templates of the reports and the catalogue site."""
    return package_dir(TEMPLATES)


def playbooks_dir() -> Path:
    """The Ansible playbooks `dcops provision` runs (unless DCOPS_PLAYBOOKS_DIR names others)."""
    return package_dir(PLAYBOOKS)


def sample_dir() -> Path:
    """The sample inventory and catalogue (illustrative data, every address on loopback)."""
    return package_dir(SAMPLE)


def copy_sample(directory: Path) -> list[Path]:
    """Write a copy of the sample inventory into `directory` (new or empty); returns the files written.

    A DIR that exists and is not an empty folder is a UserError, and nothing is written.
    """
    directory = Path(directory).expanduser()
    if directory.is_dir():
        if any(directory.iterdir()):
            raise UserError(f"{directory} is not empty: the sample goes into a new or empty folder")
    elif directory.exists():
        raise UserError(f"{directory} exists and is not a folder")
    directory.parent.mkdir(parents=True, exist_ok=True)
    # Copied beside it and renamed into place: an interrupted copy leaves no half a sample.
    staging = Path(tempfile.mkdtemp(prefix=f".{directory.name}.", dir=directory.parent))
    try:
        shutil.copytree(sample_dir(), staging, dirs_exist_ok=True,
                        ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        staging.chmod(0o777 & ~_umask())
        os.replace(staging, directory)  # onto an empty folder too
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return sorted(path for path in directory.rglob("*") if path.is_file())


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask

"""What the benchmark scripts share: running commands, timing them, printing figures."""

from __future__ import annotations

import os
import statistics
import subprocess
import time
from pathlib import Path

import yaml

try:
    Dumper = yaml.CSafeDumper
except AttributeError:  # PyYAML without libyaml
    Dumper = yaml.SafeDumper


class CommandFailed(Exception):
    """A benchmarked command exited non-zero."""


def clean_env(home: Path, database_url: str | None = None) -> dict[str, str]:
    """The environment of every subprocess: bytecode writes on, dcops pointed at `home`."""
    env = dict(os.environ)
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env.pop("DCOPS_DATABASE_URL", None)
    env["DCOPS_HOME"] = str(home)
    if database_url is not None:
        env["DCOPS_DATABASE_URL"] = database_url
    return env


def run(argv: list[str], env: dict[str, str]) -> tuple[float, subprocess.CompletedProcess]:
    """Run once; return (wall seconds, result); raise CommandFailed on a non-zero exit."""
    start = time.perf_counter()
    result = subprocess.run(argv, env=env, capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    if result.returncode != 0:
        raise CommandFailed(
            f"command failed (exit {result.returncode}): {' '.join(argv)}\n"
            f"--- stderr ---\n{result.stderr.rstrip()}\n--- stdout (last 20 lines) ---\n"
            + "\n".join(result.stdout.rstrip().splitlines()[-20:])
        )
    return elapsed, result


def fmt(seconds: float) -> str:
    return f"{seconds:.3f} s"


def describe(label: str, times: list[float], width: int = 34) -> None:
    """One line: the label, then the median, min and max of the times."""
    print(
        f"  {label:<{width}} median {fmt(statistics.median(times))}   "
        f"min {fmt(min(times))}   max {fmt(max(times))}   (n={len(times)})"
    )

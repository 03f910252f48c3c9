"""What the benchmark scripts share: running commands, timing them, printing figures and the summary."""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
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


# --------------------------------------------------------------------------- figures


def ms(seconds: float, digits: int = 1) -> str:
    return f"{seconds * 1000:.{digits}f} ms"


def mb(n_bytes: float) -> str:
    return f"{n_bytes / 1e6:.1f} MB"


def show(value: float, unit: str = "s") -> str:
    """A figure in its unit: seconds as `fmt` from 0.1 s up and in ms below, bytes in MB, ratios as 1.234x,
    rates ("/s") as 123.4/s, counts ("n") as plain numbers."""
    if unit == "s":
        return fmt(value) if value >= 0.1 else ms(value)
    if unit == "MB":
        return mb(value)
    if unit == "x":
        return f"{value:.3f}x"
    if unit == "/s":
        return f"{value:,.1f}/s"
    if unit == "n":
        return f"{value:g}"
    raise ValueError(f"unknown unit {unit!r}")


def spread(times: list[float]) -> str:
    """'median ..., min ..., max ... (n=...)', each time as `show` writes it."""
    return (f"median {show(statistics.median(times))}, min {show(min(times))}, max {show(max(times))} "
            f"(n={len(times)})")


# --------------------------------------------------------------------------- the machine


def cpu_pressure() -> float | None:
    """The share of the last 10 s some task waited for a CPU (Linux PSI), in percent; None if unknown."""
    try:
        line = Path("/proc/pressure/cpu").read_text().splitlines()[0]
        return float(dict(part.split("=") for part in line.split()[1:])["avg10"])
    except (OSError, IndexError, KeyError, ValueError):
        return None


def busy_note(when: str = "") -> str:
    """'load average [when] 1.00 0.50 0.25', and the CPU pressure where Linux reports it."""
    load = os.getloadavg()
    text = f"load average {when + ' ' if when else ''}{load[0]:.2f} {load[1]:.2f} {load[2]:.2f}"
    pressure = cpu_pressure()
    if pressure is not None:
        text += f", CPU pressure (PSI some avg10) {pressure:.1f} %"
    return text


def print_busy(why: str = "") -> None:
    """The header's line on other work (busy_note 'at start'), and a warning when the machine is busy:
    a load average above half the CPUs, or CPUs waited for more than 10 % of the last 10 s."""
    print(f"  {busy_note('at start')}")
    if os.getloadavg()[0] > (os.cpu_count() or 1) * 0.5 or (cpu_pressure() or 0) > 10:
        print(f"  WARNING: the machine is busy: the wall times below are inflated{' (' + why + ')' if why else ''}")


# --------------------------------------------------------------------------- data


def dump(path: Path, data: dict) -> None:
    """Write `data` as YAML (block style, keys in order), making the folder first."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.dump(data, Dumper=Dumper, sort_keys=False, default_flow_style=False), encoding="utf-8")


def make_database(root: Path, name: str, url: str | None = None):
    """A fresh, upgraded database (SQLite under root/name unless `url`): (settings, Database)."""
    from dcops.db import open_database, upgrade
    from dcops.settings import Settings

    home = root / name
    home.mkdir(parents=True)
    url = url or f"sqlite:///{home / 'dcops.db'}"
    settings = Settings.from_env({"DCOPS_DATABASE_URL": url, "DCOPS_HOME": str(home)})
    upgrade(settings)
    return settings, open_database(settings)


# --------------------------------------------------------------------------- the summary


class AtLeast(float):
    """A target the value must reach (higher is better). A plain number is a ceiling."""


Row = tuple[str, float, str, "float | None"]  # (measure, value, unit "s" / "MB" / "x" / "/s" / "n", target)


def target_text(target: float, unit: str) -> str:
    """'<= 0.5 s', '<= 2 MB', '>= 2x': the target in the unit, without trailing zeros."""
    if unit == "MB":
        amount = f"{target / 1e6:g} MB"
    elif unit == "n":
        amount = f"{target:g}"
    else:
        amount = f"{target:g}{' s' if unit == 's' else unit}"
    return f"{'>=' if isinstance(target, AtLeast) else '<='} {amount}"


def print_summary(results: list[Row], *, problems: list[str], started: float, note: str = "",
                  value_header: str = "value", max_problems: int = 50) -> int:
    """Print the summary table, the 'targets missed' / 'all targets met' line and the failed checks
    (on stderr, the first `max_problems`); return the exit code: 1 when a target is missed or a
    check failed, 0 otherwise.

    Each row is (measure, value, unit, target): unit "s" (seconds), "MB" (value and target in bytes),
    "x" (a ratio), "/s" (a rate) or "n" (a count); target None (information), a number the value
    must not exceed, or AtLeast(number) for one it must reach. `started` is the time.perf_counter() the benchmark
    started at; `note` is added to the heading (the load average at the end, say).
    """
    print(f"Summary (total benchmark time {time.perf_counter() - started:.0f} s{'; ' + note if note else ''})")
    width = max((len(measure) for measure, *_rest in results), default=len("measure"))
    print(f"  {'measure':<{width}}  {value_header:>10}  {'target':>10}  result")
    print(f"  {'-' * width}  {'-' * 10}  {'-' * 10}  ------")
    missed = []
    for measure, value, unit, target in results:
        if target is None:
            verdict, wanted = "info", "-"
        else:
            met = value >= target if isinstance(target, AtLeast) else value <= target
            verdict, wanted = ("PASS" if met else "FAIL"), target_text(target, unit)
            if not met:
                missed.append(measure.strip())
        print(f"  {measure:<{width}}  {show(value, unit):>10}  {wanted:>10}  {verdict}")
    print()
    print(f"targets missed: {'; '.join(missed)}" if missed else "all targets met")
    if problems:
        print("\nCHECKS FAILED:", file=sys.stderr)
        for problem in problems[:max_problems]:
            print(f"  {problem}", file=sys.stderr)
        if len(problems) > max_problems:
            print(f"  ... and {len(problems) - max_problems} more", file=sys.stderr)
    return 1 if missed or problems else 0


# The four clusters of the generated inventories, two at each of two sites.
CLUSTERS = (("site-a", "clu-a1"), ("site-a", "clu-a2"), ("site-b", "clu-b1"), ("site-b", "clu-b2"))


def site_documents(total_of) -> list[dict]:
    """The two sites (primary, disaster recovery) of CLUSTERS as inventory documents; each
    resource's total is total_of(cluster, resource)."""
    return [
        {
            "code": code,
            "name": f"Data centre {code[-1].upper()}",
            "role": role,
            "location": "Vientiane",
            "clusters": [
                {
                    "name": cluster,
                    "description": f"General purpose cluster {cluster}",
                    "capacity": {r: {"total": total_of(cluster, r), "reserved": 0, "allocation_ratio": 1.0}
                                 for r in ("vcpu", "ram_gib", "storage_gib")},
                }
                for site, cluster in CLUSTERS
                if site == code
            ],
        }
        for code, role in (("site-a", "primary"), ("site-b", "disaster-recovery"))
    ]

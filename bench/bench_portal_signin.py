"""Benchmark of a portal sign-in: dcops.accounts.authenticate end to end, against a real SQLite file.

What it measures (wall time with time.perf_counter; a fresh, upgraded SQLite database in a temp dir,
or the PostgreSQL database given with --postgres, which must be empty):

1. `authenticate(database, name, password, client=...)` for a local account with the right
   password: the throttle's count and the attempt's row (one write transaction), the Argon2id
   verify (dcops.accounts' parameters), then the success's transaction (the attempt's row
   deleted, `user.signed-in` audited, the actor's roles read). Median of --runs calls (20 by
   default) after 2 warm-ups; target <= 150 ms. This is the figure dcops/accounts.py quotes
   beside its Argon2 parameters.
2. For information: one bare Argon2id verify (the same parameters, no database), a failed
   sign-in (an unknown name, checked against the dummy hash; a new name and client each time so
   the limits never bite), and open_session + session_for (a signed-in page's first request).

The script exits 1 when the target is missed or a check fails (a sign-in that does not give the
account's actor), 0 otherwise.

Run it from the project root, with dcops installed (`pip install -e .`):

    python3 bench/bench_portal_signin.py
    python3 bench/bench_portal_signin.py --runs 50
    python3 bench/bench_portal_signin.py --postgres postgresql+psycopg://dcops:dcops@127.0.0.1:5432/bench
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

from benchlib import busy_note, make_database, print_busy, print_summary, spread

TARGET_SECONDS = 0.150
PASSWORD = "correct horse battery staple"


def timed(call, runs: int, warmups: int = 2) -> list[float]:
    for index in range(warmups):
        call(-1 - index)
    times = []
    for index in range(runs):
        start = time.perf_counter()
        call(index)
        times.append(time.perf_counter() - start)
    return times


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20, help="timed sign-ins (default 20)")
    parser.add_argument("--postgres", metavar="URL", help="an empty PostgreSQL database instead of SQLite")
    args = parser.parse_args()

    from dcops import accounts
    from dcops.access import Grant
    from dcops.errors import Unauthenticated

    started = time.perf_counter()
    print(f"Portal sign-in benchmark: Argon2id t={accounts.ARGON2_TIME_COST}, "
          f"m={accounts.ARGON2_MEMORY_COST_KIB} KiB, p={accounts.ARGON2_PARALLELISM}; {args.runs} runs")
    print_busy("another process is using the CPUs")
    problems: list[str] = []
    with tempfile.TemporaryDirectory(prefix="dcops-bench-signin-") as root:
        _settings, database = make_database(Path(root), "signin", args.postgres)
        where = "PostgreSQL" if args.postgres else f"SQLite file {Path(root) / 'signin' / 'dcops.db'}"
        print(f"  database: {where}")
        accounts.add_user(database, "somchai", grants=frozenset({Grant("auditor")}), password=PASSWORD,
                          actor="bench")

        def sign_in(_index: int) -> None:
            actor = accounts.authenticate(database, "somchai", PASSWORD, client="127.0.0.1")
            if actor.name != "somchai" or actor.grants != frozenset({Grant("auditor")}):
                problems.append(f"sign-in gave {actor!r}")

        signin = timed(sign_in, args.runs)

        hasher = accounts._hasher()
        stored = accounts.hash_password(PASSWORD)
        verify = timed(lambda _i: hasher.verify(stored, PASSWORD), args.runs)

        def fail(index: int) -> None:
            try:
                accounts.authenticate(database, f"nobody{index + 10}", PASSWORD, client=f"192.0.2.{index + 10}")
            except Unauthenticated:
                return
            problems.append("an unknown name signed in")

        failed = timed(fail, min(args.runs, 200))

        def page(_index: int) -> None:
            token, _csrf = accounts.open_session(database, "somchai", client="127.0.0.1")
            if accounts.session_for(database, token) is None:
                problems.append("a new session was not found")

        session = timed(page, args.runs)
        database.dispose()

    print(f"  authenticate (right password)   {spread(signin)}")
    print(f"  Argon2id verify alone           {spread(verify)}")
    print(f"  authenticate (unknown name)     {spread(failed)}")
    print(f"  open_session + session_for      {spread(session)}")
    print()
    results = [
        ("authenticate, median", statistics.median(signin), "s", TARGET_SECONDS),
        ("Argon2id verify alone, median", statistics.median(verify), "s", None),
        ("failed sign-in, median", statistics.median(failed), "s", None),
        ("open_session + session_for, median", statistics.median(session), "s", None),
    ]
    return print_summary(results, problems=problems, started=started, note=busy_note("at the end"))


if __name__ == "__main__":
    sys.exit(main())

"""The CLI as operators and scripts use it: listings, formats, changes, help, errors."""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys

import pytest
import typer

from dcops.cli.main import app

import inventories

ADD = [
    "programme", "add", "lao-tax", "--name", "Tax administration", "--ministry", "moh", "--tier", "2",
    "--classification", "confidential", "--owner", "tax@mof.example.la", "--security-contact", "sec@mof.example.la",
]


@pytest.fixture
def small(cli, tmp_path):
    cli("inventory", "load", inventories.write(tmp_path / "inv", inventories.base()))
    return cli


def test_programme_list_formats(small):
    rows = json.loads(small("programme", "list", "-o", "json").stdout)
    assert [r["slug"] for r in rows] == ["dhis2", "digital-id", "e-gov-portal"]
    assert rows[0] == {
        "slug": "dhis2", "name": "Health information system", "ministry": "moh", "tier": 1,
        "sla_target_percent": 99.9, "status": "active", "classification": "confidential",
        "environment": "production", "personal_data": True, "owner_contact": "hmis@moh.example.la",
        "security_contact": "sec@moh.example.la", "review_date": "2027-06-30", "updated_at": rows[0]["updated_at"],
    }
    assert rows[0]["updated_at"].endswith("Z")
    table = small("programme", "list").stdout
    assert table.splitlines()[0].split() == ["SLUG", "MINISTRY", "TIER", "STATUS", "CLASS", "NAME"]
    parsed = list(csv.DictReader(io.StringIO(small("programme", "list", "-o", "csv").stdout)))
    assert [r["slug"] for r in parsed] == ["dhis2", "digital-id", "e-gov-portal"]


def test_programme_list_filters(small):
    def slugs(*args):
        return [r["slug"] for r in json.loads(small("programme", "list", "-o", "json", *args).stdout)]

    assert slugs("--ministry", "mtc") == ["digital-id", "e-gov-portal"]
    assert slugs("--tier", "2") == ["e-gov-portal"]
    assert slugs("--status", "retired") == []
    assert "no ministry 'mon'" in small("programme", "list", "--ministry", "mon", expect=2).stderr
    assert "unknown status" in small("programme", "list", "--status", "sleeping", expect=2).stderr
    assert "tier must be 1, 2 or 3" in small("programme", "list", "--tier", "9", expect=2).stderr


def test_programme_show(small):
    record = json.loads(small("programme", "show", "dhis2", "-o", "json").stdout)
    assert record["depends_on"] == ["digital-id"]
    assert record["allocations"] == [{"cluster": "gen-a", "vcpu": 16, "ram_gib": 64, "storage_gib": 500}]
    assert record["recovery"] == {"rto_minutes": 240, "rpo_minutes": 15, "backup_tier": "hourly"}
    needed = json.loads(small("programme", "show", "digital-id", "-o", "json").stdout)["depended_on_by"]
    assert needed == ["dhis2"]
    text = small("programme", "show", "dhis2").stdout
    assert "SLA target 99.9 %" in text and "dhis2-app-01" in text
    assert "no programme 'nope'" in small("programme", "show", "nope", expect=2).stderr


def test_programme_add_update_retire(small):
    result = small(*ADD)
    assert "create" in result.stdout and "lao-tax" in result.stdout
    assert "already exists" in small(*ADD, expect=2).stderr
    result = small("programme", "update", "lao-tax", "--tier", "1", "--review-date", "2027-12-31")
    assert "tier: 2 -> 1" in result.stdout
    record = json.loads(small("programme", "show", "lao-tax", "-o", "json").stdout)
    assert (record["tier"], record["review_date"], record["owner_contact"]) == (1, "2027-12-31", "tax@mof.example.la")
    assert "nothing to change" in small("programme", "update", "lao-tax", "--tier", "1").stdout
    small("programme", "retire", "digital-id")
    record = json.loads(small("programme", "show", "digital-id", "-o", "json").stdout)
    assert record["status"] == "retired" and record["allocations"] == []
    assert "already retired" in small("programme", "retire", "digital-id", expect=2).stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--tier", "4"], "tier: must be 1, 2 or 3"),
        (["--ministry", "nowhere"], "unknown ministry 'nowhere'"),
        (["--owner", "bob"], "contacts.owner: not an e-mail address"),
        (["--review-date", "31/12/2027"], "--review-date: expected a date as YYYY-MM-DD"),
        (["--depends-on", "ghost"], "depends on unknown programme 'ghost'"),
        (["--rto", "-5"], "rto_minutes: must be at least 0"),
    ],
)
def test_bad_changes_exit_2_with_one_line_and_write_nothing(small, args, message):
    before = small("programme", "list", "-o", "json").stdout
    result = small("programme", "update", "dhis2", *args, expect=2)
    assert message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert "Traceback" not in result.stderr + result.stdout
    assert small("programme", "list", "-o", "json").stdout == before


def test_add_with_a_bad_slug_is_refused(small):
    bad = list(ADD)
    bad[2] = "Lao_Tax"
    assert "slug: must be 2-63 characters of [a-z0-9-]" in small(*bad, expect=2).stderr


def test_update_without_options_is_refused(small):
    assert "give at least one option" in small("programme", "update", "dhis2", expect=2).stderr


def test_cluster_list_shows_capacity_allocated_free(small):
    rows = {r["resource"]: r for r in json.loads(small("cluster", "list", "-o", "json").stdout)}
    # vcpu: (64 - 4) x 2.0 = 120 capacity; 16 + 8 allocated; 96 free
    assert (rows["vcpu"]["capacity"], rows["vcpu"]["allocated"], rows["vcpu"]["free"]) == (120, 24, 96)
    assert rows["vcpu"]["used_ratio"] == pytest.approx(0.2)
    # ram: (512 - 32) x 1.0 = 480; 64 + 32 = 96
    assert (rows["ram_gib"]["capacity"], rows["ram_gib"]["allocated"]) == (480, 96)
    table = small("cluster", "list").stdout
    assert "20.0%" in table


def test_ministry_list(small):
    rows = json.loads(small("ministry", "list", "-o", "json").stdout)
    assert [(r["code"], r["programmes"]) for r in rows] == [("moh", 1), ("mtc", 2)]


def test_tables_fit_80_columns(loaded_cli):
    for args in (["programme", "list"], ["cluster", "list"], ["ministry", "list"],
                 ["programme", "show", "e-crvs"]):
        for line in loaded_cli(*args).stdout.splitlines():
            assert len(line) <= 80, (args, line)


def _commands(group, path=()):
    for name, command in group.commands.items():
        if hasattr(command, "commands"):
            yield from _commands(command, (*path, name))
        else:
            yield (*path, name)


def test_every_command_has_help_with_an_example(cli):
    root = typer.main.get_command(app)
    commands = list(_commands(root))
    assert ("programme", "list") in commands and ("db", "upgrade") in commands
    for path in commands:
        text = cli(*path, "--help").stdout
        assert "Example:" in text, path


def test_console_script_reports_user_mistakes_without_traceback(tmp_path):
    env = {**os.environ, "DCOPS_HOME": str(tmp_path)}
    env.pop("DCOPS_DATABASE_URL", None)
    run = lambda *args: subprocess.run(  # noqa: E731
        [sys.executable, "-m", "dcops", *args], env=env, capture_output=True, text=True, timeout=60
    )
    missing = run("programme", "list")
    assert missing.returncode == 2 and "dcops db upgrade" in missing.stderr
    assert "Traceback" not in missing.stderr
    assert run("db", "upgrade").returncode == 0
    bad = run("inventory", "load", str(tmp_path / "nowhere"))
    assert bad.returncode == 2 and bad.stderr.strip() == f"dcops: error: {tmp_path / 'nowhere'}: no such directory"
    usage = run("programme", "list", "--tier", "one")
    assert usage.returncode == 2 and "Traceback" not in usage.stderr
    env["DCOPS_TIMEZONE"] = "Nowhere/City"
    tz = run("programme", "list")
    assert tz.returncode == 2 and "unknown time zone" in tz.stderr


def test_a_database_url_is_never_echoed_with_its_password(tmp_path):
    env = {**os.environ, "DCOPS_HOME": str(tmp_path), "DCOPS_DATABASE_URL": "mysql://u:secret@h/x"}
    result = subprocess.run([sys.executable, "-m", "dcops", "programme", "list"], env=env, capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 2 and "secret" not in result.stderr and "mysql://u:***@h/x" in result.stderr
    assert result.stderr.count("\n") == 1 and "DCOPS_DATABASE_URL" in result.stderr


def test_a_postgresql_url_without_its_driver_is_one_line_naming_the_extra(tmp_path):
    # psycopg is installed here, so its absence is simulated: an import of it fails, as after a
    # plain install without the postgresql extra.
    code = ("import sys; sys.modules['psycopg'] = None; sys.modules['psycopg2'] = None; "
            "from dcops.cli.main import main; sys.argv = ['dcops', 'programme', 'list']; main()")
    env = {**os.environ, "DCOPS_HOME": str(tmp_path),
           "DCOPS_DATABASE_URL": "postgresql+psycopg://dcops:secret@127.0.0.1:5432/dcops"}
    result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 2 and result.stderr.count("\n") == 1, result.stderr
    assert "postgresql" in result.stderr and "pipx install '.[postgresql]'" in result.stderr
    assert "secret" not in result.stderr and "Traceback" not in result.stderr

"""The CLI at the edges a new user reaches on day one: one meaning per option, one-line errors,
files written safely, text shown as text."""

from __future__ import annotations

import csv
import io
import json
import os
import stat
import subprocess
import sys

import pytest
import yaml

import inventories

ESCAPES = "\x1b]0;owned\x07\x1b[2J"


@pytest.fixture
def small(cli, tmp_path):
    cli("inventory", "load", inventories.write(tmp_path / "inv", inventories.base()))
    return cli


def _one_error_line(result) -> str:
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("dcops: error: "), result.stderr
    assert "Traceback" not in result.stderr and "Usage:" not in result.stderr
    return lines[0]


# --- one meaning per option ---------------------------------------------------------------


def test_version_prints_the_version(cli):
    from dcops import __version__

    result = cli("--version")
    assert result.stdout == f"dcops {__version__}\n"


def test_report_out_names_the_file_and_its_extension_the_format(small, tmp_path):
    out = tmp_path / "uptime.html"
    small("report", "uptime", "--period", "2026-10", "--out", out)
    assert out.read_text().lstrip().lower().startswith("<!doctype html")
    small("report", "uptime", "--period", "2026-10", "--out", tmp_path / "uptime.json")
    assert json.loads((tmp_path / "uptime.json").read_text())["kind"] == "uptime"
    printed = small("report", "uptime", "--period", "2026-10", "--out", "-", "--format", "json")
    assert json.loads(printed.stdout)["kind"] == "uptime"


def test_report_refuses_a_format_its_file_name_contradicts_and_a_name_without_one(small, tmp_path):
    line = _one_error_line(small("report", "uptime", "--period", "2026-10", "--format", "md",
                                 "--out", tmp_path / "x.html", expect=2))
    assert "x.html is named for html" in line
    line = _one_error_line(small("report", "uptime", "--period", "2026-10", "--out", tmp_path / "report", expect=2))
    assert "cannot tell a format" in line
    assert list(tmp_path.glob("*.html")) == [] and not (tmp_path / "report").exists()


def test_report_minus_o_is_not_a_file_any_more(small, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    line = _one_error_line(small("report", "uptime", "--period", "2026-10", "-o", "json", expect=2))
    assert "No such option: -o" in line
    assert not (tmp_path / "json").exists()


def test_report_history_takes_dash_o(small):
    assert json.loads(small("report", "history", "-o", "json").stdout) == []


@pytest.mark.parametrize("command", [
    ("programme", "show", "dhis2"), ("programme", "endpoint", "list", "dhis2"), ("catalogue", "show", "x"),
    ("provision", "job", "1"), ("request", "show", "1"), ("inventory", "load", "."), ("probe", "run", "--once"),
])
def test_commands_that_print_a_table_or_json_refuse_csv(small, command):
    line = _one_error_line(small(*command, "--output", "csv", expect=2))
    assert "'csv' is not one of 'table', 'json'" in line


def test_provision_jobs_csv_is_csv(small):
    assert small("provision", "jobs", "-o", "csv").stdout.splitlines()[0].startswith("id,kind,check_mode,status")


def test_a_future_period_is_refused_not_partial(small):
    line = _one_error_line(small("report", "uptime", "--period", "2099-01", expect=2))
    assert "2099-01 has not begun" in line


# --- one-line errors ---------------------------------------------------------------------


@pytest.mark.parametrize("arguments, words", [
    (("programme", "list", "--ouptut", "json"), "No such option: --ouptut"),
    (("programme", "lst"), "No such command 'lst'"),
    (("programme", "show"), "Missing argument"),
    (("programme", "list", "--tier", "x"), "'--tier': must be a whole number"),
    (("request", "show", "0"), "REQUEST_ID: must be at least 1"),
    (("programme", "list", "-o", "xml"), "'xml' is not one of"),
])
def test_usage_mistakes_are_one_line_exit_2(small, arguments, words):
    line = _one_error_line(small(*arguments, expect=2))
    assert words in line and "Input should" not in line


@pytest.mark.parametrize("url", [
    "postgresql+psycopg://dcops:s3cret@127.0.0.1:1/dcops",
    "postgresql+nosuchdriver://dcops:s3cret@127.0.0.1/dcops",
    "sqlite:relative.db",
])
def test_a_database_that_cannot_be_used_is_exit_2_naming_the_setting(cli, url):
    result = cli.runner.invoke(__import__("dcops.cli.main", fromlist=["app"]).app, ["programme", "list"],
                               env={**cli.env, "DCOPS_DATABASE_URL": url})
    assert result.exit_code == 2
    line = _one_error_line(result)
    assert "DCOPS_DATABASE_URL=" in line and "s3cret" not in line


def test_validation_names_the_flag_not_a_line_of_the_file(small, tmp_path):
    request = tmp_path / "request.yaml"
    request.write_text(yaml.safe_dump({"ministry": "moh", "tier": 1}))
    result = small("request", "submit", request, "--tier", "7", expect=2)
    assert "--tier: must be 1, 2 or 3 (got 7)" in result.stderr
    assert "request.yaml:2: tier" not in result.stderr


def test_a_template_placeholder_is_refused(small, tmp_path):
    request = tmp_path / "request.yaml"
    request.write_text('programme:\n  slug: lao-x\n  name: "CHANGE-ME"\n')
    result = small("request", "submit", request, expect=2)
    assert "request.yaml:3: programme.name: still the template's 'CHANGE-ME'" in result.stderr


def test_a_short_slug_says_how_long_a_slug_is(small):
    line = small("programme", "add", "a", "--name", "x", expect=2).stderr.splitlines()[0]
    assert "2-63 characters" in line


def test_maintenance_errors_give_the_times_as_typed(small):
    line = _one_error_line(small("maintenance", "add", "dhis2", "--start", "2030-01-02 10:00", "--end",
                                 "2030-01-02 09:00", "--reason", "r", "--change-ref", "C-1", expect=2))
    assert "2030-01-02 09:00 Asia/Vientiane" in line and "02:00" not in line


def _dcops(env, *arguments, **kwargs):
    return subprocess.run([sys.executable, "-m", "dcops", *arguments], env={**os.environ, **env},
                          stderr=subprocess.PIPE, text=True, timeout=60, **kwargs)


@pytest.mark.slow
def test_a_full_standard_output_is_one_line_not_a_traceback(small):
    with open("/dev/full", "w") as full:
        result = _dcops(small.env, "programme", "list", stdout=full)
    assert result.returncode != 0
    assert result.stderr == "dcops: error: cannot write to standard output: No space left on device\n"
    assert stat.S_ISCHR(os.stat("/dev/full").st_mode)


@pytest.mark.slow
def test_a_closed_standard_output_exits_quietly(small):
    read, write = os.pipe()
    os.close(read)
    try:
        result = _dcops(small.env, "programme", "list", stdout=write)
    finally:
        os.close(write)
    assert result.returncode != 0 and result.stderr == ""


# --- files written safely ----------------------------------------------------------------


def test_report_refuses_a_fifo_and_a_missing_folder(small, tmp_path):
    fifo = tmp_path / "fifo.md"
    os.mkfifo(fifo)
    line = _one_error_line(small("report", "uptime", "--period", "2026-10", "--out", fifo, expect=2))
    assert "it is a FIFO" in line and stat.S_ISFIFO(os.lstat(fifo).st_mode)
    line = _one_error_line(small("report", "uptime", "--period", "2026-10", "--out", tmp_path / "no" / "x.md",
                                 expect=2))
    assert "--mkdir" in line and not (tmp_path / "no").exists()


def test_report_refuses_a_device(small):
    before = os.stat("/dev/full")
    line = _one_error_line(small("report", "uptime", "--period", "2026-10", "--out", "/dev/full", "--format", "md",
                                 expect=2))
    after = os.stat("/dev/full")
    assert "it is a device" in line
    assert stat.S_ISCHR(after.st_mode) and (after.st_ino, after.st_rdev) == (before.st_ino, before.st_rdev)


def test_report_follows_a_link(small, tmp_path):
    real = tmp_path / "real.md"
    real.write_text("old")
    (tmp_path / "link.md").symlink_to(real)
    small("report", "uptime", "--period", "2026-10", "--out", tmp_path / "link.md")
    assert (tmp_path / "link.md").is_symlink() and real.read_text().startswith("#")


def test_metrics_files_refuse_a_fifo_and_print_for_dash(small, tmp_path):
    fifo = tmp_path / "targets.json"
    os.mkfifo(fifo)
    line = _one_error_line(small("metrics", "targets", fifo, expect=2))
    assert "it is a FIFO" in line
    assert isinstance(json.loads(small("metrics", "targets", "-").stdout), list)
    assert "groups" in yaml.safe_load(small("metrics", "rules", "-").stdout)
    _one_error_line(small("metrics", "rules", tmp_path / "no" / "rules.yml", expect=2))
    small("metrics", "rules", tmp_path / "no" / "rules.yml", "--mkdir")
    assert (tmp_path / "no" / "rules.yml").is_file()


# --- text shown as text ------------------------------------------------------------------


def _store_raw_name(settings, slug: str, name: str) -> None:
    # A name stored before input was checked: the terminal must still get no escape sequence.
    from sqlalchemy import text

    from dcops.db import open_database

    database = open_database(settings)
    with database.transaction() as conn:
        conn.execute(text("UPDATE programme SET name = :name WHERE slug = :slug"), {"name": name, "slug": slug})
    database.dispose()


def test_escape_sequences_are_refused_at_input(small):
    result = small("programme", "update", "dhis2", "--name", f"Health{ESCAPES}", expect=2)
    assert "control character" in result.stderr and "\x1b" not in result.stderr


def test_stored_escape_sequences_are_shown_escaped(small):
    _store_raw_name(small.settings, "dhis2", f"Health{ESCAPES}")
    for command in (("programme", "list"), ("programme", "show", "dhis2")):
        out = small(*command).stdout
        assert "\x1b" not in out and "\x07" not in out and "\\x1b" in out


def test_listing_csv_guards_formulas(small):
    _store_raw_name(small.settings, "dhis2", "=HYPERLINK(\"http://x.example\")")
    rows = list(csv.DictReader(io.StringIO(small("programme", "list", "-o", "csv").stdout)))
    assert rows[0]["name"].startswith("'=")
    assert json.loads(small("programme", "list", "-o", "json").stdout)[0]["name"].startswith("=")


def test_help_examples_are_not_cut_inside_a_token(cli):
    decommission = cli("provision", "decommission", "--help").stdout
    assert "--sandbox /tmp/dc-sandbox" in decommission.replace("\\\n      ", "")
    assert not any(line.rstrip().endswith("/tmp/dc-") for line in decommission.splitlines())
    uptime = cli("report", "uptime", "--help").stdout
    assert any("--out uptime-2026-10.html" in line for line in uptime.splitlines())
    for line in (decommission + uptime).splitlines():
        assert len(line) <= 80, line

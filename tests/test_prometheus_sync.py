"""The pure parts of `dcops probe sync`: steps, runs, damping over runs, the PromQL and the Prometheus files.

The sync against real Prometheus and blackbox_exporter servers is tests/test_scale_path.py.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
import yaml
from hypothesis import given, settings, strategies as st

from dcops.errors import UserError
from dcops.health.history import DOWN, UNKNOWN, UP, Memory, Thresholds, Transition, fold_results, observe
from dcops.health.prometheus import base_url, label_value, plan, share_up_query, shown_url
from dcops.health.steps import (Run, StepCounts, _read_steps_one_by_one, as_us, chunks, expand, first_step_after,
                                fold_runs, from_us, last_step_until, merge_series, read_steps, split_runs)
from dcops.health.store import CheckRow
from dcops.metrics.files import (blackbox_address, blackbox_modules, dump_blackbox_modules, dump_scrape_config,
                                 scrape_config, scrape_labels)

UTC = timezone.utc
T0 = 1_790_000_000 - 1_790_000_000 % 3600  # a whole hour, Unix seconds
REASON = "probe failed (Prometheus)"


def at(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, tz=UTC)


# --- the step grid ---------------------------------------------------------------------------


def test_steps_follow_on_from_the_latest_result_and_end_where_complete():
    # a result at T0 (a step's end, as a sync leaves it): the next step ends one interval later
    assert first_step_after(T0 * 1_000_000, 60) == T0 + 60
    # the prober's result 10.5 s into a minute: the next step's window starts on the minute after it
    assert first_step_after((T0 + 10) * 1_000_000 + 500_000, 60) == T0 + 120
    assert last_step_until((T0 + 119) * 1_000_000 + 999_999, 60) == T0 + 60
    assert last_step_until((T0 + 120) * 1_000_000, 60) == T0 + 120
    # at most 3 steps a chunk, consecutive and covering first..last
    assert chunks(T0, T0 + 420, 60, 3) == [(T0, T0 + 120), (T0 + 180, T0 + 300), (T0 + 360, T0 + 420)]
    assert chunks(T0, T0, 60, 10_000) == [(T0, T0)]
    assert chunks(T0 + 60, T0, 60, 5) == []


def test_microseconds_round_trip():
    moment = datetime(2026, 10, 12, 15, 0, 0, 123456, tzinfo=UTC)
    assert from_us(as_us(moment)) == moment
    assert as_us(at(T0)) == T0 * 1_000_000


# --- steps into runs -------------------------------------------------------------------------


def test_read_steps_makes_runs_of_results_and_counts_verdicts():
    values = [(T0, "1"), (T0 + 60, "1"), (T0 + 120, "0"), (T0 + 180, "0.5"), (T0 + 240, "0"),
              # no sample at T0 + 300 and T0 + 360
              (T0 + 420, "1"), (T0 + 480, "1")]
    counts = read_steps(values, 60)
    assert (counts.up, counts.down, counts.mixed) == (4, 2, 1)
    # a mixed step (half its samples up) is a failure; the missing steps break the run
    assert counts.runs == [Run(T0, 2, True), Run(T0 + 120, 3, False), Run(T0 + 420, 2, True)]


def test_read_steps_continues_the_last_run_of_the_previous_chunk():
    counts = read_steps([(T0, "1"), (T0 + 60, "1")], 60)
    read_steps([(T0 + 120, "1"), (T0 + 180, "0")], 60, counts)
    assert counts.runs == [Run(T0, 3, True), Run(T0 + 180, 1, False)]
    # a step time Prometheus writes as a float
    assert read_steps([(float(T0), "1")], 60).runs == [Run(T0, 1, True)]


def test_read_steps_of_plain_verdicts_finds_runs_and_gaps_without_a_value_at_a_time():
    values = [[T0 + 60 * k, "0" if 5 <= k < 8 else "1"] for k in range(20) if k not in (10, 11, 15)]
    counts = read_steps(values, 60)
    assert (counts.up, counts.down, counts.mixed) == (14, 3, 0)
    assert counts.runs == [Run(T0, 5, True), Run(T0 + 300, 3, False), Run(T0 + 480, 2, True),
                           Run(T0 + 720, 3, True), Run(T0 + 960, 4, True)]


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.integers(1, 4), st.sampled_from(["0", "1"])), min_size=1, max_size=60),
       st.integers(0, 59))
def test_read_steps_finds_what_reading_one_value_at_a_time_finds(spec, cut):
    """The joined-text way and the value-by-value way agree, in one chunk or in two."""
    values, moment = [], T0
    for step, mark in spec:
        moment += step * 60
        values.append([moment, mark])
    slow = StepCounts()
    _read_steps_one_by_one([t for t, _ in values], [v for _, v in values], 60, slow)
    assert read_steps(values, 60) == slow
    two = read_steps(values[:cut], 60)
    assert read_steps(values[cut:], 60, two) == slow


def test_several_series_of_one_check_merge_step_by_step():
    merged = merge_series([[[T0, "1"], [T0 + 60, "1"], [T0 + 120, "0"]],
                           [[T0 + 60, "0"], [T0 + 120, "0"], [T0 + 180, "1"]]])
    # a step is up only if every vantage point saw it up
    assert merged == [[T0, "1"], [T0 + 60, "0.5"], [T0 + 120, "0"], [T0 + 180, "1"]]


def test_split_runs_at_a_moment():
    runs = [Run(T0, 5, True), Run(T0 + 300, 2, False)]
    assert split_runs(runs, T0 + 120, 60) == ([Run(T0, 3, True)], [Run(T0 + 180, 2, True), Run(T0 + 300, 2, False)])
    assert split_runs(runs, T0 - 1, 60) == ([], runs)
    assert split_runs(runs, T0 + 360, 60) == (runs, [])
    assert expand([Run(T0, 2, True), Run(T0 + 120, 1, False)], 60) == [(T0, True), (T0 + 60, True),
                                                                       (T0 + 120, False)]


# --- damping over runs -----------------------------------------------------------------------


def test_fold_runs_by_hand():
    """Down after 3 failures, up after 2 successes, at 60 s; worked out by hand."""
    runs = [Run(T0, 5, True),             # T0 .. T0+240: up at the 2nd success, T0+60
            Run(T0 + 300, 4, False),      # T0+300 .. T0+480: down at the 3rd failure, T0+420
            Run(T0 + 900, 1, True),       # 420 s after the last failure (> 3 x 60): unknown from T0+540
            Run(T0 + 960, 3, True)]       # the 2nd success after the gap, T0+960: up
    memory, transitions = fold_runs(Memory(), runs, interval=60, thresholds=Thresholds(3, 2), reason=REASON)
    assert transitions == [Transition(UP, at(T0 + 60)), Transition(DOWN, at(T0 + 420), REASON),
                           Transition(UNKNOWN, at(T0 + 540), "no data"), Transition(UP, at(T0 + 960))]
    assert memory == Memory(UP, at(T0 + 960), 0, 4, at(T0 + 1080), "")


def test_fold_runs_continues_a_stored_memory():
    # the prober's last result at T0+30, two failures into a streak: one more failure is down
    stored = Memory(UP, at(T0 - 600), 2, 0, at(T0 + 30), "")
    memory, transitions = fold_runs(stored, [Run(T0 + 120, 1, False)], interval=60, thresholds=Thresholds(3, 2),
                                    reason=REASON)
    assert transitions == [Transition(DOWN, at(T0 + 120), REASON)]
    assert (memory.state, memory.fail_streak, memory.last_at) == (DOWN, 3, at(T0 + 120))
    # exactly three intervals after the last result is not a gap yet; a second more is
    _, none = fold_runs(Memory(UP, at(T0), 0, 5, at(T0), ""), [Run(T0 + 180, 1, True)], interval=60,
                        thresholds=Thresholds(), reason=REASON)
    assert none == []
    _, gap = fold_runs(Memory(UP, at(T0), 0, 5, at(T0 - 1), ""), [Run(T0 + 180, 1, True)], interval=60,
                       thresholds=Thresholds(), reason=REASON)
    assert gap == [Transition(UNKNOWN, at(T0 + 59), "no data")]


runs_strategy = st.lists(st.tuples(st.integers(0, 6), st.integers(1, 12), st.booleans()), max_size=12)


@settings(max_examples=300, deadline=None)
@given(runs_strategy, st.integers(1, 4), st.integers(1, 4), st.sampled_from([None, "up", "down", "unknown"]),
       st.integers(0, 3), st.integers(0, 3), st.integers(-200, 0))
def test_fold_runs_is_observe_result_by_result(spec, failures, successes, state, fail_streak, ok_streak, last_offset):
    """On any runs and any stored memory, fold_runs gives what observe gives one result at a time."""
    interval = 60
    runs, cursor = [], T0
    for missing, count, success in spec:
        start = cursor + missing * interval
        runs.append(Run(start, count, success))
        cursor = start + count * interval
    memory = Memory() if state is None else Memory(state, at(T0 - 3600), fail_streak, ok_streak,
                                                   at(T0 + last_offset), "earlier")
    thresholds = Thresholds(failures, successes)
    expected, transitions = memory, []
    for moment, success in expand(runs, interval):
        expected, changes = observe(expected, at=at(moment), success=success, reason="" if success else REASON,
                                    interval=timedelta(seconds=interval), thresholds=thresholds)
        transitions += changes
    assert fold_runs(memory, runs, interval=interval, thresholds=thresholds, reason=REASON) == (expected, transitions)


def test_fold_runs_matches_the_backfill_fold_of_the_same_results():
    runs = [Run(T0, 3, False), Run(T0 + 180, 10, True), Run(T0 + 1200, 4, False)]
    memory, transitions = fold_runs(Memory(), runs, interval=60, thresholds=Thresholds(), reason=REASON)
    pieces = fold_results(((at(t), ok, "" if ok else REASON) for t, ok in expand(runs, 60)),
                          interval=timedelta(seconds=60), thresholds=Thresholds())
    assert [(p[0], p[1]) for p in pieces] == [(t.state, t.at) for t in transitions]


# --- what the sync asks Prometheus -----------------------------------------------------------


def test_the_query_averages_the_samples_just_inside_each_step():
    query = share_up_query('job="dcops-blackbox"', 60)
    assert query == 'avg_over_time(probe_success{job="dcops-blackbox"}[59999ms])'
    # Prometheus 3 leaves the start of a range out: the window is the whole interval there
    assert "[60s]" in share_up_query('job="x"', 60, prometheus_major=3)
    assert label_value('a"b\\c') == '"a\\"b\\\\c"'


def _check(endpoint_id: int, interval: int = 60) -> CheckRow:
    return CheckRow(endpoint_id, 1, "p", f"c{endpoint_id}", "http", "http://127.0.0.1/", "200-399", "", 5.0, interval)


def test_plan_reads_each_check_from_its_latest_result():
    now = at(T0 + 86400)
    checks = [_check(1), _check(2), _check(3), _check(4, interval=30)]
    last = {1: at(T0), 2: at(T0), 3: at(T0 + 86400 - 60)}
    groups = plan(checks, last, start=None, end=at(T0 + 600), now=now)
    # 1 and 2 from T0 + 60 together; 3 has nothing before the end; 4 was never probed: the lookback
    assert [(g.interval, g.first, [c.endpoint_id for c in g.checks]) for g in groups] == [
        (30, T0 + 86400 - 35 * 86400 + 30, [4]), (60, T0 + 60, [1, 2])]
    groups = plan(checks, last, start=at(T0 - 3600), end=at(T0 + 600), now=now)
    assert [(g.interval, g.first, len(g.checks)) for g in groups] == [(30, T0 - 3570, 1), (60, T0 - 3540, 3)]


def test_prometheus_urls():
    assert base_url("http://127.0.0.1:9090/") == "http://127.0.0.1:9090"
    assert base_url(" https://prom.dc.gov.la/prometheus ") == "https://prom.dc.gov.la/prometheus"
    for bad in ("127.0.0.1:9090", "ftp://x", "http://", "http://x:99999", "http://x/?q=1", "http://x/\x1b[2J"):
        with pytest.raises(UserError, match="--prometheus must be an http"):
            base_url(bad)
    assert shown_url("https://dcops:secret@prom.example/") == "https://prom.example/"


# --- the files for Prometheus and blackbox_exporter ------------------------------------------


def test_scrape_labels_give_each_target_its_checks_interval():
    assert scrape_labels(60, 5.0) == {"__scrape_interval__": "60s", "__scrape_timeout__": "5500ms"}
    # a timeout close to the interval: the scrape's timeout never exceeds the interval (Prometheus refuses it)
    assert scrape_labels(10, 9.8) == {"__scrape_interval__": "10s", "__scrape_timeout__": "10000ms"}


def test_scrape_config_relabels_targets_to_blackbox_exporter():
    text = dump_scrape_config(scrape_config(blackbox="10.0.0.7:9115", targets_file="/srv/dcops.json"))
    job, = yaml.safe_load(text)["scrape_configs"]
    assert job["job_name"] == "dcops-blackbox" and job["metrics_path"] == "/probe"
    assert job["file_sd_configs"] == [{"files": ["/srv/dcops.json"], "refresh_interval": "1m"}]
    assert job["relabel_configs"] == [
        {"source_labels": ["__address__"], "target_label": "__param_target"},
        {"source_labels": ["module"], "target_label": "__param_module"},
        {"source_labels": ["__param_target"], "target_label": "instance"},
        {"target_label": "__address__", "replacement": "10.0.0.7:9115"},
    ]
    assert blackbox_address("[::1]:9115") == "[::1]:9115"
    for bad in ("9115", "host:", "host:0", "host:65536", "ho st:1", "http://h:1", ":1", "h:1 x", "h\x1b:1"):
        with pytest.raises(UserError, match="--blackbox must be HOST:PORT"):
            blackbox_address(bad)


def test_blackbox_modules_probe_as_dcops_does():
    modules = yaml.safe_load(dump_blackbox_modules(blackbox_modules()))["modules"]
    assert set(modules) == {"http_2xx", "tcp_connect", "tls_connect"}
    http = modules["http_2xx"]["http"]
    assert http["valid_status_codes"] == list(range(200, 400)) and http["no_follow_redirects"] is True
    assert modules["tcp_connect"]["prober"] == "tcp" and "tls" not in modules["tcp_connect"]["tcp"]
    assert modules["tls_connect"]["tcp"]["tls"] is True
    assert all("timeout" not in module for module in modules.values())  # the scrape's timeout applies


def test_the_cli_prints_the_scrape_job_and_refuses_a_bad_address(loaded_cli):
    result = loaded_cli("metrics", "scrape-config", "--blackbox", "127.0.0.1:19115", "--targets", "dcops.json")
    assert yaml.safe_load(result.stdout) == scrape_config(blackbox="127.0.0.1:19115", targets_file="dcops.json")
    result = loaded_cli("metrics", "scrape-config", "--blackbox", "nowhere", expect=2)
    assert result.stderr == "dcops: error: --blackbox must be HOST:PORT, such as 127.0.0.1:9115, not 'nowhere'\n"
    result = loaded_cli("metrics", "blackbox-config")
    assert yaml.safe_load(result.stdout) == blackbox_modules()


def test_sync_refuses_bad_input_before_asking_prometheus(loaded_cli, unused_port):
    url = f"http://127.0.0.1:{unused_port}"
    result = loaded_cli("probe", "sync", "--prometheus", url, "--from", "yesterday", expect=2)
    assert result.stderr.startswith("dcops: error: --from: 'yesterday' is not a time")
    result = loaded_cli("probe", "sync", "--prometheus", url, "--from", "2026-02-01", "--to", "2026-01-01", expect=2)
    assert "must be before --to" in result.stderr
    result = loaded_cli("probe", "sync", "--prometheus", "localhost:9090", expect=2)
    assert result.stderr.count("\n") == 1 and "--prometheus must be an http" in result.stderr
    result = loaded_cli("probe", "sync", expect=2)
    assert result.stderr == ("dcops: error: no Prometheus to read from: give --prometheus URL or set "
                             "DCOPS_PROMETHEUS_URL\n")
    # nothing listens there: one line, exit 3, nothing written
    result = loaded_cli("probe", "sync", "--prometheus", url, expect=3)
    assert result.stderr.startswith(f"dcops: error: cannot reach Prometheus at {url}: ")
    assert result.stderr.count("\n") == 1
    assert "probe.synced" not in loaded_cli("audit", "list", "--output", "json").stdout


def test_the_readme_shows_the_job_scrape_config_prints():
    from conftest import ROOT

    readme = (ROOT / "README.md").read_text()
    block = readme.split("`dcops metrics scrape-config` prints the job", 1)[1].split("```yaml\n", 1)[1].split("```", 1)[0]
    assert yaml.safe_load(block) == scrape_config()
    assert dump_scrape_config(scrape_config()).split("\n", 3)[3] == block  # the same text, less the comments


def test_settle_waits_for_the_longest_probe_of_a_group():
    """A sync to now stops each group's settle before now: its longest timeout, blackbox_exporter's
    half second and SETTLE_MARGIN (5 s)."""
    from dcops.health.prometheus import settle

    checks = [CheckRow(1, 1, "dhis2", "web", "http", "http://x/", "200-399", "", 2.0, 60),
              CheckRow(2, 1, "dhis2", "db", "tcp", "x:1", "", "", 9.5, 60)]
    assert settle(checks) == timedelta(seconds=15)
    assert settle(checks[:1]) == timedelta(seconds=7.5)


def test_the_services_sync_warns_once_while_prometheus_stays_unreachable(any_database, caplog, tmp_path):
    """dcops serve's sync thread, every 50 ms against a closed loopback port: one WARNING for the
    outage, not one per round, and the thread ends when told to."""
    import logging
    import socket
    import threading

    import inventories
    from dcops.daemon import SyncCount, sync_prometheus_every
    from dcops.inventory.service import load_directory
    from dcops.settings import Settings

    load_directory(any_database, inventories.write(tmp_path / "inv", inventories.base()))

    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        nowhere = f"http://127.0.0.1:{closed.getsockname()[1]}"
    settings = Settings.from_env({"DCOPS_DATABASE_URL": "sqlite://", "DCOPS_PROMETHEUS_URL": nowhere})
    stop, count = threading.Event(), SyncCount()
    worker = threading.Thread(target=sync_prometheus_every,
                              args=(any_database, stop, settings, Thresholds(), count), kwargs={"interval_s": 0.05})
    with caplog.at_level(logging.INFO, logger="dcops"):
        worker.start()
        deadline = datetime.now() + timedelta(seconds=10)
        while datetime.now() < deadline and not caplog.records:
            stop.wait(0.05)
        stop.wait(0.5)  # several more rounds, all failing
        stop.set()
        worker.join(10)
    assert not worker.is_alive()
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and warnings[0].startswith("not synced from Prometheus:"), warnings
    assert count.results == 0

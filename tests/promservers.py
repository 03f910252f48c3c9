"""Debian's Prometheus, promtool, blackbox_exporter and Alertmanager, started by the tests on loopback ports.

    tsdb = backfill(tmp_path / "tsdb", openmetrics_lines)        # promtool tsdb create-blocks-from openmetrics
    with Prometheus(tmp_path / "prom", config, storage=tsdb) as prometheus:
        prometheus.wait_for(lambda: prometheus.query("up"), "a scrape")
    with Blackbox(tmp_path / "bb", modules) as blackbox:
        blackbox.address                                          # 127.0.0.1:<port>

Each server has its configuration, storage and log under its own folder, listens on 127.0.0.1 on
a port that was free a moment before, and is stopped (terminated, killed after 20 s) by its own
process handle when its `with` block ends.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import socket
import subprocess
import time
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Iterable

import yaml

PROMETHEUS = shutil.which("prometheus") or "/usr/bin/prometheus"
PROMTOOL = shutil.which("promtool") or "/usr/bin/promtool"
BLACKBOX = shutil.which("prometheus-blackbox-exporter") or "/usr/bin/prometheus-blackbox-exporter"
ALERTMANAGER = shutil.which("prometheus-alertmanager") or "/usr/bin/prometheus-alertmanager"
WAIT_SECONDS = 30


def free_port() -> int:
    """A loopback TCP port nothing listens on (now)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class _Server:
    """A server process with its log file, stopped by its own handle."""

    name = "server"

    def __init__(self, directory: Path, argv: list[str], port: int):
        directory.mkdir(parents=True, exist_ok=True)
        self.port = port
        self.address = f"127.0.0.1:{port}"
        self.base = f"http://{self.address}"
        self.log = (directory / f"{self.name}.log").open("w")
        self.process = subprocess.Popen(argv, stdout=self.log, stderr=subprocess.STDOUT, cwd=directory)

    def wait_for(self, what, description: str, timeout: float = WAIT_SECONDS):
        """Poll `what()` until it returns something truthy."""
        deadline = time.monotonic() + timeout
        while True:
            assert self.process.poll() is None, f"{self.name} exited: see {self.log.name}"
            try:
                value = what()
            except OSError:  # not listening yet
                value = None
            if value:
                return value
            if time.monotonic() > deadline:
                raise AssertionError(f"{self.name}: no {description} after {timeout} s (log: {self.log.name})")
            time.sleep(0.2)

    def ready(self) -> None:
        def answers() -> bool:
            with urllib.request.urlopen(f"{self.base}/-/ready", timeout=2) as response:
                return response.status == 200
        self.wait_for(answers, "answer on /-/ready")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.log.close()

    def __enter__(self):
        try:
            self.ready()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc_info) -> None:
        self.stop()


class Prometheus(_Server):
    """Prometheus with `config` (a prometheus.yml document); `storage`: a TSDB folder (backfilled)."""

    name = "prometheus"

    def __init__(self, directory: Path, config: dict, *, storage: Path | None = None, port: int | None = None):
        directory.mkdir(parents=True, exist_ok=True)
        (directory / "prometheus.yml").write_text(yaml.safe_dump(config, sort_keys=False))
        port = port or free_port()
        storage = storage or directory / "data"
        super().__init__(directory, [
            PROMETHEUS, f"--config.file={directory / 'prometheus.yml'}", f"--storage.tsdb.path={storage}",
            # backfilled history is older than the default 15 days
            "--storage.tsdb.retention.time=3650d", f"--web.listen-address=127.0.0.1:{port}"], port)

    def api(self, path: str, **params) -> dict:
        url = f"{self.base}/api/v1/{path}" + (f"?{urllib.parse.urlencode(params)}" if params else "")
        with urllib.request.urlopen(url, timeout=10) as response:
            body = json.load(response)
        assert body["status"] == "success", body
        return body["data"]

    def query(self, promql: str, **params) -> list[dict]:
        return self.api("query", query=promql, **params)["result"]


class Alertmanager(_Server):
    """Alertmanager with the configuration file `config`, clustering off; its silences and
    notification log kept in `directory`/data (a restart on the same folder keeps them)."""

    name = "alertmanager"

    def __init__(self, directory: Path, config: Path, *, port: int | None = None):
        directory.mkdir(parents=True, exist_ok=True)
        (directory / "data").mkdir(exist_ok=True)
        port = port or free_port()
        super().__init__(directory, [ALERTMANAGER, f"--config.file={config}", f"--storage.path={directory / 'data'}",
                                     f"--web.listen-address=127.0.0.1:{port}", "--cluster.listen-address="], port)


class Blackbox(_Server):
    """blackbox_exporter with `modules` (a blackbox.yml document)."""

    name = "blackbox"

    def __init__(self, directory: Path, modules: dict | str, *, port: int | None = None):
        directory.mkdir(parents=True, exist_ok=True)
        text = modules if isinstance(modules, str) else yaml.safe_dump(modules)
        (directory / "blackbox.yml").write_text(text)
        port = port or free_port()
        super().__init__(directory, [BLACKBOX, f"--config.file={directory / 'blackbox.yml'}",
                                     f"--web.listen-address=127.0.0.1:{port}"], port)

    def ready(self) -> None:
        def answers() -> bool:
            with urllib.request.urlopen(f"{self.base}/metrics", timeout=2) as response:
                return response.status == 200
        self.wait_for(answers, "answer on /metrics")


@contextlib.contextmanager
def blackbox_through_prometheus(directory: Path, dcops):
    """blackbox_exporter probing dcops' checks through the file_sd file of `dcops metrics targets`,
    and Prometheus scraping it with the job of `dcops metrics scrape-config`, as the README has it.
    `dcops(*args)` runs a dcops command against the database concerned and returns its stdout.
    Yields (Prometheus, the targets file)."""
    targets = directory / "targets.json"
    directory.mkdir(parents=True, exist_ok=True)
    dcops("metrics", "targets", str(targets))
    with Blackbox(directory / "blackbox", dcops("metrics", "blackbox-config")) as blackbox:
        job = yaml.safe_load(dcops("metrics", "scrape-config", "--blackbox", blackbox.address, "--targets",
                                   str(targets)))
        with Prometheus(directory / "prometheus", {"global": {"scrape_interval": "10s"}, **job}) as prometheus:
            yield prometheus, targets


def openmetrics_gauge(name: str, series: Iterable[tuple[dict[str, str], Iterable[tuple[float, float]]]]) -> Iterable[str]:
    """OpenMetrics lines of one gauge: `series` are (labels, [(Unix seconds, value), ...]), each in time order."""
    yield f"# TYPE {name} gauge\n"
    for labels, samples in series:
        head = name + "{" + ",".join(f'{k}="{v}"' for k, v in sorted(labels.items())) + "}"
        for moment, value in samples:
            yield f"{head} {value:g} {moment:.3f}\n"
    yield "# EOF\n"


def backfill(directory: Path, lines: Iterable[str]) -> Path:
    """A TSDB folder made by promtool from OpenMetrics `lines`, for Prometheus' --storage.tsdb.path."""
    directory.mkdir(parents=True, exist_ok=True)
    source = directory.parent / f"{directory.name}.om"
    with source.open("w") as out:
        out.writelines(lines)
    result = subprocess.run([PROMTOOL, "tsdb", "create-blocks-from", "openmetrics", str(source), str(directory)],
                            capture_output=True, text=True, timeout=1200)
    assert result.returncode == 0, result.stdout + result.stderr
    source.unlink()
    return directory

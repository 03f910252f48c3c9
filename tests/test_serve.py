"""`dcops serve` as operators run it: probes on schedule, /metrics and /healthz, clean stop on SIGTERM."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request

import pytest

from servers import Garbage, Reset, Respond, http_server
from test_prober import inventory_with

pytestmark = pytest.mark.slow


def fetch(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, ""
    except OSError:
        return 0, ""


@pytest.mark.parametrize("stop_signal", [signal.SIGTERM, signal.SIGINT])
def test_serve_probes_serves_metrics_and_stops_cleanly(cli, tmp_path, unused_port, stop_signal):
    with http_server({"/ok": Respond(200), "/reset": Reset(), "/garbage": Garbage()}) as server:
        cli("inventory", "load", inventory_with(tmp_path, {
            "dhis2": [{"name": "web", "kind": "http", "target": server.url("/ok"), "interval_seconds": 10,
                       "timeout_seconds": 2}],
            "digital-id": [{"name": "api", "kind": "http", "target": server.url("/reset"), "interval_seconds": 10,
                            "timeout_seconds": 2},
                           {"name": "web", "kind": "http", "target": server.url("/garbage"), "interval_seconds": 10,
                            "timeout_seconds": 2}],
        }))
        env = {**os.environ, **cli.env}
        process = subprocess.Popen(
            [sys.executable, "-m", "dcops", "serve", "--port", str(unused_port), "--cache-seconds", "0",
             "--failures", "1", "--successes", "1"],
            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        base = f"http://127.0.0.1:{unused_port}"
        try:
            deadline = time.monotonic() + 30
            metrics = ""
            while time.monotonic() < deadline:
                status, metrics = fetch(f"{base}/metrics")
                if 'dcops_programme_up{ministry="moh",programme="dhis2"} 1.0' in metrics and \
                        'dcops_programme_up{ministry="mtc",programme="digital-id"} 0.0' in metrics:
                    break
                time.sleep(0.3)
            assert 'dcops_programme_up{ministry="moh",programme="dhis2"} 1.0' in metrics, metrics[-2000:]
            assert 'dcops_programme_up{ministry="mtc",programme="digital-id"} 0.0' in metrics
            assert fetch(f"{base}/healthz")[0] == 200
        finally:
            process.send_signal(stop_signal)
            out, err = process.communicate(timeout=30)
        assert process.returncode == 0, err
        assert "stopped;" in err and "Traceback" not in err
        assert fetch(f"{base}/healthz")[0] == 0  # the port is closed


def test_serve_with_a_bad_ca_file_stops_at_once_with_one_line(cli, tmp_path):
    """The prober fails before its first round: the service stops its server and its snapshot
    thread (which must not sit out its wait) and says why in one line."""
    cli("inventory", "load", inventory_with(tmp_path, {
        "dhis2": [{"name": "web", "kind": "http", "target": "http://127.0.0.1:9/"}]}))
    result = cli("serve", "--port", "0", "--ca-file", tmp_path / "missing.pem", expect=2)
    assert "--ca-file: cannot load" in result.stderr and "Traceback" not in result.stderr
    import threading

    assert not [t for t in threading.enumerate() if t.name == "dcops-snapshots"]

"""Run a real Prometheus against docsight endpoints and ask it what it scraped.

Reusable for any target: a test's tiny metrics server, or a running worker's web port::

    with start_prometheus(["127.0.0.1:6066"], tmp_path) as prometheus:
        prometheus.wait_for_value('docsight_pictures_total{outcome="described"}', 3.0)

Only loopback addresses: Prometheus listens on 127.0.0.1 and scrapes the targets given.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import socket
import subprocess
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Callable, Iterator, Sequence

PROMETHEUS = shutil.which("prometheus")
SKIP_REASON = "the prometheus binary is not installed (Debian: apt-get install --no-install-recommends prometheus)"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class RunningPrometheus:
    process: subprocess.Popen
    url: str
    log_path: Path

    def api(self, path: str, **params: str) -> dict:
        query = f"?{urllib.parse.urlencode(params)}" if params else ""
        with urllib.request.urlopen(f"{self.url}{path}{query}", timeout=5) as response:
            answer = json.load(response)
        if answer.get("status") != "success":
            raise RuntimeError(f"Prometheus answered {answer}")
        return answer["data"]

    def query(self, expr: str) -> list[dict]:
        """An instant query: ``[{"metric": {labels}, "value": [time, "value"]}, ...]``."""
        return self.api("/api/v1/query", query=expr)["result"]

    def targets(self) -> list[dict]:
        return self.api("/api/v1/targets")["activeTargets"]

    def rules(self) -> list[dict]:
        return [rule for group in self.api("/api/v1/rules")["groups"] for rule in group["rules"]]

    def wait_for(self, expr: str, accept: Callable[[list[dict]], bool], timeout: float = 30.0) -> list[dict]:
        """Query ``expr`` until ``accept`` takes its result; fail with what Prometheus saw."""
        deadline = time.monotonic() + timeout
        result: list[dict] = []
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"Prometheus exited ({self.process.returncode}):\n{self.log_tail()}")
            with contextlib.suppress(urllib.error.URLError, ConnectionError, RuntimeError):
                result = self.query(expr)
                if accept(result):
                    return result
            time.sleep(0.5)
        raise AssertionError(
            f"{expr} did not reach the expected result within {timeout:.0f} s; last result: {result}\n"
            f"targets: {self._target_health()}\n{self.log_tail()}")

    def wait_for_value(self, expr: str, expected: float, timeout: float = 30.0, **labels: str) -> dict:
        """Wait until a series of ``expr`` (with ``labels``, if given) has the value ``expected``."""
        def matching(result: list[dict]) -> list[dict]:
            return [series for series in result
                    if all(series["metric"].get(k) == v for k, v in labels.items())
                    and float(series["value"][1]) == expected]
        return matching(self.wait_for(expr, lambda result: bool(matching(result)), timeout))[0]

    def _target_health(self) -> list[tuple]:
        with contextlib.suppress(Exception):
            return [(t["scrapeUrl"], t["health"], t.get("lastError")) for t in self.targets()]
        return []

    def log_tail(self, lines: int = 30) -> str:
        with contextlib.suppress(OSError):
            return "Prometheus log:\n" + "\n".join(self.log_path.read_text().splitlines()[-lines:])
        return ""

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5)


def write_config(directory: Path, targets: Sequence[str], job: str = "docsight", scrape_interval: str = "1s",
                 metrics_path: str = "/metrics", rule_files: Sequence[Path] = ()) -> Path:
    config = {
        "global": {"scrape_interval": scrape_interval, "scrape_timeout": scrape_interval,
                   "evaluation_interval": scrape_interval},
        "rule_files": [str(path) for path in rule_files],
        "scrape_configs": [{"job_name": job, "metrics_path": metrics_path,
                            "static_configs": [{"targets": list(targets)}]}],
    }
    path = directory / "prometheus.yml"
    path.write_text(json.dumps(config, indent=2))  # JSON is YAML
    return path


@contextlib.contextmanager
def start_prometheus(targets: Sequence[str], directory: Path, *, job: str = "docsight",
                     scrape_interval: str = "1s", metrics_path: str = "/metrics", rule_files: Sequence[Path] = (),
                     ready_timeout: float = 30.0) -> Iterator[RunningPrometheus]:
    """A Prometheus scraping ``targets`` (host:port) every ``scrape_interval``, stopped on exit."""
    if PROMETHEUS is None:
        raise RuntimeError(SKIP_REASON)
    directory.mkdir(parents=True, exist_ok=True)
    config = write_config(directory, targets, job, scrape_interval, metrics_path, rule_files)
    port = free_port()
    log_path = directory / "prometheus.log"
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            [PROMETHEUS, f"--config.file={config}", f"--storage.tsdb.path={directory / 'data'}",
             f"--web.listen-address=127.0.0.1:{port}", "--storage.tsdb.retention.time=1h"],
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    prometheus = RunningPrometheus(process, f"http://127.0.0.1:{port}", log_path)
    try:
        _wait_ready(prometheus, ready_timeout)
        yield prometheus
    finally:
        prometheus.stop()


def _wait_ready(prometheus: RunningPrometheus, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if prometheus.process.poll() is not None:
            raise RuntimeError(f"Prometheus exited ({prometheus.process.returncode}):\n{prometheus.log_tail()}")
        with contextlib.suppress(urllib.error.URLError, ConnectionError, OSError):
            with urllib.request.urlopen(f"{prometheus.url}/-/ready", timeout=2) as response:
                if response.status == 200:
                    return
        time.sleep(0.2)
    raise RuntimeError(f"Prometheus was not ready within {timeout:.0f} s:\n{prometheus.log_tail()}")


@contextlib.contextmanager
def serve_metrics(render: Callable[[], tuple[bytes, str]], path: str = "/metrics") -> Iterator[str]:
    """A tiny HTTP server on 127.0.0.1 answering ``path`` with ``render()`` (body, content type).

    Yields its ``host:port`` as a scrape target.
    """
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - http.server's name
            if self.path.split("?")[0] != path:
                self.send_error(404)
                return
            body, content_type = render()
            self.send_response(200)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args) -> None:  # scrapes every second would flood the test output
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, name="metrics-server", daemon=True)
    thread.start()
    try:
        yield f"127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)

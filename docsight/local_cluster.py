"""A whole docsight cluster on this machine: embedded broker, local Gemini server, worker processes.

The demo, the integration tests and the benchmarks all run on it, so they
exercise the real parts the same way: Tansu, the google-genai SDK against the
local server, docling in worker processes, Faust workers as separate
processes (so one can be killed with SIGKILL).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from docsight.broker import EmbeddedBroker, free_port

LOCAL_API_KEY = "local-test-key"


@dataclass
class WorkerProcess:
    name: str
    web_port: int
    data_dir: Path
    log_path: Path
    process: subprocess.Popen
    env: dict[str, str] = field(repr=False)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.web_port}"

    def alive(self) -> bool:
        return self.process.poll() is None

    def get_json(self, path: str, timeout: float = 5.0) -> tuple[int, dict]:
        try:
            with urllib.request.urlopen(self.url + path, timeout=timeout) as response:
                return response.status, json.loads(response.read())
        except urllib.error.HTTPError as error:
            body = error.read()
            try:
                return error.code, json.loads(body or b"{}")
            except ValueError:
                return error.code, {"error": body.decode(errors="replace")}

    def log_tail(self, lines: int = 40) -> str:
        text = self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
        return "\n".join(text.splitlines()[-lines:])


class LocalCluster:
    """``with LocalCluster(workdir) as cluster: cluster.start_worker(); cluster.broker_url ...``"""

    def __init__(self, workdir: Path, document_root: Path | None = None, env: dict[str, str] | None = None,
                 gemini_config=None, gemini_base_url: str | None = None, gemini_api_key: str | None = None) -> None:
        self.workdir = Path(workdir).resolve()
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.document_root = (document_root or self.workdir / "documents").resolve()
        self.document_root.mkdir(parents=True, exist_ok=True)
        self.store_dir = self.workdir / "store"
        self.extra_env = dict(env or {})
        self._gemini_config = gemini_config
        self._gemini_base_url = gemini_base_url
        self._gemini_api_key = gemini_api_key
        self.broker: EmbeddedBroker | None = None
        self.gemini = None
        self.workers: dict[str, WorkerProcess] = {}

    # --- lifecycle -----------------------------------------------------------
    def start(self) -> "LocalCluster":
        if self.broker is not None:
            return self  # already running (``with`` on a started cluster)
        self.broker = EmbeddedBroker(log_path=self.workdir / "broker.log").start()
        if self._gemini_base_url is None:
            from docsight.gemini_server import GeminiServerConfig, GeminiServerThread

            self.gemini = GeminiServerThread(self._gemini_config or GeminiServerConfig())
            self._gemini_base_url = self.gemini.start()
            self._gemini_api_key = self._gemini_api_key or LOCAL_API_KEY
        return self

    def stop(self) -> None:
        for worker in list(self.workers.values()):
            self.stop_worker(worker.name)
        if self.gemini:
            self.gemini.stop()
        if self.broker:
            self.broker.stop()
        self.broker = None

    def __enter__(self) -> "LocalCluster":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    @property
    def broker_url(self) -> str:
        return self.broker.url

    @property
    def gemini_base_url(self) -> str | None:
        return self._gemini_base_url

    # --- workers ---------------------------------------------------------------
    def worker_env(self, name: str, web_port: int, **overrides: str) -> dict[str, str]:
        env = {key: value for key, value in os.environ.items()
               if not key.startswith(("DOCSIGHT_", "VISION_", "GEMINI_", "GOOGLE_GEMINI_"))}
        env.update({
            "DOCSIGHT_BROKER_URL": self.broker_url,
            "DOCSIGHT_EMBEDDED_BROKER": "true",
            "DOCSIGHT_DATA_DIR": str(self.workdir / "workers" / name),
            "DOCSIGHT_STORE_DIR": str(self.store_dir),
            "DOCSIGHT_DOCUMENT_ROOT": str(self.document_root),
            "DOCSIGHT_WEB_PORT": str(web_port),
            "GEMINI_API_KEY": self._gemini_api_key or "",
            "HF_HUB_OFFLINE": "1",
            "PYTHONUNBUFFERED": "1",
        })
        if self._gemini_base_url:
            env["GOOGLE_GEMINI_BASE_URL"] = self._gemini_base_url
        env.update(self.extra_env)
        env.update(overrides)
        return env

    def start_worker(self, name: str | None = None, wait: bool = True, timeout: float = 90.0,
                     **env_overrides: str) -> WorkerProcess:
        name = name or f"worker{len(self.workers) + 1}"
        web_port = free_port()
        env = self.worker_env(name, web_port, **env_overrides)
        data_dir = Path(env["DOCSIGHT_DATA_DIR"])
        data_dir.mkdir(parents=True, exist_ok=True)
        log_path = self.workdir / f"{name}.log"
        with open(log_path, "ab") as log:
            process = subprocess.Popen(
                [sys.executable, "-m", "docsight", "worker", "--loglevel", env.get("DOCSIGHT_LOG_LEVEL", "info")],
                env=env, stdout=log, stderr=subprocess.STDOUT, cwd=self.workdir)
        worker = WorkerProcess(name, web_port, data_dir, log_path, process, env)
        self.workers[name] = worker
        if wait:
            self.wait_ready(worker, timeout)
        return worker

    def wait_ready(self, worker: WorkerProcess, timeout: float = 90.0) -> None:
        """Wait until the worker's web server answers and it owns partitions."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not worker.alive():
                raise RuntimeError(f"worker {worker.name} exited:\n{worker.log_tail()}")
            try:
                status, body = worker.get_json("/healthz", timeout=2)
                if status == 200 and body.get("assigned_partitions", 0) > 0:
                    return
            except (OSError, ValueError):
                pass
            time.sleep(0.5)
        raise TimeoutError(f"worker {worker.name} not ready after {timeout}s:\n{worker.log_tail()}")

    def stop_worker(self, name: str, kill: bool = False, timeout: float = 30.0) -> None:
        worker = self.workers.pop(name)
        if not worker.alive():
            return
        worker.process.send_signal(signal.SIGKILL if kill else signal.SIGTERM)
        try:
            worker.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            worker.process.kill()
            worker.process.wait()

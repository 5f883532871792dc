"""A real S3-protocol server process on this machine (moto's ``moto_server``), for the object-store tests.

    with S3Server(tmp_path) as s3:
        s3.create_bucket("docsight")
        store = open_store(s3.location("s3://docsight/blobs"))

It answers the S3 REST API over HTTP on ``host:port`` (loopback by default, or an
address of the test's own network namespaces' bridge).
"""

from __future__ import annotations

import importlib.util
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from docsight.storage import StoreLocation

AVAILABLE = importlib.util.find_spec("moto") is not None and importlib.util.find_spec("flask") is not None
SKIP_REASON = "moto[server] is not installed (pip install -e '.[dev]')"
ACCESS_KEY_ID, SECRET_ACCESS_KEY, REGION = "docsight-test", "docsight-test-secret", "us-east-1"


def free_port(host: str) -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


class S3Server:
    def __init__(self, directory: Path, host: str = "127.0.0.1", port: int | None = None) -> None:
        self.host = host
        self.port = port or free_port(host)
        self.log_path = Path(directory) / "moto_server.log"
        self.process: subprocess.Popen | None = None

    @property
    def endpoint(self) -> str:
        return f"http://{self.host}:{self.port}"

    def location(self, url: str) -> StoreLocation:
        return StoreLocation(url, endpoint=self.endpoint, region=REGION, access_key_id=ACCESS_KEY_ID,
                             secret_access_key=SECRET_ACCESS_KEY)

    def env(self, url: str) -> dict[str, str]:
        """The worker settings that point a docsight process at ``url`` on this server."""
        return {"DOCSIGHT_STORE_URL": url, "DOCSIGHT_STORE_ENDPOINT": self.endpoint, "DOCSIGHT_STORE_REGION": REGION,
                "DOCSIGHT_STORE_ACCESS_KEY_ID": ACCESS_KEY_ID, "DOCSIGHT_STORE_SECRET_ACCESS_KEY": SECRET_ACCESS_KEY}

    def start(self, timeout: float = 30.0) -> "S3Server":
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "moto.server", "-H", self.host, "-p", str(self.port)],
                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"moto_server exited ({self.process.returncode}):\n{self.log_tail()}")
            try:
                with urllib.request.urlopen(f"{self.endpoint}/moto-api/", timeout=1):
                    return self
            except (urllib.error.URLError, OSError):
                time.sleep(0.2)
        self.stop()
        raise TimeoutError(f"moto_server did not answer on {self.endpoint} within {timeout:.0f} s")

    def create_bucket(self, bucket: str) -> None:
        # moto does not check signatures: a bare PUT creates the bucket
        request = urllib.request.Request(f"{self.endpoint}/{bucket}", method="PUT")
        with urllib.request.urlopen(request, timeout=10) as response:
            assert response.status == 200, response.status

    def keys(self, bucket: str) -> list[str]:
        """Every key in ``bucket`` (ListObjectsV2, one page is enough for a test)."""
        import xml.etree.ElementTree as ElementTree

        with urllib.request.urlopen(f"{self.endpoint}/{bucket}?list-type=2&max-keys=1000", timeout=10) as response:
            tree = ElementTree.fromstring(response.read())
        namespace = {"s3": "http://s3.amazonaws.com/doc/2006-03-01/"}
        return sorted(key.text for key in tree.findall("s3:Contents/s3:Key", namespace))

    def log_tail(self, lines: int = 20) -> str:
        text = self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
        return "\n".join(text.splitlines()[-lines:])

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def __enter__(self) -> "S3Server":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

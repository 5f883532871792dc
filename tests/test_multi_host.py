"""Three "hosts" on this machine: workers in their own network namespaces, nothing shared but the network.

Each worker has its own data directory and address. The broker (the embedded Tansu), the store (a
real S3-protocol server) and the local Gemini server listen on the host side of a bridge; the workers
reach them, and one another, only over those addresses. Then one host dies (every process in its
namespace gets SIGKILL and its network is deleted) with documents in flight: the other two take over
its partitions and tables, every web view still answers from any worker for any document, and the
conservation audit finds nothing lost.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from cluster_helpers import unique_markdown_document, unique_id
from conftest import TEST_WORKER_ENV
from docsight.audit import audit, read_records
from docsight.broker import EmbeddedBroker
from docsight.client import DocsightClient, document_event, ensure_topics
from docsight.local_cluster import LOCAL_API_KEY
from docsight.storage import open_store
from netns_hosts import HostNetwork, unavailable_reason
from s3_server import AVAILABLE as S3_AVAILABLE, SKIP_REASON as S3_SKIP_REASON, S3Server

pytestmark = [pytest.mark.slow, pytest.mark.cluster, pytest.mark.timeout(900),
              pytest.mark.skipif(not S3_AVAILABLE, reason=S3_SKIP_REASON)]

WEB_PORT = 6066  # the same on every host: each namespace has its own
BUCKET = "docsight-cluster"
DOCUMENTS_PER_BATCH = 6


@pytest.fixture(scope="module")
def namespaces_available():
    reason = unavailable_reason()
    if reason:
        pytest.skip(f"no network namespaces here: {reason}")


def get_json(address: str, path: str, timeout: float = 10.0) -> tuple[int, dict]:
    try:
        with urllib.request.urlopen(f"http://{address}:{WEB_PORT}{path}", timeout=timeout) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, {}


def wait_until(check, timeout: float, what: str, interval: float = 0.5):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError, ValueError):
            last = check()
            if last:
                return last
        time.sleep(interval)
    raise AssertionError(f"{what} within {timeout:.0f} s; last: {last}")


class Worker:
    def __init__(self, host, data_dir: Path, env: dict[str, str]) -> None:
        self.host = host
        self.data_dir = data_dir
        self.log_path = data_dir.parent / f"{host.name}.log"
        data_dir.mkdir(parents=True)
        with open(self.log_path, "ab") as log:
            self.process = host.popen([sys.executable, "-m", "docsight", "worker", "--loglevel", "info"],
                                      env=env, stdout=log, stderr=log, cwd=data_dir)

    def log_tail(self, lines: int = 30) -> str:
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def partitions(self) -> int:
        if self.process.poll() is not None:
            raise AssertionError(f"worker on {self.host.name} exited:\n{self.log_tail()}")
        status, body = get_json(self.host.address, "/healthz", timeout=2)
        return body.get("assigned_partitions", 0) if status == 200 else 0


def worker_env(base: dict[str, str], host, data_dir: Path, broker: EmbeddedBroker, s3: S3Server,
               gemini_url: str, document_root: Path) -> dict[str, str]:
    env = {key: value for key, value in base.items() if not key.startswith(("DOCSIGHT_", "VISION_", "GEMINI_",
                                                                             "GOOGLE_GEMINI_", "AWS_"))}
    env.update(TEST_WORKER_ENV)
    env.update(s3.env(f"s3://{BUCKET}/blobs"))
    env.update({
        "DOCSIGHT_BROKER_URL": broker.url,
        "DOCSIGHT_EMBEDDED_BROKER": "true",
        "DOCSIGHT_DATA_DIR": str(data_dir),
        "DOCSIGHT_DOCUMENT_ROOT": str(document_root),
        # as in a container: bound on every address, advertised at the host's own
        "DOCSIGHT_WEB_HOST": "0.0.0.0",
        "DOCSIGHT_WEB_PORT": str(WEB_PORT),
        "DOCSIGHT_WEB_ADVERTISED_URL": f"http://{host.address}:{WEB_PORT}",
        "DOCSIGHT_EXTRACTION_PROCESSES": "1",   # three workers on two shared cores
        "GEMINI_API_KEY": LOCAL_API_KEY,
        "GOOGLE_GEMINI_BASE_URL": gemini_url,
        "HF_HUB_OFFLINE": "1",
        "PYTHONUNBUFFERED": "1",
    })
    return env


def test_three_hosts_share_broker_and_store_and_lose_nothing_when_one_dies(namespaces_available, tmp_path):
    from docsight.gemini_server import GeminiServerConfig, GeminiServerThread

    document_root = tmp_path / "documents"
    document_root.mkdir()
    with contextlib.ExitStack() as stack:
        network = stack.enter_context(HostNetwork())
        broker = stack.enter_context(EmbeddedBroker(host=network.bridge_address, log_path=tmp_path / "broker.log"))
        s3 = stack.enter_context(S3Server(tmp_path, host=network.bridge_address))
        gemini = GeminiServerThread(GeminiServerConfig(host=network.bridge_address))
        gemini_url = gemini.start()
        stack.callback(gemini.stop)
        stack.callback(network.close)  # first on the way out: the workers go before what they talk to
        s3.create_bucket(BUCKET)
        asyncio.run(ensure_topics(broker.url, partitions=6))

        workers = {}
        for name in ("h1", "h2", "h3"):
            host = network.add_host(name)
            data_dir = tmp_path / "hosts" / name
            workers[name] = Worker(host, data_dir, worker_env(dict(os.environ), host, data_dir, broker, s3,
                                                              gemini_url, document_root))
        wait_until(lambda: all(worker.partitions() > 0 for worker in workers.values()), 240,
                   "every worker owns partitions")

        location = s3.location(f"s3://{BUCKET}/blobs")
        shared_bytes = noise_png()  # one picture in every document: stored and described once

        def batch(prefix: str) -> list[dict]:
            return [document_event(unique_id(prefix), "tester",
                                   unique_markdown_document(document_root, 2, shared=shared_bytes))
                    for _ in range(DOCUMENTS_PER_BATCH)]

        # ---- batch 1: all three hosts up ----
        first = batch("before")
        outcomes = asyncio.run(submit_and_collect(broker.url, location, first, timeout=240))
        assert all(o.enriched for o in outcomes.values()), [o.value for o in outcomes.values()]
        store = open_store(location)
        for outcome in outcomes.values():
            for picture in outcome.value["pictures"]:
                assert picture["status"] == "described", picture
                assert picture["sha256"] in store  # in the bucket, for every host to read
        ids = [event["document_id"] for event in first]
        for worker in workers.values():  # every worker answers for every document, owner or not
            for document_id in ids:
                status, view = get_json(worker.host.address, f"/documents/{document_id}")
                assert status == 200 and view["status"] == "enriched", (worker.host.name, document_id, view)
        status, listing = get_json(workers["h3"].host.address, "/documents?limit=1000")
        assert status == 200 and set(ids) <= {item["document_id"] for item in listing["documents"]}, listing

        # ---- batch 2: host h2 dies with documents in flight ----
        gemini.control({"latency_ms": 1500})  # slow answers: the kill lands while pictures are being described
        second = batch("during")

        async def submit_kill_collect():
            async with DocsightClient(broker.url, store_dir=location) as client:
                for event in second:
                    await client.submit(event)
                await asyncio.sleep(1.0)  # extraction and descriptions under way
                wanted = {event["document_id"] for event in second}
                done_before = await client.collect(wanted, timeout=1.0)
                network.remove_host("h2")
                assert len(done_before) < len(wanted), "every document was done before the kill: nothing in flight"
                return {o.document_id: o for o in await client.collect(wanted, timeout=300)}

        outcomes = asyncio.run(submit_kill_collect())
        survivors = {name: worker for name, worker in workers.items() if name != "h2"}
        assert set(outcomes) == {event["document_id"] for event in second}, "documents without an outcome"
        assert all(o.enriched for o in outcomes.values()), [o.value for o in outcomes.values()]

        every_id = ids + [event["document_id"] for event in second]
        for worker in survivors.values():
            for document_id in every_id:
                wait_until(lambda address=worker.host.address, path=f"/documents/{document_id}":
                           get_json(address, path)[1].get("status") == "enriched",
                           60, f"{worker.host.name} shows {document_id} enriched")
        status, page = 0, ""
        with urllib.request.urlopen(f"http://{survivors['h1'].host.address}:{WEB_PORT}/status", timeout=10) as answer:
            status, page = answer.status, answer.read().decode()
        assert status == 200 and "<html" in page.lower()

        # ---- the audit: every submission has exactly one outcome, nothing lost or doubled ----
        report = audit(asyncio.run(read_records(broker.url)))
        assert report.submissions == 2 * DOCUMENTS_PER_BATCH, report.render()
        assert report.enriched == 2 * DOCUMENTS_PER_BATCH and report.failed == 0, report.render()
        assert report.lost == 0 and report.in_progress == 0 and report.ok, report.render()

        # no host kept picture bytes of its own: the bucket is the only store
        for worker in workers.values():
            assert not list(worker.data_dir.glob("store/??/*")), worker.host.name


async def submit_and_collect(broker_url: str, location, events: list[dict], timeout: float) -> dict:
    async with DocsightClient(broker_url, store_dir=location) as client:
        for event in events:
            await client.submit(event)
        wanted = {event["document_id"] for event in events}
        return {o.document_id: o for o in await client.collect(wanted, timeout=timeout)}


def noise_png() -> bytes:
    import io

    from PIL import Image

    buffer = io.BytesIO()
    Image.effect_noise((200, 150), 60).convert("RGB").save(buffer, "PNG")
    return buffer.getvalue()

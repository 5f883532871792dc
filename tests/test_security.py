"""Security: read-only web views, an API key that never leaves the worker, a confined blob store, loopback only."""

from __future__ import annotations

import asyncio
import ipaddress
import json
import os
import socket
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from docsight.audit import read_records
from docsight.client import ensure_topics
from docsight.gemini_server import GeminiServerConfig, build_arg_parser
from docsight.local_cluster import LocalCluster
from docsight.storage import BlobStore, sha256_hex

from cluster_helpers import submit_document, unique_markdown_document, wait_for_status
from conftest import TEST_WORKER_ENV

SECRET_KEY = "AIzaSy-docsight-test-SECRET-5b0c9e77d1"
WRITE_METHODS = ("POST", "PUT", "PATCH", "DELETE")


@pytest.fixture(scope="module")
def secured(tmp_path_factory):
    """A cluster whose worker holds a distinctive key (the only one the local API accepts), logging at debug,
    after documents went through the error paths: a 500, a dropped connection, a 429, a missing file and
    finally a refused key."""
    workdir = tmp_path_factory.mktemp("secured")
    cluster = LocalCluster(workdir, env={**TEST_WORKER_ENV, "DOCSIGHT_LOG_LEVEL": "debug"},
                           gemini_config=GeminiServerConfig(api_keys=frozenset({SECRET_KEY})),
                           gemini_api_key=SECRET_KEY)
    with cluster:
        asyncio.run(ensure_topics(cluster.broker_url, partitions=6))
        cluster.start_worker("worker1")
        cluster.gemini.control({"enqueue": [{"kind": "500"}, {"kind": "close"}, {"kind": "429", "retry_delay_s": 0}]})
        described = submit_document(cluster, unique_markdown_document(cluster.document_root, 3), prefix="secret")
        assert [p["status"] for p in described.value["pictures"]] == ["described"] * 3
        missing = submit_document(cluster, "missing.pdf", prefix="secret-missing")
        cluster.gemini.control({"api_keys": ["somebody-elses-key"]})  # the worker's key is refused from now on
        refused = submit_document(cluster, unique_markdown_document(cluster.document_root, 1), prefix="refused")
        assert refused.value["pictures"][0]["reason"] == "invalid_api_key"
        yield cluster, [described, missing, refused]


def request(url: str, method: str = "GET") -> tuple[int, bytes]:
    data = b'{"status": "enriched"}' if method != "GET" else None
    req = urllib.request.Request(url, method=method, data=data, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=10) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def worker_pages(cluster, outcomes) -> list[str]:
    document_id = outcomes[0].document_id
    return ["/", "/healthz", "/stats", "/metrics", "/documents", f"/documents/{document_id}",
            f"/documents/{outcomes[1].document_id}", "/table/", "/table/documents/",
            f"/table/documents/{document_id}/", "/router/"]


def test_web_views_refuse_writes(secured):
    cluster, outcomes = secured
    worker = cluster.workers["worker1"]
    view = wait_for_status(worker, outcomes[0].document_id, "enriched")
    for path in worker_pages(cluster, outcomes):
        status, _ = request(worker.url + path)
        assert status in (200, 404), f"GET {path}: {status}"
        for method in WRITE_METHODS:
            status, _ = request(worker.url + path, method)
            assert status in (404, 405), f"{method} {path} answered {status}"
    assert wait_for_status(worker, outcomes[0].document_id, "enriched") == view


def test_the_api_key_never_leaves_the_worker(secured):
    cluster, outcomes = secured
    worker = cluster.workers["worker1"]
    assert cluster.gemini.stats()["calls_ok"] >= 3  # the key was really in use: the API accepted only it
    places = {"worker log": worker.log_path.read_bytes(),
              "worker command line": Path(f"/proc/{worker.process.pid}/cmdline").read_bytes()}
    for path in worker_pages(cluster, outcomes):
        places[f"GET {path}"] = request(worker.url + path)[1]
    # every topic: the outputs, the internal events and the tables' changelogs
    records = asyncio.run(read_records(cluster.broker_url, topics=_all_topics(cluster)))
    assert {"document-enriched", "document-failed", "docsight-document-updates"} <= {r.topic for r in records}
    for record in records:
        places[f"topic {record.topic}"] = places.get(f"topic {record.topic}", b"") + (record.value or b"")
    for outcome in outcomes:
        places[f"{outcome.topic} event"] = json.dumps(outcome.value).encode()
    leaks = [place for place, content in places.items() if SECRET_KEY.encode() in content]
    assert not leaks, f"the API key appears in: {leaks}"
    assert len(places["worker log"]) > 10_000, "a debug log of a whole run was expected"


def _all_topics(cluster) -> list[str]:
    from aiokafka.admin import AIOKafkaAdminClient

    async def run():
        admin = AIOKafkaAdminClient(bootstrap_servers=cluster.broker.bootstrap_servers)
        await admin.start()
        try:
            return [topic for topic in await admin.list_topics() if not topic.startswith("__")]
        finally:
            await admin.close()

    return asyncio.run(run())


def test_the_blob_store_refuses_digests_that_are_paths(tmp_path):
    store = BlobStore(tmp_path / "store")
    for digest in ("../../etc/passwd", "../" + "0" * 61, "/" + "0" * 63, "0" * 63 + "/", "A" * 64, "",
                   "0" * 65, "0" * 62 + "/.."):
        with pytest.raises(ValueError):
            store.path_for(digest)
        with pytest.raises(ValueError):
            store.get(digest)
    digest = store.put(b"picture")
    assert store.path_for(digest).resolve().is_relative_to(store.root)
    assert sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*") if p.is_file()) == [
        f"store/{digest[:2]}/{digest}"]


def test_the_blob_store_does_not_write_through_a_symlink_out_of_its_root(tmp_path):
    store, outside = BlobStore(tmp_path / "store"), tmp_path / "outside"
    outside.mkdir()
    data = b"planted"
    (store.root / sha256_hex(data)[:2]).symlink_to(outside, target_is_directory=True)
    try:
        store.put(data)
    except (ValueError, OSError):
        pass  # refusing is fine
    assert list(outside.iterdir()) == []


def _listening_sockets(pid: int) -> set[tuple[str, int]]:
    """(address, port) of every TCP socket process ``pid`` listens on, from /proc."""
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    found = set()
    for table, family in (("/proc/net/tcp", socket.AF_INET), ("/proc/net/tcp6", socket.AF_INET6)):
        if not Path(table).exists():
            continue
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            local, state, inode = fields[1], fields[3], fields[9]
            if state != "0A" or inode not in inodes:  # 0A: LISTEN
                continue
            address_hex, port_hex = local.split(":")
            raw = bytes.fromhex(address_hex)
            # /proc prints each 32-bit word in host (little-endian) order
            raw = b"".join(raw[i:i + 4][::-1] for i in range(0, len(raw), 4))
            found.add((socket.inet_ntop(family, raw), int(port_hex, 16)))
    return found


def test_the_broker_the_gemini_server_and_the_worker_listen_on_loopback_only(secured):
    cluster, _ = secured
    assert GeminiServerConfig().host == "127.0.0.1"
    assert build_arg_parser().parse_args([]).host == "127.0.0.1"
    gemini_port = int(cluster.gemini_base_url.rsplit(":", 1)[1])
    worker = cluster.workers["worker1"]
    for name, pid, port in (("broker", cluster.broker._process.pid, cluster.broker.port),
                            ("Gemini server", os.getpid(), gemini_port),
                            ("worker", worker.process.pid, worker.web_port)):
        sockets = _listening_sockets(pid)
        if name == "Gemini server":  # the test process listens for other things too: only that port
            sockets = {s for s in sockets if s[1] == port}
        assert (("127.0.0.1", port) in sockets), f"{name} does not listen on 127.0.0.1:{port}: {sockets}"
        assert all(ipaddress.ip_address(address).is_loopback for address, _ in sockets), f"{name}: {sockets}"


def test_a_refused_key_is_an_alarm_without_the_key(secured):
    cluster, outcomes = secured
    refused = outcomes[2].value
    assert "Description unavailable: invalid_api_key" in refused["markdown"]
    assert SECRET_KEY not in json.dumps(refused)
    status, body = request(cluster.workers["worker1"].url + "/stats")
    assert status == 200 and json.loads(body)["circuit_breaker"] == "alarm"

"""Running scenarios on a LocalCluster: submit, collect, read the internal topics, sample the server.

Picture timings come from docsight's own internal topics, read after the run:
``docsight-picture-requests`` carries when each picture was requested and
``docsight-document-updates`` when it was described and how long its call
took (pacing wait included). Nothing in the workers is instrumented for the benchmark.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from aiokafka import AIOKafkaConsumer, TopicPartition

from docsight.client import DocsightClient, Outcome, bootstrap_servers, document_event, ensure_topics
from docsight.local_cluster import LocalCluster

APP_ID = "docsight"
PICTURE_TOPIC = f"{APP_ID}-picture-requests"
UPDATES_TOPIC = f"{APP_ID}-document-updates"

# Quiet workers (the benchmark reads topics and /_stats, not logs), at-least-once as on Tansu.
BASE_WORKER_ENV = {
    "DOCSIGHT_LOG_LEVEL": "warning",
    "VISION_ENABLED_FORMATS": "pdf,docx,pptx,xlsx,html,md",
}


def fresh_dir(path: Path) -> Path:
    path = Path(path)
    if path.exists():
        shutil.rmtree(path)
    path.mkdir(parents=True)
    return path


def new_cluster(workdir: Path, env: dict[str, str] | None = None, gemini_config=None) -> LocalCluster:
    """A cluster on a fresh work directory (the embedded broker starts empty, so must the tables)."""
    return LocalCluster(fresh_dir(workdir), env={**BASE_WORKER_ENV, **(env or {})}, gemini_config=gemini_config)


def prepare_topics(cluster: LocalCluster, partitions: int = 6) -> None:
    asyncio.run(ensure_topics(cluster.broker_url, partitions))


def events_for(locations: list[str], prefix: str = "bench") -> list[dict]:
    return [document_event(f"{prefix}-{uuid.uuid4().hex[:12]}", "bench", location) for location in locations]


def submit(cluster: LocalCluster, events: list[dict]) -> float:
    """Send the events; returns the wall time (time.time()) just before the first one."""

    async def run() -> float:
        async with DocsightClient(cluster.broker_url) as client:
            started = time.time()
            for event in events:
                await client.submit(event)
            return started

    return asyncio.run(run())


def submit_and_collect(cluster: LocalCluster, events: list[dict], timeout: float) -> tuple[float, dict[str, Outcome]]:
    """Submit and wait; the outcomes' ``received_at`` is when the benchmark saw them."""

    async def run():
        async with DocsightClient(cluster.broker_url, store_dir=cluster.store_dir) as client:
            started = time.time()
            for event in events:
                await client.submit(event)
            outcomes = await client.collect({e["document_id"] for e in events}, timeout=timeout)
            return started, {o.document_id: o for o in outcomes}

    return asyncio.run(run())


async def read_topic_async(broker_url: str, topic: str, timeout: float = 60.0) -> list[dict]:
    """Every record of ``topic`` from the beginning, as decoded JSON values (undecodable ones skipped)."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap_servers(broker_url), group_id=None,
                                enable_auto_commit=False, auto_offset_reset="earliest",
                                client_id=f"docsight-bench-{uuid.uuid4().hex[:6]}")
    await consumer.start()
    values: list[dict] = []
    try:
        await consumer.topics()  # fetches the cluster's metadata
        partitions = consumer.partitions_for_topic(topic) or set()
        assigned = [TopicPartition(topic, p) for p in sorted(partitions)]
        if not assigned:
            return values
        consumer.assign(assigned)
        await consumer.seek_to_beginning(*assigned)
        deadline = time.monotonic() + timeout
        idle = 0
        # Tansu's ListOffsets can under-report the end of multi-record batches (see the broker
        # notes), so "done" is two empty polls in a row rather than reaching end_offsets.
        while time.monotonic() < deadline and idle < 2:
            batches = await consumer.getmany(timeout_ms=1000, max_records=5000)
            records = [record for batch in batches.values() for record in batch]
            idle = 0 if records else idle + 1
            for record in records:
                try:
                    values.append(json.loads(record.value))
                except (TypeError, ValueError):
                    continue
    finally:
        await consumer.stop()
    return values


def read_topic(broker_url: str, topic: str, timeout: float = 60.0) -> list[dict]:
    return asyncio.run(read_topic_async(broker_url, topic, timeout))


@dataclass(frozen=True)
class PictureTiming:
    document_id: str
    index: int
    requested_at: float  # wall clock, when ingest sent the request
    finished_at: float | None  # wall clock, when describe sent the outcome; None: not yet
    status: str  # described | failed; "" while unfinished
    call_seconds: float  # the describer's time: pacing wait, calls and retries
    attempts: int
    input_tokens: int
    cached: bool

    @property
    def finished(self) -> bool:
        return self.finished_at is not None

    @property
    def latency(self) -> float | None:
        return None if self.finished_at is None else self.finished_at - self.requested_at


def picture_timings(broker_url: str) -> list[PictureTiming]:
    """Every requested picture with its outcome, if any. A redelivered outcome counts once (the first)."""
    requests = {(r.get("document_id"), r.get("picture_index")): r.get("requested_at", 0.0)
                for r in read_topic(broker_url, PICTURE_TOPIC)}
    outcomes: dict[tuple, tuple[float, dict]] = {}
    for update in read_topic(broker_url, UPDATES_TOPIC):
        picture = update.get("picture") if update.get("kind") == "picture" else None
        if picture:
            outcomes.setdefault((update.get("document_id"), picture.get("index")), (update.get("at", 0.0), picture))
    timings = []
    for key, requested_at in requests.items():
        finished_at, picture = outcomes.get(key, (None, {}))
        timings.append(PictureTiming(
            document_id=key[0], index=key[1], requested_at=requested_at, finished_at=finished_at,
            status=picture.get("status", ""), call_seconds=picture.get("latency_seconds", 0.0),
            attempts=picture.get("attempts", 0), input_tokens=picture.get("input_tokens", 0),
            cached=picture.get("cached", False)))
    return timings


def document_timelines(broker_url: str) -> dict[str, dict[str, float]]:
    """document id -> {"received": t, "manifest": t, ...}: when each kind of update was sent (first one)."""
    timelines: dict[str, dict[str, float]] = {}
    for update in read_topic(broker_url, UPDATES_TOPIC):
        kinds = timelines.setdefault(update.get("document_id"), {})
        kinds.setdefault(update.get("kind"), update.get("at", 0.0))
    return timelines


class StatsSampler:
    """Samples ``fn()`` every ``interval`` seconds in a thread: ``[(time.time(), value), ...]``."""

    def __init__(self, fn: Callable[[], dict], interval: float = 0.5) -> None:
        self.fn = fn
        self.interval = interval
        self.samples: list[tuple[float, dict]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="stats-sampler", daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.samples.append((time.time(), self.fn()))
            except Exception:  # noqa: BLE001 - a missed sample is not worth stopping a run for
                pass
            self._stop.wait(self.interval)

    def __enter__(self) -> "StatsSampler":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()


def tokens_in_window(gemini) -> dict:
    """The server's current quota usage summed over models: requests and input tokens in the window."""
    usage = gemini.control().get("quota_usage", {})
    return {"requests": sum(u["requests_in_window"] for u in usage.values()),
            "tokens": sum(u["tokens_in_window"] for u in usage.values())}


def start_workers(cluster: LocalCluster, names: list[str], timeout: float = 120.0, **env: str) -> None:
    """Start several workers at once and wait until each owns partitions (joins overlap: one rebalance)."""
    started = [cluster.start_worker(name, wait=False, **env) for name in names]
    for worker in started:
        cluster.wait_ready(worker, timeout)


def kill_workers(cluster: LocalCluster) -> None:
    """SIGKILL every worker: a benchmark has what it needs, and a graceful stop under backlog takes long."""
    for name in list(cluster.workers):
        cluster.stop_worker(name, kill=True)

"""The load-testing strategy as one run on this machine: four scenarios, each on a fresh local cluster.

1. one large document with 100+ pictures (the per-document caps lifted so every picture is described);
2. many small documents with 5 to 10 pictures each;
3. rate-limit simulation: several times more pictures than the quota allows in a window;
4. API failures: dropped connections, calls that hang past the client timeout, 429s with RetryInfo,
   random 500s and 503s.

Every scenario runs the embedded broker, the local Gemini server (with the
scenario's quota, latency and faults) and worker processes, submits never-seen
pictures (so the description cache absorbs nothing), waits for every outcome
and audits the output topics (docsight.audit): lost and duplicated documents
must be 0. The report gives documents in/out, 429s, calls in the busiest window
against the quota and document latency (submission to outcome, p50/p95).
"""

from __future__ import annotations

import asyncio
import random
import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from docsight.audit import audit_broker
from docsight.benchmarks.figures import percentile
from docsight.benchmarks.workload import markdown_document, noise_png
from docsight.client import DocsightClient, document_event, ensure_topics
from docsight.gemini_server import GeminiServerConfig
from docsight.local_cluster import LocalCluster

BASE_WORKER_ENV = {
    "VISION_ENABLED_FORMATS": "pdf,docx,md",
    "DOCSIGHT_EXTRACTION_PROCESSES": "1",  # two cores: one docling process per worker
    "VISION_RETRY_DEADLINE_SECONDS": "120",
}


@dataclass(frozen=True)
class Scenario:
    number: int
    name: str
    documents: int
    pictures: tuple[int, int]            # per document: at least, at most
    quota_calls: int                     # the API's requests per window (the worker is configured to it)
    window_seconds: float = 60.0
    latency_ms: float = 300.0
    jitter_ms: float = 150.0
    error_rate_500: float = 0.0
    error_rate_503: float = 0.0
    enqueue: tuple = ()                  # forced answers, consumed by the first calls
    worker_env: dict = field(default_factory=dict)

    @property
    def requests_per_minute(self) -> float:
        return self.quota_calls * 60.0 / self.window_seconds


def scenarios(quick: bool) -> list[Scenario]:
    # Tier 1's 1,000 requests a minute for all but the rate-limit scenario; in quick runs that one uses a
    # 10 s window, so three windows' worth of work takes half a minute instead of three.
    return [
        Scenario(1, "one large document", documents=1, pictures=(105, 105) if quick else (150, 150),
                 quota_calls=1000, worker_env={"VISION_MAX_IMAGES_PER_DOCUMENT": "0",
                                               "VISION_SKIP_IF_TOO_MANY_IMAGES": "0"}),
        Scenario(2, "many small documents", documents=12 if quick else 50, pictures=(5, 10), quota_calls=1000),
        Scenario(3, "rate limit: 3x the quota", documents=10 if quick else 30, pictures=(6, 6),
                 quota_calls=20 if quick else 60, window_seconds=10.0 if quick else 60.0),
        Scenario(4, "API failures", documents=8 if quick else 25, pictures=(5, 8), quota_calls=1000,
                 error_rate_500=0.05, error_rate_503=0.05,
                 enqueue=({"kind": "close", "count": 4}, {"kind": "hang", "seconds": 8, "count": 3},
                          {"kind": "429", "retry_delay_s": 2, "count": 6}, {"kind": "503", "count": 3}),
                 worker_env={"VISION_REQUEST_TIMEOUT_SECONDS": "5", "VISION_BREAKER_FAILURES": "8",
                             "VISION_BREAKER_OPEN_SECONDS": "3"}),
    ]


@dataclass
class ScenarioResult:
    number: int
    name: str
    workers: int
    documents_in: int
    documents_out: int = 0
    enriched: int = 0
    failed: int = 0
    lost: int = 0
    duplicates: int = 0                  # outcomes emitted more than once (same or different content)
    doubled_different_content: int = 0
    pictures: int = 0
    described: int = 0
    pictures_failed: int = 0
    pictures_skipped: int = 0
    calls: int = 0
    calls_429: int = 0
    server_errors: int = 0
    connections_dropped: int = 0
    busiest_window_calls: int = 0
    quota_calls: int = 0
    window_seconds: float = 60.0
    busiest_minute_calls: int = 0
    latency_p50: float | None = None
    latency_p95: float | None = None
    wall_seconds: float = 0.0
    failure_reasons: dict = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.lost == 0 and self.duplicates == 0 and self.documents_out == self.documents_in

    def as_dict(self) -> dict:
        return {**asdict(self), "ok": self.ok}


def run_scenario(scenario: Scenario, workdir: Path, workers: int = 2, log=print) -> ScenarioResult:
    if workdir.exists():
        shutil.rmtree(workdir)  # a fresh broker: the workers' tables must start empty too
    env = {**BASE_WORKER_ENV, "VISION_RATE_LIMIT_PER_MINUTE": f"{scenario.requests_per_minute:g}",
           "VISION_QUOTA_WINDOW_SECONDS": f"{scenario.window_seconds:g}", **scenario.worker_env}
    server = GeminiServerConfig(rpm=scenario.quota_calls, window_seconds=scenario.window_seconds,
                                latency_ms=scenario.latency_ms, jitter_ms=scenario.jitter_ms,
                                error_rate_500=scenario.error_rate_500, error_rate_503=scenario.error_rate_503)
    cluster = LocalCluster(workdir, env=env, gemini_config=server)
    rng = random.Random(scenario.number)
    counts = [rng.randint(*scenario.pictures) for _ in range(scenario.documents)]
    locations = [markdown_document(cluster.document_root, [noise_png() for _ in range(count)],
                                   prefix=f"load{scenario.number}") for count in counts]
    pictures = sum(counts)
    result = ScenarioResult(scenario.number, scenario.name, workers, documents_in=len(locations),
                            quota_calls=scenario.quota_calls, window_seconds=scenario.window_seconds)
    with cluster:
        asyncio.run(ensure_topics(cluster.broker_url, partitions=6))
        for number in range(1, workers + 1):
            cluster.start_worker(f"worker{number}", timeout=120)
        if scenario.enqueue:
            cluster.gemini.control({"enqueue": list(scenario.enqueue)})
        cluster.gemini.reset_stats()
        # pacing alone takes pictures / rate; generous room for retries, latency and extraction
        timeout = 120 + 3 * 60 * pictures / scenario.requests_per_minute
        log(f"scenario {scenario.number} ({scenario.name}): {len(locations)} documents, {pictures} pictures, "
            f"{workers} workers, quota {scenario.quota_calls}/{scenario.window_seconds:g}s")
        started = time.monotonic()
        submitted_at, outcomes = asyncio.run(_submit_and_collect(cluster, locations, timeout))
        result.wall_seconds = time.monotonic() - started
        stats = cluster.gemini.stats()
        report = asyncio.run(audit_broker(cluster.broker_url, grace_seconds=0))
    _fill(result, outcomes, submitted_at, stats, report)
    return result


async def _submit_and_collect(cluster: LocalCluster, locations: list[str], timeout: float):
    events = [document_event(f"load-{index:04d}-{Path(location).parent.name}", "loadtest", location)
              for index, location in enumerate(locations)]
    submitted_at = {}
    async with DocsightClient(cluster.broker_url, store_dir=cluster.store_dir) as client:
        for event in events:
            submitted_at[event["document_id"]] = time.time()
            await client.submit(event)
        outcomes = await client.collect(set(submitted_at), timeout=timeout)
    return submitted_at, outcomes


def _fill(result: ScenarioResult, outcomes, submitted_at: dict, stats: dict, report) -> None:
    first = {}
    for outcome in outcomes:
        first.setdefault(outcome.document_id, outcome)
    latencies = []
    reasons: dict[str, int] = {}
    for document_id, outcome in first.items():
        value = outcome.value
        finished = value.get("completed_at") if outcome.enriched else value.get("failed_at")
        latencies.append(finished - submitted_at[document_id])
        if not outcome.enriched:
            result.failed += 1
            reasons[value["reason"]] = reasons.get(value["reason"], 0) + 1
            continue
        result.enriched += 1
        for picture in value["pictures"]:
            result.pictures += 1
            if picture["status"] == "described":
                result.described += 1
            elif picture["status"] == "skipped":
                result.pictures_skipped += 1
            else:
                result.pictures_failed += 1
                reasons[picture["reason"]] = reasons.get(picture["reason"], 0) + 1
    result.documents_out = len(first)
    result.lost = report.lost
    result.duplicates = report.reemitted_same_content + report.doubled_different_content
    result.doubled_different_content = report.doubled_different_content
    result.failure_reasons = reasons
    result.latency_p50 = percentile(latencies, 50)
    result.latency_p95 = percentile(latencies, 95)
    result.calls = stats["calls_received"]
    result.calls_429 = stats["calls_429"]
    result.server_errors = sum(n for code, n in stats["errors_by_code"].items() if code.startswith("5"))
    result.connections_dropped = stats["connections_closed"]
    result.busiest_window_calls = stats["busiest_window"]
    result.busiest_minute_calls = stats["busiest_60s"]


COLUMNS = ("scenario", "workers", "docs in", "docs out", "lost", "dup", "pictures d/f/s", "calls", "429s",
           "5xx", "dropped", "busiest/quota", "p50 s", "p95 s", "wall s")


def render(results: list[ScenarioResult]) -> str:
    rows = [COLUMNS]
    for r in results:
        rows.append((
            f"{r.number}. {r.name}", str(r.workers), str(r.documents_in), str(r.documents_out), str(r.lost),
            str(r.duplicates), f"{r.described}/{r.pictures_failed}/{r.pictures_skipped}", str(r.calls),
            str(r.calls_429), str(r.server_errors), str(r.connections_dropped),
            f"{r.busiest_window_calls}/{r.quota_calls} per {r.window_seconds:g}s",
            _seconds(r.latency_p50), _seconds(r.latency_p95), f"{r.wall_seconds:.1f}"))
    widths = [max(len(row[i]) for row in rows) for i in range(len(COLUMNS))]
    lines = ["  ".join(cell.ljust(width) if i == 0 else cell.rjust(width)
                       for i, (cell, width) in enumerate(zip(row, widths))) for row in rows]
    lines.insert(1, "  ".join("-" * width for width in widths))
    for r in results:
        if r.failure_reasons:
            reasons = ", ".join(f"{reason} {count}" for reason, count in sorted(r.failure_reasons.items()))
            lines.append(f"{r.number}. failures (documents or pictures): {reasons}")
    lines.append("pictures d/f/s: described/failed/skipped; busiest: calls the API admitted in its busiest window")
    verdict = all(r.ok for r in results)
    lines.append("OK: every document out once, none lost, none duplicated" if verdict
                 else "NOT OK: documents lost, duplicated or missing")
    return "\n".join(lines)


def _seconds(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"

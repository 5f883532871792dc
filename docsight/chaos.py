"""``docsight chaos``: kill workers and take the API down while pictures are in flight, then count the losses.

One run, on this machine:

1. a corpus of every format (docsight.benchmarks.chaos_corpus), written once into the work dir;
2. a **baseline**: a fresh cluster (embedded broker, the local Gemini server with a quota and a latency,
   N worker processes) gets the corpus at a steady pace, with no fault; skip it with ``baseline=False``;
3. the **chaos run**: a fresh cluster gets the same corpus at the same pace while, at seeded instants,
   a worker is stopped with SIGKILL (its whole process tree, as when a container dies) or SIGTERM (a
   graceful stop, SIGKILL after 30 s), a replacement starts (on the victim's data dir or a new one,
   seeded), and the Gemini server is stopped and started again on the same port (connections refused
   meanwhile);
4. each run waits for every document's outcome (or until nothing moves for ``stall_seconds``) and ends
   with the conservation audit (docsight.audit) over its broker's topics.

**Kills land while distinct pictures are in flight.** Before each kill the tool polls every worker's
``GET /stats`` (``in_flight``: Gemini calls under way; ``budget.waiting``: pictures queued at the
worker's budget gate). Both count distinct pictures: identical ones meet in one single-flight call
before the gate. The victim is one of the workers with at least one call under way and at least
``min_in_flight`` pictures in flight (seeded choice); it is signalled right after the poll that chose
it. Each kill also records the pictures still pending cluster-wide (pictures expected minus outcomes
of every ``describing`` document, from each worker's ``GET /documents?status=describing&scope=local``).
A kill that found no candidate within ``trigger_timeout`` seconds lands anyway and is flagged.
Outages wait the same way for a Gemini call under way somewhere.

The seed fixes the corpus and the fault plan (instants, signals, data dirs, outage lengths); when
faults land relative to the work still depends on timing.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import signal
import sys
import threading
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from http.client import HTTPException
from pathlib import Path
from typing import Any, Callable

from docsight.audit import AUDITED_TOPICS, TopicRecord, audit, read_records
from docsight.benchmarks.chaos_corpus import FORMATS, MAX_PICTURES, WrittenDocument, plan_corpus, write_corpus
from docsight.benchmarks.figures import percentile

APP_ID = "docsight"
SUBMISSIONS_TOPIC = f"{APP_ID}-document-submissions"
PICTURES_TOPIC = f"{APP_ID}-picture-requests"
UPDATES_TOPIC = f"{APP_ID}-document-updates"
INTERNAL_TOPICS = (SUBMISSIONS_TOPIC, PICTURES_TOPIC, UPDATES_TOPIC)

# The workers of both runs: every format described, one docling process each (two cores for the
# whole cluster), and a short open breaker: outages last seconds, so a probe 5 s later finds the API back.
CHAOS_WORKER_ENV = {
    "VISION_ENABLED_FORMATS": ",".join(FORMATS),
    "DOCSIGHT_EXTRACTION_PROCESSES": "1",
    "VISION_BREAKER_OPEN_SECONDS": "5",
}
SIGTERM_GRACE_SECONDS = 30.0   # then SIGKILL, as Kubernetes' default termination grace period
READY_TIMEOUT_SECONDS = 180.0
SETTLE_SECONDS = 3.0           # after the last outcome: time for a late re-emission to show


def _progress(message: str) -> None:
    print(f"[chaos {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


@dataclass(frozen=True)
class ChaosOptions:
    workers: int = 3
    rounds: int = 3                    # kill rounds
    outages: int = 1                   # Gemini server stops
    documents: int = 30
    duration: float = 90.0             # seconds over which the documents are submitted
    seed: int = 1
    rpm: int = 120                     # the server's quota, and the cluster's budget
    # The quota's window. Shorter than Gemini's 60 s scales the minute down (rpm x window / 60 calls per
    # window) so the budget's hold-off after a kill (request timeout plus a window) fits a short drill.
    window_seconds: float = 60.0
    latency_ms: float = 400.0
    jitter_ms: float = 200.0
    max_pictures: int = MAX_PICTURES
    min_in_flight: int = 1             # distinct pictures in flight at the victim for a kill to land
    outage_seconds: tuple[float, float] = (3.0, 10.0)
    trigger_timeout: float = 60.0
    stall_seconds: float = 60.0
    baseline: bool = True
    workdir: Path = Path("var/chaos")
    worker_env: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        for name in ("workers", "documents", "rpm", "min_in_flight"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1")
        for name in ("rounds", "outages", "max_pictures"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be 0 or more")
        if self.window_seconds <= 0:
            raise ValueError("window_seconds must be positive")
        if self.duration < 0 or self.stall_seconds <= 0:
            raise ValueError("duration must be 0 or more and stall_seconds positive")

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "workdir": str(self.workdir)}


# --- the plan (pure) -------------------------------------------------------------

@dataclass(frozen=True)
class PlannedFault:
    at: float                  # seconds after the first submission, at the earliest
    kind: str                  # kill | outage
    signal: str = ""           # SIGKILL | SIGTERM
    keep_data_dir: bool = False  # the replacement starts on the victim's data dir (its RocksDB tables)
    seconds: float = 0.0       # how long an outage lasts


def plan_faults(rounds: int, outages: int, duration: float, seed: int,
                outage_seconds: tuple[float, float] = (3.0, 10.0)) -> list[PlannedFault]:
    """Kill rounds one in each equal slot of the window (10% to 100% of ``duration``), SIGKILL and SIGTERM
    alternating in a shuffled order (SIGKILL first when odd); outages anywhere in the window."""
    rng = random.Random(f"faults-{seed}")
    start = 0.1 * duration
    end = max(duration, start + 1.0)
    slot = (end - start) / max(rounds, 1)
    signals = ["SIGKILL" if number % 2 == 0 else "SIGTERM" for number in range(rounds)]
    rng.shuffle(signals)
    faults = [PlannedFault(at=round(start + slot * (number + rng.uniform(0.0, 0.8)), 2), kind="kill",
                           signal=signals[number], keep_data_dir=rng.random() < 0.5)
              for number in range(rounds)]
    faults += [PlannedFault(at=round(rng.uniform(start, end), 2), kind="outage",
                            seconds=round(rng.uniform(*outage_seconds), 2)) for _ in range(outages)]
    return sorted(faults, key=lambda fault: fault.at)


def submission_offsets(documents: int, duration: float) -> list[float]:
    """Seconds after the start at which each document is submitted: evenly over ``duration``."""
    return [duration * number / documents for number in range(documents)]


# --- what a run measured (pure) ------------------------------------------------------

@dataclass
class FaultRecord:
    kind: str                       # kill | outage
    at: float                       # seconds after the first submission
    planned_at: float
    signal: str = ""
    victim: str = ""
    victim_in_flight: int = 0       # the victim's Gemini calls under way when it was signalled
    victim_waiting: int = 0         # pictures queued at the victim's budget gate
    cluster_in_flight: int = 0      # Gemini calls under way in the whole cluster
    describing_documents: int = -1  # from the documents lists (-1: no answer)
    pending_pictures: int = -1      # pictures expected minus outcomes in those documents
    landed_in_flight: bool = False  # the trigger condition held (see the module docstring)
    replacement: str = ""
    kept_data_dir: bool = False
    replacement_ready_seconds: float | None = None
    replacement_error: str = ""
    stopped_after_seconds: float | None = None  # SIGTERM: how long the graceful stop took
    forced_after_grace: bool = False
    seconds: float = 0.0            # outage length

    def describe(self) -> str:
        where = (f"{self.describing_documents} documents describing, {self.pending_pictures} pictures pending"
                 if self.describing_documents >= 0 else "documents list unavailable")
        if self.kind == "outage":
            return (f"{self.at:6.1f} s  Gemini server down for {self.seconds:.1f} s with "
                    f"{self.cluster_in_flight} calls under way; {where}")
        replacement = f"{self.replacement} ({'same data dir' if self.kept_data_dir else 'new data dir'})"
        if self.replacement_ready_seconds is not None:
            replacement += f" ready in {self.replacement_ready_seconds:.0f} s"
        if self.replacement_error:
            replacement += f" FAILED: {self.replacement_error}"
        stop = ""
        if self.signal == "SIGTERM" and self.stopped_after_seconds is not None:
            stop = (f", SIGKILL after {SIGTERM_GRACE_SECONDS:.0f} s grace" if self.forced_after_grace
                    else f", stopped in {self.stopped_after_seconds:.1f} s")
        flag = "" if self.landed_in_flight else "  [nothing in flight]"
        return (f"{self.at:6.1f} s  {self.signal} {self.victim} with {self.victim_in_flight} calls under way "
                f"and {self.victim_waiting} queued (cluster {self.cluster_in_flight}); {where}{stop}; "
                f"replacement {replacement}{flag}")


@dataclass
class RunResult:
    label: str                      # baseline | chaos
    workers: int
    documents: int = 0              # submitted
    pictures_planned: int = 0       # in the corpus, shared ones counted in each document
    enriched: int = 0
    failed: int = 0
    lost: int = 0
    doubled: int = 0                # emitted twice with DIFFERENT content
    reemitted: int = 0              # emitted again with the same content
    orphan_outcomes: int = 0
    failure_reasons: dict = field(default_factory=dict)
    pictures_described: int = 0
    pictures_failed: int = 0
    pictures_skipped: int = 0
    pictures_cached: int = 0
    picture_failure_reasons: dict = field(default_factory=dict)
    outcome_p50_seconds: float | None = None   # submission to first outcome
    outcome_p95_seconds: float | None = None
    outcome_max_seconds: float | None = None
    gemini_calls: int = 0
    gemini_calls_ok: int = 0
    gemini_429: int = 0
    gemini_5xx: int = 0
    wall_seconds: float = 0.0       # first submission to the end of the wait
    wait_ended: str = ""            # every outcome in | stalled N s | interrupted
    faults: list = field(default_factory=list)       # FaultRecord
    lost_details: list = field(default_factory=list)
    doubled_details: list = field(default_factory=list)
    lost_ids: list = field(default_factory=list)
    doubled_ids: list = field(default_factory=list)
    reemitted_ids: list = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.lost == 0 and self.doubled == 0

    @property
    def kills(self) -> list[FaultRecord]:
        return [fault for fault in self.faults if fault.kind == "kill"]

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["ok"] = self.ok
        return data


def fill_outcomes(result: RunResult, submitted_at: dict[str, float], outcomes: dict[str, list[dict]],
                  load_blob: Callable[[str], bytes | None] | None = None) -> None:
    """Time to outcome and picture figures from each document's first outcome (read from the blob store when
    it travelled by reference, ``outcome_ref``)."""
    latencies = []
    picture_reasons: Counter = Counter()
    for document_id, started in submitted_at.items():
        seen = outcomes.get(document_id)
        if not seen:
            continue
        first = seen[0]
        value = first["value"]
        finished = value.get("completed_at") if first["topic"] == "document-enriched" else value.get("failed_at")
        if isinstance(finished, (int, float)):
            latencies.append(max(0.0, finished - started))
        if value.get("pictures") is None and value.get("outcome_ref") and load_blob:
            whole = _json(load_blob(value["outcome_ref"]))
            value = whole if isinstance(whole, dict) else value
        for picture in value.get("pictures") or ():
            status = picture.get("status")
            if status == "described":
                result.pictures_described += 1
                result.pictures_cached += bool(picture.get("cached"))
            elif status == "skipped":
                result.pictures_skipped += 1
            else:
                result.pictures_failed += 1
                picture_reasons[str(picture.get("reason", ""))] += 1
    result.picture_failure_reasons = dict(sorted(picture_reasons.items()))
    result.outcome_p50_seconds = percentile(latencies, 50)
    result.outcome_p95_seconds = percentile(latencies, 95)
    result.outcome_max_seconds = max(latencies) if latencies else None


def fill_audit(result: RunResult, report) -> None:
    result.enriched = report.enriched
    result.failed = report.failed
    result.lost = report.lost + report.in_progress  # the run waited as long as anything moved
    result.doubled = report.doubled_different_content
    result.reemitted = report.reemitted_same_content
    result.orphan_outcomes = report.orphan_outcomes
    result.failure_reasons = dict(sorted(report.failure_reasons.items()))
    result.lost_ids = sorted(report.lost_ids + report.in_progress_ids)
    result.doubled_ids = list(report.doubled_ids)
    result.reemitted_ids = list(report.reemitted_ids)


def diagnose_lost(lost_ids: list[str], records: list[TopicRecord], committed: dict[str, int] | None = None,
                  load_blob: Callable[[str], bytes | None] | None = None) -> list[dict[str, Any]]:
    """Where each lost document stopped, from every topic it went through, with partitions and offsets.

    ``records``: document-received and the internal topics (submissions, picture requests, updates).
    ``committed``: the workers' consumer group's committed offsets ("topic/partition" -> next offset to
    read); the record where a document stopped is listed with it, so an offset committed past an
    unprocessed record shows. ``load_blob``: reads the blob store, for a manifest that lists its pictures
    by reference (``pictures_ref``).
    """
    committed = committed or {}
    wanted = set(lost_ids)
    found: dict[str, dict[str, Any]] = {document_id: {
        "received": None, "submission": None, "updates_partition": None, "last_update": None,
        "manifest": None, "picture_outcomes": set(), "requests": {}} for document_id in lost_ids}
    for record in records:
        value = _json(record.value)
        if not isinstance(value, dict) or value.get("document_id") not in wanted:
            continue
        entry = found[value["document_id"]]
        where = f"{record.topic}/{record.partition}/{record.offset}"
        if record.topic == "document-received":
            entry["received"] = entry["received"] or where
        elif record.topic == SUBMISSIONS_TOPIC:
            entry["submission"] = entry["submission"] or where
        elif record.topic == PICTURES_TOPIC:
            entry["requests"].setdefault(value.get("picture_index"), where)
        elif record.topic == UPDATES_TOPIC:
            entry["updates_partition"] = record.partition
            if entry["last_update"] is None or record.offset > int(entry["last_update"].rsplit("/", 1)[1]):
                entry["last_update"] = where
            if value.get("kind") == "manifest" and entry["manifest"] is None:
                entry["manifest"] = value
            elif value.get("kind") == "picture" and isinstance(value.get("picture"), dict):
                entry["picture_outcomes"].add(value["picture"].get("index"))
    details = []
    for document_id in lost_ids:
        entry = found[document_id]
        expected = _manifest_indices(entry["manifest"], load_blob) if entry["manifest"] else None
        if entry["manifest"] and expected is None:  # listed by reference, unreadable: what was requested
            expected = sorted(entry["requests"], key=str)
        missing = [{"index": index, "request": entry["requests"].get(index)}
                   for index in expected or () if index not in entry["picture_outcomes"]]
        if entry["submission"] is None:
            stage, stopped_at = "ingest: never reached docsight-document-submissions", [entry["received"]]
        elif entry["manifest"] is None:
            stage, stopped_at = "extraction: no manifest on docsight-document-updates", [entry["submission"]]
        elif missing:
            never = sum(1 for item in missing if item["request"] is None)
            stage = (f"describe: {len(missing)} of {len(expected)} pictures without an outcome"
                     + (f" ({never} never requested)" if never else ""))
            stopped_at = [item["request"] for item in missing if item["request"]] or [entry["last_update"]]
        else:  # the aggregate's last input for the document
            stage = "aggregate: every picture has an outcome, nothing emitted"
            stopped_at = [entry["last_update"]]
        details.append({
            "document_id": document_id, "stage": stage, "received": entry["received"],
            "submission": entry["submission"], "updates_partition": entry["updates_partition"],
            "pictures": None if expected is None else len(expected), "missing_pictures": missing,
            "missing_picture_partitions": sorted({int(item["request"].split("/")[1]) for item in missing
                                                  if item["request"]}),
            "stopped_at": [{"record": where, "committed": committed.get(where.rsplit("/", 1)[0])}
                           for where in stopped_at if where],
            "view": None,   # the documents table's summary, from a worker's web view, when one answered
        })
    return details


def _manifest_indices(manifest: dict, load_blob) -> list | None:
    """The picture indices a manifest announces (inline, or through ``pictures_ref``); None when unreadable."""
    pictures = manifest.get("pictures") or []
    if not pictures and manifest.get("pictures_ref"):
        data = load_blob(manifest["pictures_ref"]) if load_blob else None
        pictures = _json(data) if data else None
        if not isinstance(pictures, list):
            return None
    return [picture.get("index", number) if isinstance(picture, dict) else number
            for number, picture in enumerate(pictures)]


def diagnose_doubled(doubled_ids: list[str], outcomes: dict[str, list[dict]]) -> list[dict[str, Any]]:
    """For each doubled document: the topics of its outcomes and the fields whose values differ."""
    ignored = {"completed_at", "failed_at"}
    details = []
    for document_id in doubled_ids:
        seen = outcomes.get(document_id, [])
        values = [item["value"] for item in seen]
        fields = sorted({key for value in values for key in value if key not in ignored
                         and any(other.get(key) != value.get(key) for other in values)})
        pictures = sorted({picture.get("index") for value in values for picture in value.get("pictures") or ()
                           if any(_picture(other, picture.get("index")) != picture for other in values)},
                          key=lambda index: (index is None, index))
        details.append({"document_id": document_id, "topics": [item["topic"] for item in seen],
                        "fields_differing": fields, "pictures_differing": pictures})
    return details


def _picture(value: dict, index) -> dict | None:
    return next((p for p in value.get("pictures") or () if p.get("index") == index), None)


def _json(raw: bytes | None) -> Any:
    try:
        return json.loads(raw) if raw else None
    except (UnicodeDecodeError, ValueError):
        return None


async def committed_offsets(broker_url: str, partitions: set[str], group: str = APP_ID) -> dict[str, int]:
    """The group's committed offsets of ``partitions`` ("topic/partition" -> offset; missing when none).

    A consumer that never subscribes only reads them: it does not join the group. (The admin client's
    OffsetFetch does not decode on the embedded Tansu.)
    """
    from aiokafka import AIOKafkaConsumer, TopicPartition

    from docsight.client import bootstrap_servers

    found: dict[str, int] = {}
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap_servers(broker_url), group_id=group,
                                enable_auto_commit=False, client_id="docsight-chaos-offsets")
    try:
        await consumer.start()
        for name in sorted(partitions):
            topic, _, partition = name.rpartition("/")
            offset = await consumer.committed(TopicPartition(topic, int(partition)))
            if offset is not None:
                found[name] = offset
    except Exception:  # noqa: BLE001 - evidence for a report, not a reason to lose the run's figures
        pass
    finally:
        try:
            await consumer.stop()
        except Exception:  # noqa: BLE001
            pass
    return found


def exit_code(results: list[RunResult]) -> int:
    """1 when any run lost or doubled a document, else 0."""
    return 0 if results and all(result.ok for result in results) else 1


ROWS = (
    ("documents submitted", lambda r: str(r.documents)),
    ("enriched", lambda r: str(r.enriched)),
    ("failed", lambda r: str(r.failed)),
    ("LOST", lambda r: str(r.lost)),
    ("DOUBLED (different content)", lambda r: str(r.doubled)),
    ("re-emitted (same content)", lambda r: str(r.reemitted)),
    ("time to outcome p50 s", lambda r: _seconds(r.outcome_p50_seconds)),
    ("time to outcome p95 s", lambda r: _seconds(r.outcome_p95_seconds)),
    ("time to outcome max s", lambda r: _seconds(r.outcome_max_seconds)),
    ("pictures described/failed/skipped", lambda r: f"{r.pictures_described}/{r.pictures_failed}/"
                                                    f"{r.pictures_skipped}"),
    ("pictures from the cache", lambda r: str(r.pictures_cached)),
    ("Gemini calls (ok/429/5xx)", lambda r: f"{r.gemini_calls} ({r.gemini_calls_ok}/{r.gemini_429}/"
                                            f"{r.gemini_5xx})"),
    ("kills / outages", lambda r: f"{len(r.kills)} / {len(r.faults) - len(r.kills)}"),
    ("wall s", lambda r: f"{r.wall_seconds:.0f}"),
    ("wait ended", lambda r: r.wait_ended),
)


def render(results: list[RunResult], options: ChaosOptions | None = None, corpus: str = "") -> str:
    lines = []
    if options is not None:
        lines.append(f"docsight chaos: {options.workers} workers, {options.documents} documents over "
                     f"{options.duration:g} s, {options.rounds} kill rounds, {options.outages} outages, "
                     f"seed {options.seed}, quota {options.rpm} requests/min, latency "
                     f"{options.latency_ms:g}±{options.jitter_ms:g} ms")
    if corpus:
        lines.append(corpus)
    if lines:
        lines.append("")
    width = max(len(label) for label, _ in ROWS)
    columns = [[value(result) for _, value in ROWS] for result in results]
    widths = [max(len(result.label), *(len(cell) for cell in column)) for result, column in zip(results, columns)]
    lines.append(" " * width + "".join(f"  {result.label:>{w}}" for result, w in zip(results, widths)))
    for row, (label, _) in enumerate(ROWS):
        lines.append(f"{label:<{width}}" + "".join(f"  {column[row]:>{w}}" for column, w in zip(columns, widths)))
    for result in results:
        if result.failure_reasons:
            lines.append(f"{result.label}: document failures: "
                         + ", ".join(f"{reason} {count}" for reason, count in result.failure_reasons.items()))
        if result.picture_failure_reasons:
            lines.append(f"{result.label}: picture failures: "
                         + ", ".join(f"{reason} {count}" for reason, count in result.picture_failure_reasons.items()))
        if result.faults:
            lines.append("")
            lines.append(f"{result.label}: faults (seconds after the first submission)")
            lines += [f"  {fault.describe()}" for fault in result.faults]
        for detail in result.lost_details:
            partitions = detail["missing_picture_partitions"]
            lines.append(f"{result.label}: LOST {detail['document_id']}: {detail['stage']}; received "
                         f"{detail['received']}, updates partition {detail['updates_partition']}"
                         + (f", missing pictures on picture-requests partitions {partitions}" if partitions else ""))
            for item in detail["stopped_at"][:5]:
                record, committed = item["record"], item["committed"]
                past = committed is not None and committed > int(record.rsplit("/", 1)[1])
                lines.append(f"    last record {record}: the group's committed offset there is {committed}"
                             + (" (past it)" if past else ""))
            view = detail.get("view")
            if view:
                counts = view.get("pictures") or {}
                lines.append(f"    documents table: status {view.get('status')}, pictures expected "
                             f"{counts.get('expected')}, described {counts.get('described')}, failed "
                             f"{counts.get('failed')}, skipped {counts.get('skipped')}")
        for detail in result.doubled_details:
            lines.append(f"{result.label}: DOUBLED {detail['document_id']}: {' + '.join(detail['topics'])}, "
                         f"fields differing {detail['fields_differing']}, pictures {detail['pictures_differing']}")
    unlanded = [fault for result in results for fault in result.kills if not fault.landed_in_flight]
    if unlanded:
        lines.append(f"WARNING: {len(unlanded)} kills found no picture in flight (raise --documents or --rpm "
                     "load, or lower --duration)")
    lines.append("")
    lines.append("OK: nothing lost, nothing doubled" if exit_code(results) == 0
                 else "NOT OK: documents lost or doubled")
    return "\n".join(lines)


def _seconds(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


# --- processes ---------------------------------------------------------------------

def _process_table() -> dict[int, tuple[int, str]]:
    """pid -> (parent pid, start time) of every process (Linux /proc; empty elsewhere)."""
    table = {}
    try:
        entries = os.listdir("/proc")
    except OSError:
        return table
    for entry in entries:
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as stat:
                fields = stat.read().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        table[int(entry)] = (int(fields[1]), fields[19])
    return table


def process_tree(pid: int) -> list[tuple[int, str]]:
    """The descendants of ``pid`` as (pid, start time): a worker's docling processes and their helpers."""
    table = _process_table()
    children: dict[int, list[int]] = {}
    for child, (parent, _) in table.items():
        children.setdefault(parent, []).append(child)
    found, queue = [], list(children.get(pid, ()))
    while queue:
        child = queue.pop()
        found.append((child, table[child][1]))
        queue += children.get(child, ())
    return found


def kill_tree(processes: list[tuple[int, str]]) -> None:
    """SIGKILL each (pid, start time) still running: the start time keeps a reused pid safe."""
    table = _process_table()
    for pid, started in processes:
        if table.get(pid, (None, None))[1] == started:
            try:
                os.kill(pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass


# --- one run on a cluster ------------------------------------------------------------

class ChaosCluster:
    """A LocalCluster whose Gemini server this class owns (to stop and start it on one port), and which
    remembers every process it started, to kill them all whatever happens."""

    def __init__(self, workdir: Path, document_root: Path, options: ChaosOptions, log) -> None:
        from docsight.broker import free_port
        from docsight.local_cluster import LOCAL_API_KEY, LocalCluster

        self.options = options
        self.log = log
        self.port = free_port()
        env = {**CHAOS_WORKER_ENV, "VISION_RATE_LIMIT_PER_MINUTE": str(options.rpm),
               "VISION_QUOTA_WINDOW_SECONDS": f"{options.window_seconds:g}", **options.worker_env}
        self.cluster = LocalCluster(workdir, document_root=document_root, env=env,
                                    gemini_base_url=f"http://127.0.0.1:{self.port}", gemini_api_key=LOCAL_API_KEY)
        self.gemini = None
        self.gemini_totals: Counter = Counter()
        self.started: list = []           # every WorkerProcess, for the final cleanup
        self.trees: dict[int, list] = {}  # worker pid -> its descendants when last seen
        self.worker_count = 0

    # lifecycle
    def start(self) -> None:
        from docsight.client import ensure_topics

        self.cluster.start()
        self.start_gemini()
        asyncio.run(ensure_topics(self.cluster.broker_url, partitions=6))

    def start_gemini(self, attempts: int = 20) -> None:
        from docsight.gemini_server import GeminiServerConfig, GeminiServerThread

        per_window = max(1, int(self.options.rpm * self.options.window_seconds / 60.0))
        config = GeminiServerConfig(port=self.port, rpm=per_window, window_seconds=self.options.window_seconds,
                                    latency_ms=self.options.latency_ms, jitter_ms=self.options.jitter_ms,
                                    seed=self.options.seed)
        for _ in range(attempts):
            server = GeminiServerThread(config)
            try:
                server.start()
                self.gemini = server
                return
            except RuntimeError:  # the port is still held for a moment after a stop
                server.stop()
                time.sleep(0.5)
        raise RuntimeError(f"the Gemini server could not listen on port {self.port} again")

    def stop_gemini(self) -> None:
        if self.gemini is None:
            return
        server, self.gemini = self.gemini, None
        server.stop()
        stats = server.stats() if server.server is not None else {}
        self.gemini_totals["calls"] += stats.get("calls_received", 0)
        self.gemini_totals["ok"] += stats.get("calls_ok", 0)
        self.gemini_totals["429"] += stats.get("calls_429", 0)
        self.gemini_totals["5xx"] += sum(n for code, n in stats.get("errors_by_code", {}).items()
                                         if code.startswith("5"))

    def gemini_calls(self) -> int:
        server = self.gemini  # an outage may stop it meanwhile
        running = server.stats()["calls_received"] if server is not None else 0
        return self.gemini_totals["calls"] + running

    def stop(self) -> None:
        """Kill every worker (and its docling processes), then the Gemini server and the broker."""
        previous = signal.signal(signal.SIGINT, signal.SIG_IGN) if _main_thread() else None
        try:
            for worker in self.started:
                tree = process_tree(worker.process.pid) if worker.alive() else []
                if worker.alive():
                    worker.process.kill()
                    worker.process.wait()
                kill_tree(tree + self.trees.get(worker.process.pid, []))
            self.cluster.workers.clear()
            self.stop_gemini()
            self.cluster.stop()
        finally:
            if previous is not None:
                signal.signal(signal.SIGINT, previous)

    # workers
    def next_name(self) -> str:
        self.worker_count += 1
        return f"worker{self.worker_count}"

    def start_worker(self, name: str | None = None):
        worker = self.cluster.start_worker(name or self.next_name(), wait=False)
        self.started.append(worker)
        return worker

    def wait_ready(self, worker, timeout: float = READY_TIMEOUT_SECONDS) -> None:
        self.cluster.wait_ready(worker, timeout)
        self.trees[worker.process.pid] = process_tree(worker.process.pid)

    async def ready(self, worker, timeout: float = READY_TIMEOUT_SECONDS) -> None:
        """``wait_ready`` that a Ctrl-C can cancel: each poll is a short request, not one long blocking wait."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not worker.alive():
                raise RuntimeError(f"worker {worker.name} exited (see {worker.log_path})")
            try:
                status, body = await asyncio.to_thread(worker.get_json, "/healthz", 2.0)
                if status == 200 and body.get("assigned_partitions", 0) > 0:
                    self.trees[worker.process.pid] = process_tree(worker.process.pid)
                    return
            except (OSError, ValueError, HTTPException):
                pass
            await asyncio.sleep(0.5)
        raise TimeoutError(f"worker {worker.name} not ready after {timeout:.0f} s (see {worker.log_path})")

    def live_workers(self) -> list:
        return [worker for worker in self.cluster.workers.values() if worker.alive()]


def _main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()


def _worker_load(worker) -> dict[str, int] | None:
    """(calls in flight, pictures waiting at the gate) from a worker's /stats; None when it does not answer."""
    try:
        status, body = worker.get_json("/stats", timeout=1.0)
    except (OSError, ValueError, HTTPException):
        return None
    if status != 200 or not isinstance(body, dict):
        return None
    return {"in_flight": int(body.get("in_flight") or 0),
            "waiting": int((body.get("budget") or {}).get("waiting") or 0)}


def _pending_pictures(workers) -> tuple[int, int]:
    """(documents describing, pictures pending in them) over every worker's own partitions; -1s if none answers."""
    documents = pictures = 0
    answered = False
    for worker in workers:
        try:
            status, body = worker.get_json("/documents?status=describing&scope=local&limit=1000", timeout=2.0)
        except (OSError, ValueError, HTTPException):
            continue
        if status != 200:
            continue
        answered = True
        for summary in body.get("documents", []):
            counts = summary.get("pictures") or {}
            if counts.get("expected") is None:
                continue
            documents += 1
            done = sum(counts.get(kind, 0) for kind in ("described", "failed", "skipped"))
            pictures += max(0, counts["expected"] - done)
    return (documents, pictures) if answered else (-1, -1)


def _blob_reader(store_dir: Path) -> Callable[[str], bytes | None]:
    """Reads the workers' blob store (manifests and outcomes that travel by reference)."""
    from docsight.storage import BlobStore

    store = BlobStore(store_dir)

    def load(digest: str) -> bytes | None:
        try:
            return store.get(digest)
        except Exception:  # noqa: BLE001 - missing or refused: the report says what it could not read
            return None

    return load


def _document_view(workers, document_id: str) -> dict | None:
    """The document's summary in the documents table (GET /documents/{id}, routed to its owner)."""
    from urllib.parse import quote

    for worker in workers:
        try:
            status, body = worker.get_json(f"/documents/{quote(document_id)}", timeout=5.0)
        except (OSError, ValueError, HTTPException):
            continue
        if status in (200, 404):
            return body if status == 200 else {"status": "unknown to the table"}
    return None


class OutcomeCollector:
    """Reads document-enriched and document-failed from the beginning for as long as the run lasts."""

    def __init__(self, broker_url: str) -> None:
        self.broker_url = broker_url
        self.outcomes: dict[str, list[dict]] = {}
        self.count = 0
        self._task: asyncio.Task | None = None
        self._consumer = None

    async def start(self) -> None:
        import uuid

        from aiokafka import AIOKafkaConsumer

        from docsight.client import OUTPUT_TOPICS, bootstrap_servers

        self._consumer = AIOKafkaConsumer(*OUTPUT_TOPICS, bootstrap_servers=bootstrap_servers(self.broker_url),
                                          group_id=None, enable_auto_commit=False, auto_offset_reset="earliest",
                                          client_id=f"docsight-chaos-{uuid.uuid4().hex[:6]}")
        await self._consumer.start()
        self._task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        while True:
            batches = await self._consumer.getmany(timeout_ms=500)
            for records in batches.values():
                for record in records:
                    value = _json(record.value)
                    if isinstance(value, dict):
                        self.outcomes.setdefault(str(value.get("document_id")), []).append(
                            {"topic": record.topic, "value": value, "seen_at": time.time()})
                        self.count += 1

    def settled(self, ids) -> int:
        return sum(1 for document_id in ids if document_id in self.outcomes)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
        if self._consumer is not None:
            await self._consumer.stop()


class Run:
    """One run (baseline or chaos): feed the corpus, inject the planned faults, wait, audit."""

    def __init__(self, label: str, chaos: ChaosCluster, corpus: list[WrittenDocument], options: ChaosOptions,
                 faults: list[PlannedFault], log) -> None:
        self.label = label
        self.chaos = chaos
        self.corpus = corpus
        self.options = options
        self.planned_faults = faults
        self.log = log
        self.rng = random.Random(f"victims-{options.seed}")
        self.submitted_at: dict[str, float] = {}
        self.records: list[FaultRecord] = []
        self.joining: list[asyncio.Task] = []
        self.stopping: list[asyncio.Task] = []   # victims on their way out
        self.t0 = 0.0

    def elapsed(self) -> float:
        return time.monotonic() - self.t0

    async def drive(self) -> tuple[OutcomeCollector, str]:
        collector = OutcomeCollector(self.chaos.cluster.broker_url)
        await collector.start()
        self.t0 = time.monotonic()
        tasks = [asyncio.create_task(self.feed())]
        if self.planned_faults:
            tasks.append(asyncio.create_task(self.inject()))
        try:
            await asyncio.gather(*tasks)
            await self.wait_joining()
            ended = await self.wait_for_outcomes(collector)
            await asyncio.gather(*self.stopping)
        except BaseException:
            for task in tasks + self.joining + self.stopping:
                task.cancel()
            try:  # the broker may be gone already (a Ctrl-C reaches it too)
                await asyncio.wait_for(collector.stop(), 5)
            except (Exception, asyncio.CancelledError):  # noqa: BLE001 - leaving anyway
                pass
            raise
        await collector.stop()
        return collector, ended

    # feeding
    async def feed(self) -> None:
        from docsight.client import DocsightClient, document_event

        offsets = submission_offsets(len(self.corpus), self.options.duration)
        async with DocsightClient(self.chaos.cluster.broker_url) as client:
            for document, offset in zip(self.corpus, offsets):
                await asyncio.sleep(max(0.0, offset - self.elapsed()))
                event = document_event(f"chaos{self.options.seed}-{document.plan.name}", "chaos", document.location)
                self.submitted_at[event["document_id"]] = time.time()
                await client.submit(event)
        self.log(f"{self.label}: {len(self.corpus)} documents submitted in {self.elapsed():.0f} s")

    # faults
    async def inject(self) -> None:
        kills = 0
        for fault in self.planned_faults:
            await asyncio.sleep(max(0.0, fault.at - self.elapsed()))
            if fault.kind == "kill":
                kills += 1
                await self.kill(kills, fault)
            else:
                await self.outage(fault)

    async def sample(self) -> dict[str, dict[str, int]]:
        workers = self.chaos.live_workers()
        loads = await asyncio.gather(*(asyncio.to_thread(_worker_load, worker) for worker in workers))
        return {worker.name: load for worker, load in zip(workers, loads) if load is not None}

    async def wait_for_load(self, chosen: Callable[[dict], list[str]]) -> tuple[list[str], dict, tuple[int, int]]:
        """Poll /stats until ``chosen(loads)`` names candidates or the trigger timeout passes."""
        deadline = time.monotonic() + self.options.trigger_timeout
        pending = (-1, -1)
        pending_checked = 0.0
        while True:
            if time.monotonic() - pending_checked > 1.0:
                pending = await asyncio.to_thread(_pending_pictures, self.chaos.live_workers())
                pending_checked = time.monotonic()
            loads = await self.sample()
            candidates = chosen(loads)
            if candidates or time.monotonic() > deadline:
                return candidates, loads, pending
            await asyncio.sleep(0.1)

    async def kill(self, number: int, fault: PlannedFault) -> None:
        await self.wait_joining()
        ready = {worker.name for worker in self.chaos.live_workers()}
        if not ready:  # every worker crashed on its own: nothing to kill, and the report shows the losses
            self.log(f"{self.label}: round {number}: no live worker to kill")
            return
        minimum = self.options.min_in_flight

        def candidates(loads: dict) -> list[str]:
            return sorted(name for name, load in loads.items() if name in ready and load["in_flight"] >= 1
                          and load["in_flight"] + load["waiting"] >= minimum)

        found, loads, (describing, pending) = await self.wait_for_load(candidates)
        landed = bool(found)
        if not found:  # nothing in flight anywhere: the busiest worker, else any
            found = sorted(ready, key=lambda name: -sum((loads.get(name) or {}).values()))[:1]
        victim_name = self.rng.choice(found)
        victim = self.chaos.cluster.workers.pop(victim_name)
        tree = process_tree(victim.process.pid) or self.chaos.trees.get(victim.process.pid, [])
        signalled = time.monotonic()
        victim.process.send_signal(signal.SIGKILL if fault.signal == "SIGKILL" else signal.SIGTERM)
        if fault.signal == "SIGKILL":
            kill_tree(tree)  # a container's death takes its docling processes too
        load = loads.get(victim_name, {"in_flight": 0, "waiting": 0})
        record = FaultRecord("kill", round(self.elapsed(), 1), fault.at, signal=fault.signal, victim=victim_name,
                             victim_in_flight=load["in_flight"], victim_waiting=load["waiting"],
                             cluster_in_flight=sum(item["in_flight"] for item in loads.values()),
                             describing_documents=describing, pending_pictures=pending, landed_in_flight=landed,
                             kept_data_dir=fault.keep_data_dir)
        self.records.append(record)
        stopped = asyncio.create_task(self.reap(victim, tree, record, signalled))
        self.stopping.append(stopped)
        if fault.keep_data_dir:
            await stopped  # one process at a time on a RocksDB data dir
            name = victim_name
        else:
            name = None
        replacement = self.chaos.start_worker(name)
        record.replacement = replacement.name
        self.log(f"{self.label}: round {number}: {record.describe()}")
        self.joining.append(asyncio.create_task(self.join(replacement, record)))

    async def reap(self, victim, tree, record: FaultRecord, signalled: float) -> None:
        # polled, not a blocking wait in a thread: a Ctrl-C must not wait for the grace period
        while victim.process.poll() is None:
            if time.monotonic() - signalled > SIGTERM_GRACE_SECONDS:
                record.forced_after_grace = True
                victim.process.kill()
            await asyncio.sleep(0.1)
        record.stopped_after_seconds = round(time.monotonic() - signalled, 1)
        kill_tree(tree)

    async def join(self, worker, record: FaultRecord) -> None:
        started = time.monotonic()
        try:
            await self.chaos.ready(worker)
        except (RuntimeError, TimeoutError) as error:
            record.replacement_error = str(error).splitlines()[0]
            self.log(f"{self.label}: replacement {worker.name} did not start ({record.replacement_error}); "
                     "starting a fresh one")
            self.chaos.cluster.workers.pop(worker.name, None)
            if worker.alive():
                worker.process.kill()
            fresh = self.chaos.start_worker()
            record.replacement += f", then {fresh.name}"
            await self.chaos.ready(fresh)
        record.replacement_ready_seconds = round(time.monotonic() - started, 1)

    async def wait_joining(self) -> None:
        joining, self.joining = self.joining, []
        if joining:
            await asyncio.gather(*joining)

    async def outage(self, fault: PlannedFault) -> None:
        def anywhere(loads: dict) -> list[str]:
            return [name for name, load in loads.items() if load["in_flight"] >= 1]

        found, loads, (describing, pending) = await self.wait_for_load(anywhere)
        await asyncio.to_thread(self.chaos.stop_gemini)
        record = FaultRecord("outage", round(self.elapsed(), 1), fault.at, seconds=fault.seconds,
                             cluster_in_flight=sum(item["in_flight"] for item in loads.values()),
                             describing_documents=describing, pending_pictures=pending, landed_in_flight=bool(found))
        self.records.append(record)
        self.log(f"{self.label}: {record.describe()}")
        await asyncio.sleep(fault.seconds)
        await asyncio.to_thread(self.chaos.start_gemini)
        self.log(f"{self.label}: Gemini server back on port {self.chaos.port}")

    # the end
    async def wait_for_outcomes(self, collector: OutcomeCollector) -> str:
        ids = set(self.submitted_at)
        last_progress = time.monotonic()
        last_seen = (-1, -1)
        last_report = 0.0
        while True:
            settled = collector.settled(ids)
            if settled == len(ids):
                await asyncio.sleep(SETTLE_SECONDS)
                return "every outcome in"
            seen = (collector.count, await asyncio.to_thread(self.chaos.gemini_calls))
            if seen != last_seen:
                last_seen, last_progress = seen, time.monotonic()
            if time.monotonic() - last_report > 15:
                self.log(f"{self.label}: {settled}/{len(ids)} documents out, {seen[1]} Gemini calls")
                last_report = time.monotonic()
            if time.monotonic() - last_progress > self.options.stall_seconds:
                return f"stalled {self.options.stall_seconds:g} s"
            await asyncio.sleep(0.5)


def run_once(label: str, corpus: list[WrittenDocument], document_root: Path, options: ChaosOptions,
             faults: list[PlannedFault], log=_progress) -> RunResult:
    """One run on a fresh cluster in ``workdir/label``; every process it starts is gone when it returns."""
    from docsight.benchmarks.cluster import fresh_dir

    chaos = ChaosCluster(fresh_dir(Path(options.workdir).resolve() / label), document_root, options, log)
    result = RunResult(label, options.workers, pictures_planned=sum(d.plan.pictures for d in corpus))
    try:
        chaos.start()
        workers = [chaos.start_worker() for _ in range(options.workers)]
        log(f"{label}: broker {chaos.cluster.broker_url}, Gemini on port {chaos.port}, starting "
            f"{options.workers} workers")
        for worker in workers:
            chaos.wait_ready(worker)
        run = Run(label, chaos, corpus, options, faults, log)
        started = time.monotonic()
        try:
            collector, result.wait_ended = asyncio.run(run.drive())
        finally:
            result.faults = run.records
        result.wall_seconds = round(time.monotonic() - started, 1)
        chaos.stop_gemini()
        result.gemini_calls = chaos.gemini_totals["calls"]
        result.gemini_calls_ok = chaos.gemini_totals["ok"]
        result.gemini_429 = chaos.gemini_totals["429"]
        result.gemini_5xx = chaos.gemini_totals["5xx"]
        records = asyncio.run(read_records(chaos.cluster.broker_url, AUDITED_TOPICS + INTERNAL_TOPICS))
        report = audit([r for r in records if r.topic in AUDITED_TOPICS], grace_seconds=0)
        result.documents = len(run.submitted_at)
        fill_audit(result, report)
        load_blob = _blob_reader(chaos.cluster.store_dir)
        fill_outcomes(result, run.submitted_at, collector.outcomes, load_blob)
        result.lost_details = diagnose_lost(result.lost_ids, records, load_blob=load_blob)
        stopped_in = {item["record"].rsplit("/", 1)[0] for d in result.lost_details for item in d["stopped_at"]}
        if stopped_in:
            committed = asyncio.run(committed_offsets(chaos.cluster.broker_url, stopped_in))
            result.lost_details = diagnose_lost(result.lost_ids, records, committed, load_blob)
        for detail in result.lost_details:
            detail["view"] = _document_view(chaos.live_workers(), detail["document_id"])
        result.doubled_details = diagnose_doubled(result.doubled_ids, collector.outcomes)
        log(f"{label}: audit: {result.enriched} enriched, {result.failed} failed, {result.lost} lost, "
            f"{result.doubled} doubled, {result.reemitted} re-emitted ({result.wait_ended})")
        return result
    finally:
        chaos.stop()


@dataclass
class ChaosReport:
    options: ChaosOptions
    chaos: RunResult
    baseline: RunResult | None = None
    corpus: dict = field(default_factory=dict)

    @property
    def results(self) -> list[RunResult]:
        return [result for result in (self.baseline, self.chaos) if result is not None]

    def render(self) -> str:
        corpus = (f"corpus: {self.corpus['documents']} documents ({self.corpus['by_format']}), "
                  f"{self.corpus['pictures']} pictures, {self.corpus['distinct_own']} distinct of their own, "
                  f"{self.corpus['shared_pool']} shared ones in {self.corpus['documents_with_shared']} documents")
        return render(self.results, self.options, corpus)

    def as_dict(self) -> dict[str, Any]:
        return {"options": self.options.as_dict(), "corpus": self.corpus,
                "baseline": self.baseline.as_dict() if self.baseline else None,
                "chaos": self.chaos.as_dict(), "ok": exit_code(self.results) == 0}

    @property
    def exit_code(self) -> int:
        return exit_code(self.results)


def run_chaos(options: ChaosOptions, log=_progress) -> ChaosReport:
    """The baseline (unless ``options.baseline`` is off), then the chaos run, on one corpus."""
    from docsight.benchmarks.cluster import fresh_dir

    workdir = Path(options.workdir).resolve()
    plan = plan_corpus(options.documents, options.seed, options.max_pictures)
    corpus_root = fresh_dir(workdir / "corpus")
    corpus = write_corpus(corpus_root, plan, options.seed)
    summary = {
        "documents": len(plan), "pictures": sum(p.pictures for p in plan),
        "distinct_own": sum(len(p.distinct) for p in plan),
        "shared_pool": len({n for p in plan for n in p.shared}),
        "documents_with_shared": sum(1 for p in plan if p.shared),
        "by_format": ", ".join(f"{fmt} {sum(1 for p in plan if p.format == fmt)}" for fmt in FORMATS),
    }
    faults = plan_faults(options.rounds, options.outages, options.duration, options.seed, options.outage_seconds)
    log(f"corpus: {summary['documents']} documents, {summary['pictures']} pictures in {corpus_root}; "
        f"faults planned: " + ", ".join(f"{f.kind}{'/' + f.signal if f.signal else ''}@{f.at:g}s" for f in faults))
    baseline = run_once("baseline", corpus, corpus_root, options, [], log) if options.baseline else None
    chaos = run_once("chaos", corpus, corpus_root, options, faults, log)
    return ChaosReport(options, chaos, baseline, summary)

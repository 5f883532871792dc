"""Conservation audit: every received document ends in exactly one outcome, emitted once.

``audit()`` is pure: it takes the records of ``document-received``,
``document-enriched`` and ``document-failed`` (as :class:`TopicRecord`) and
says, for every submission (one ``document-received`` record), whether it was
enriched, failed, rejected as a duplicate id, is still in progress, or is lost;
and which outcomes were emitted twice with the same content (a harmless
re-emission after a crash) or with different content (a bug).

Matching rules (see docs/guarantees.md):

- a ``document-failed`` record belongs to the submission whose text equals its
  ``original`` (every failure carries the received event as text), which also
  covers events without a usable ``document_id``;
- a ``duplicate_document_id`` failure is the fate of a second submission of an
  id, not the document's outcome: the first submission's outcome is;
- a ``document-enriched`` record belongs to a submission of its ``document_id``
  that has no failure of its own; an id is enriched at most once;
- content is compared without the emission time (``completed_at``,
  ``failed_at``), which a re-emission sets anew.

``read_records()`` is the one function that talks to a broker.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections import Counter, defaultdict, deque
from dataclasses import dataclass, field
from typing import Any, Iterable

RECEIVED_TOPIC = "document-received"
ENRICHED_TOPIC = "document-enriched"
FAILED_TOPIC = "document-failed"
AUDITED_TOPICS = (RECEIVED_TOPIC, ENRICHED_TOPIC, FAILED_TOPIC)
DUPLICATE_REASON = "duplicate_document_id"
DEFAULT_GRACE_SECONDS = 600.0
# set anew by every emission: a re-emission of the same result differs only there
EMISSION_TIME_FIELDS = {ENRICHED_TOPIC: "completed_at", FAILED_TOPIC: "failed_at"}


@dataclass(frozen=True)
class TopicRecord:
    topic: str
    partition: int
    offset: int
    timestamp: float          # seconds since the epoch (the record's timestamp)
    value: bytes | None


@dataclass
class _Submission:
    record: TopicRecord
    text: str
    document_id: str | None
    fate: str | None = None   # enriched | failed | duplicate; None while it has no outcome
    outcome: "_Output | None" = None


@dataclass
class _Output:
    record: TopicRecord
    document_id: str | None
    value: dict[str, Any]
    fingerprint: str

    @property
    def is_duplicate_rejection(self) -> bool:
        return self.record.topic == FAILED_TOPIC and self.value.get("reason") == DUPLICATE_REASON


@dataclass
class AuditReport:
    submissions: int = 0              # document-received events
    documents: int = 0                # distinct document ids among them
    enriched: int = 0
    failed: int = 0                   # the document's own outcome was a failure
    duplicates_rejected: int = 0      # later submissions of a known id
    in_progress: int = 0              # no outcome yet, younger than the grace period
    lost: int = 0                     # no outcome after the grace period
    reemitted_same_content: int = 0   # harmless: the same result emitted again
    doubled_different_content: int = 0  # a second, different outcome for one document
    orphan_outcomes: int = 0          # outcomes that match no received event
    unreadable_outputs: int = 0       # output records that are not JSON objects
    grace_seconds: float = DEFAULT_GRACE_SECONDS
    failure_reasons: Counter = field(default_factory=Counter)
    lost_ids: list = field(default_factory=list)
    in_progress_ids: list = field(default_factory=list)
    doubled_ids: list = field(default_factory=list)
    reemitted_ids: list = field(default_factory=list)
    orphan_ids: list = field(default_factory=list)
    fates: dict = field(default_factory=dict)  # document id -> the fate of each of its submissions

    @property
    def ok(self) -> bool:
        """Nothing lost, nothing doubled with different content."""
        return self.lost == 0 and self.doubled_different_content == 0

    def to_dict(self) -> dict[str, Any]:
        data = {name: getattr(self, name) for name in self.__dataclass_fields__ if name != "fates"}
        data["failure_reasons"] = dict(sorted(self.failure_reasons.items()))
        data["ok"] = self.ok
        return data

    def render(self, show: int = 10) -> str:
        rows = [
            ("received events", self.submissions),
            ("documents (distinct ids)", self.documents),
            ("enriched", self.enriched),
            ("failed", self.failed),
            ("duplicate ids rejected", self.duplicates_rejected),
            ("in progress", self.in_progress),
            (f"lost (no outcome after {self.grace_seconds:g} s)", self.lost),
            ("re-emitted, same content (harmless)", self.reemitted_same_content),
            ("emitted twice, DIFFERENT content", self.doubled_different_content),
            ("outcomes without a received event", self.orphan_outcomes),
            ("unreadable output records", self.unreadable_outputs),
        ]
        width = max(len(label) for label, _ in rows)
        lines = [f"{label:<{width}}  {value:>7}" for label, value in rows]
        if self.failure_reasons:
            reasons = ", ".join(f"{reason} {count}" for reason, count in sorted(self.failure_reasons.items()))
            lines.append(f"{'failure reasons':<{width}}  {reasons}")
        for title, ids in (("LOST", self.lost_ids), ("DOUBLED", self.doubled_ids),
                           ("in progress", self.in_progress_ids), ("re-emitted", self.reemitted_ids),
                           ("orphan outcome", self.orphan_ids)):
            for document_id in ids[:show]:
                lines.append(f"{title}: {document_id}")
            if len(ids) > show:
                lines.append(f"{title}: ... {len(ids) - show} more")
        lines.append("OK: nothing lost, nothing doubled" if self.ok else "NOT OK: documents lost or doubled")
        return "\n".join(lines)


def known_document_id(value: bytes | None) -> str | None:
    """The document id a received event names, as the ingest agent reads it (None if it names none)."""
    try:
        data = json.loads(value) if value else None
    except (UnicodeDecodeError, json.JSONDecodeError):
        return None
    document_id = data.get("document_id") if isinstance(data, dict) else None
    return document_id if isinstance(document_id, str) and document_id else None


def received_text(value: bytes | None) -> str:
    """The received event as text, exactly as document-failed's ``original`` carries it."""
    return value.decode("utf-8", errors="replace") if value else ""


def content_fingerprint(topic: str, value: dict[str, Any]) -> str:
    """A digest of an outcome's content without its emission time."""
    ignored = EMISSION_TIME_FIELDS.get(topic)
    content = {key: item for key, item in value.items() if key != ignored}
    return hashlib.sha256(json.dumps(content, sort_keys=True, default=str).encode()).hexdigest()


def audit(records: Iterable[TopicRecord], now: float | None = None,
          grace_seconds: float = DEFAULT_GRACE_SECONDS) -> AuditReport:
    """Account for every submission in ``records`` (the three audited topics, any order)."""
    now = time.time() if now is None else now
    report = AuditReport(grace_seconds=grace_seconds)
    submissions: list[_Submission] = []
    outputs: list[_Output] = []
    for record in records:
        if record.topic == RECEIVED_TOPIC:
            submissions.append(_Submission(record, received_text(record.value), known_document_id(record.value)))
        elif record.topic in (ENRICHED_TOPIC, FAILED_TOPIC):
            output = _parse_output(record)
            if output is None:
                report.unreadable_outputs += 1
            else:
                outputs.append(output)
    submissions.sort(key=lambda s: (s.record.timestamp, s.record.partition, s.record.offset))
    outputs.sort(key=lambda o: (o.record.timestamp, o.record.topic, o.record.partition, o.record.offset))

    failures_by_text: dict[str, deque[_Output]] = defaultdict(deque)
    enriched_by_id: dict[str, deque[_Output]] = defaultdict(deque)
    for output in outputs:
        if output.record.topic == FAILED_TOPIC:
            failures_by_text[str(output.value.get("original", ""))].append(output)
        elif output.document_id:
            enriched_by_id[output.document_id].append(output)

    # 1. every failure goes to the submission whose text it carries
    for submission in submissions:
        queue = failures_by_text.get(submission.text)
        if queue:
            _settle(submission, queue.popleft())
    # 2. a failure whose original matches no text still names its document
    leftover_failures = [f for queue in failures_by_text.values() for f in queue if not f.is_duplicate_rejection]
    pending_by_id: dict[str, deque[_Submission]] = defaultdict(deque)
    for submission in submissions:
        if submission.fate is None and submission.document_id:
            pending_by_id[submission.document_id].append(submission)
    unmatched: list[_Output] = [f for queue in failures_by_text.values() for f in queue if f.is_duplicate_rejection]
    for failure in leftover_failures:
        pending = pending_by_id.get(failure.document_id or "")
        if pending:
            _settle(pending.popleft(), failure)
        else:
            unmatched.append(failure)
    # 3. an id is enriched once, by one of its submissions that did not fail
    for document_id, queue in enriched_by_id.items():
        pending = pending_by_id.get(document_id)
        if pending:
            _settle(pending.popleft(), queue.popleft())
        unmatched.extend(queue)

    # 4. outcomes left over: re-emissions, doubles or orphans
    settled_by_id: dict[str, list[_Submission]] = defaultdict(list)
    settled_by_text: dict[str, list[_Submission]] = defaultdict(list)
    for submission in submissions:
        if submission.fate is not None:
            settled_by_text[submission.text].append(submission)
            if submission.document_id:
                settled_by_id[submission.document_id].append(submission)
    doubled: set[str] = set()
    reemitted: set[str] = set()
    for output in unmatched:
        if output.record.topic == FAILED_TOPIC:
            owners = settled_by_text.get(str(output.value.get("original", "")), [])
        else:  # an enrichment answers the id's own outcome, never a duplicate's rejection
            owners = [s for s in settled_by_id.get(output.document_id or "", []) if s.fate != "duplicate"]
        label = output.document_id or "(no id)"
        if not owners:
            report.orphan_outcomes += 1
            report.orphan_ids.append(label)
        elif any(o.outcome.fingerprint == output.fingerprint for o in owners):
            report.reemitted_same_content += 1
            reemitted.add(label)
        else:
            report.doubled_different_content += 1
            doubled.add(label)

    for submission in submissions:
        label = submission.document_id or "(no id)"
        fate = submission.fate
        if fate == "enriched":
            report.enriched += 1
        elif fate == "failed":
            report.failed += 1
            reason = str(submission.outcome.value.get("reason", ""))
            report.failure_reasons[reason] += 1
            fate = f"failed:{reason}"
        elif fate == "duplicate":
            report.duplicates_rejected += 1
        elif now - submission.record.timestamp > grace_seconds:
            fate = "lost"
            report.lost += 1
            report.lost_ids.append(label)
        else:
            fate = "in_progress"
            report.in_progress += 1
            report.in_progress_ids.append(label)
        if submission.document_id:
            report.fates.setdefault(submission.document_id, []).append(fate)
    report.submissions = len(submissions)
    report.documents = len({s.document_id for s in submissions if s.document_id})
    report.doubled_ids = sorted(doubled)
    report.reemitted_ids = sorted(reemitted)
    return report


def _settle(submission: _Submission, output: _Output) -> None:
    if output.record.topic == ENRICHED_TOPIC:
        submission.fate = "enriched"
    else:
        submission.fate = "duplicate" if output.is_duplicate_rejection else "failed"
    submission.outcome = output


def _parse_output(record: TopicRecord) -> _Output | None:
    try:
        value = json.loads(record.value) if record.value else None
    except (UnicodeDecodeError, json.JSONDecodeError):
        return None
    if not isinstance(value, dict):
        return None
    document_id = value.get("document_id")
    return _Output(record, document_id if isinstance(document_id, str) else None, value,
                   content_fingerprint(record.topic, value))


# --- reading the topics -------------------------------------------------------

async def read_records(broker_url: str, topics: Iterable[str] = AUDITED_TOPICS,
                       timeout: float = 60.0) -> list[TopicRecord]:
    """Every record of ``topics`` up to their current end (a missing topic reads as empty).

    The end is the later of ListOffsets and the fetch high watermark: on the
    embedded Tansu, ListOffsets(latest) undercounts partitions written in
    multi-record batches (shared/notes/embedded-broker.md).
    """
    from aiokafka import AIOKafkaConsumer, TopicPartition

    from docsight.broker import kafka_security
    from docsight.client import bootstrap_servers

    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap_servers(broker_url), group_id=None,
                                enable_auto_commit=False, auto_offset_reset="earliest",
                                client_id="docsight-audit", **kafka_security())
    records: list[TopicRecord] = []
    try:
        await consumer.start()
        existing = await consumer.topics()
        partitions = [TopicPartition(topic, partition) for topic in topics if topic in existing
                      for partition in sorted(consumer.partitions_for_topic(topic) or ())]
        if not partitions:
            return records
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        ends = await consumer.end_offsets(partitions)
        deadline = time.monotonic() + timeout
        while True:
            batches = await consumer.getmany(*partitions, timeout_ms=300)
            for tp, batch in batches.items():
                records.extend(TopicRecord(r.topic, r.partition, r.offset, r.timestamp / 1000.0, r.value)
                               for r in batch)
            if not batches and all([await _at_end(consumer, tp, ends[tp]) for tp in partitions]):
                break
            if time.monotonic() > deadline:
                raise TimeoutError(f"could not read {', '.join(topics)} to their end within {timeout:.0f} s")
    finally:
        await consumer.stop()
    return records


async def _at_end(consumer, tp, listed_end: int) -> bool:
    highwater = consumer.highwater(tp)
    position = await consumer.position(tp)
    return highwater is not None and position >= max(listed_end, highwater)


async def audit_broker(broker_url: str, grace_seconds: float = DEFAULT_GRACE_SECONDS,
                       now: float | None = None) -> AuditReport:
    records = await read_records(broker_url)
    return audit(records, now=now, grace_seconds=grace_seconds)

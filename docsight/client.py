"""Talk to a docsight cluster from outside: submit documents, read their outcomes.

Used by the CLI (demo, submit), the tests and the benchmarks; any Kafka
client speaking the JSON schemas in the README can do the same.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError

from docsight.broker import bootstrap_servers, kafka_security

INPUT_TOPIC = "document-received"
OUTPUT_TOPICS = ("document-enriched", "document-failed")


def document_event(document_id: str, user_id: str, location: str, content_type: str | None = None) -> dict:
    return {
        "document_id": document_id,
        "user_id": user_id,
        "location": location,
        "content_type": content_type,
        "submitted_at": datetime.now(timezone.utc).isoformat(),
    }


async def ensure_topics(broker_url: str, partitions: int) -> None:
    """Create the input and output topics with their partitions if they do not exist yet.

    Without this, a producer that comes first would let the broker create
    document-received with its default partition count.
    """
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap_servers(broker_url), **kafka_security())
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        wanted = [NewTopic(name, partitions, 1) for name in (INPUT_TOPIC, *OUTPUT_TOPICS) if name not in existing]
        if wanted:
            try:
                await admin.create_topics(wanted)
            except TopicAlreadyExistsError:
                pass
    finally:
        await admin.close()


class OutcomeUnavailable(Exception):
    """An outcome travelled by reference and this machine cannot read it from the blob store."""


def full_outcome(value: dict, store_dir) -> dict:
    """A document-enriched value with its markdown and pictures inline.

    An outcome over the broker's message limit travels whole in the blob store (``outcome_ref``), and
    markdown above 512 KiB by ``markdown_ref``: both are read from ``store_dir`` (the workers'
    DOCSIGHT_STORE_DIR as a path, or their ``settings.store_location``, e.g. an S3 bucket). Any other
    value is returned as it is.
    """
    outcome_ref = value.get("outcome_ref")
    if not outcome_ref and (value.get("markdown") is not None or not value.get("markdown_ref")):
        return value
    from docsight.storage import BlobNotFound, BlobStore, StoreLocation, open_store

    if isinstance(store_dir, StoreLocation) and store_dir.scheme != "file":
        store = open_store(store_dir)  # an object store (DOCSIGHT_STORE_URL): the same from every machine
        root = store.location
    else:
        root = store_dir.path if isinstance(store_dir, StoreLocation) else Path(store_dir) if store_dir else None
        if root is None or not root.is_dir():
            raise OutcomeUnavailable(
                f"document {value.get('document_id')}: its outcome is in the workers' blob store "
                f"(DOCSIGHT_STORE_DIR), which is not at {root or 'an unset path'} on this machine")
        store = BlobStore(root)
    try:
        full = json.loads(store.get(outcome_ref)) if outcome_ref else dict(value)
        if full.get("markdown") is None and full.get("markdown_ref"):
            full["markdown"] = store.get_text(full["markdown_ref"])
    except BlobNotFound as missing:
        raise OutcomeUnavailable(f"document {value.get('document_id')}: blob {missing} is not in the store at "
                                 f"{root} (DOCSIGHT_STORE_DIR)") from None
    full["outcome_ref"] = outcome_ref
    return full


@dataclass
class Outcome:
    topic: str                    # document-enriched | document-failed
    document_id: str | None
    value: dict
    received_at: float

    @property
    def enriched(self) -> bool:
        return self.topic == "document-enriched"


class DocsightClient:
    def __init__(self, broker_url: str, store_dir: Path | str | None = None) -> None:
        """``store_dir``: the workers' blob store; when given, outcomes sent by reference are read in full."""
        self.servers = bootstrap_servers(broker_url)
        self.store_dir = store_dir
        self._producer: AIOKafkaProducer | None = None

    async def __aenter__(self) -> "DocsightClient":
        self._producer = AIOKafkaProducer(bootstrap_servers=self.servers, acks="all", max_batch_size=16384,
                                          **kafka_security())
        await self._producer.start()
        return self

    async def __aexit__(self, *exc) -> None:
        await self._producer.stop()

    async def submit(self, event: dict) -> None:
        await self.submit_raw(event.get("document_id"), json.dumps(event).encode())

    async def submit_raw(self, key: str | None, payload: bytes) -> None:
        """Send any payload as-is (the tests send malformed ones)."""
        await self._producer.send_and_wait(INPUT_TOPIC, payload, key=key.encode() if key else None)

    async def collect(self, document_ids: set[str] | None = None, count: int | None = None,
                      timeout: float = 120.0, from_beginning: bool = True) -> list[Outcome]:
        """Read outcomes (of ``document_ids`` only, when given) until each of those ids has one, or until
        ``count`` outcomes when given, or until the timeout."""
        consumer = AIOKafkaConsumer(
            *OUTPUT_TOPICS, bootstrap_servers=self.servers, group_id=None, enable_auto_commit=False,
            auto_offset_reset="earliest" if from_beginning else "latest",
            group_instance_id=None, client_id=f"docsight-client-{uuid.uuid4().hex[:8]}", **kafka_security())
        await consumer.start()
        outcomes: list[Outcome] = []
        seen: set[str] = set()
        deadline = time.monotonic() + timeout
        try:
            while time.monotonic() < deadline:
                if count is None and document_ids is not None and document_ids <= seen:
                    break
                if count is not None and len(outcomes) >= count:
                    break
                batches = await consumer.getmany(timeout_ms=500)
                for records in batches.values():
                    for record in records:
                        value = json.loads(record.value)
                        outcome = Outcome(record.topic, value.get("document_id"), value, time.time())
                        if document_ids is None or outcome.document_id in document_ids:
                            if self.store_dir is not None and outcome.enriched:
                                outcome.value = full_outcome(value, self.store_dir)
                            outcomes.append(outcome)
                            seen.add(outcome.document_id)
        finally:
            await consumer.stop()
        return outcomes


def new_document_id() -> str:
    return uuid.uuid4().hex


async def wait_for(predicate, timeout: float, interval: float = 0.2) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if await predicate():
            return True
        await asyncio.sleep(interval)
    return False

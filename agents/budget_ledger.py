"""The budget ledger on Kafka: a one-partition topic every worker appends to and reads from the beginning.

The pure rules are in ``docsight.vision.day_ledger``; this is only the log. Records are appended
one at a time and each waits for its acknowledgement (acks=all), so every record is its own batch:
the embedded broker's end offsets are right only for single-record batches (shared notes,
embedded-broker.md), and ``read_as_of`` relies on them.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from typing import Callable

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaError, TopicAlreadyExistsError

from docsight.broker import bootstrap_servers, kafka_security
from docsight.vision.day_ledger import BudgetLedger

log = logging.getLogger(__name__)

POLL_SECONDS = 0.25
# a day's records are needed for that day only; a week on a real Kafka is plenty
RETENTION_MS = 7 * 24 * 3600 * 1000


class KafkaLedgerLog:
    """``LedgerLog`` on a Kafka topic: ``run()`` follows it for the worker's lifetime."""

    def __init__(self, broker_url: str | None, topic: str, on_progress: Callable[[], None] | None = None,
                 wall_clock: Callable[[], float] = time.time) -> None:
        self.ledger = BudgetLedger()
        self.topic = topic
        self._servers = bootstrap_servers(broker_url or "kafka://localhost:9092")
        self._partition = TopicPartition(topic, 0)
        self._on_progress = on_progress
        self._wall = wall_clock
        self._producer: AIOKafkaProducer | None = None
        self._consumer: AIOKafkaConsumer | None = None
        self._append_lock = asyncio.Lock()
        self._progress = asyncio.Event()
        self._poke = asyncio.Event()
        self._started = asyncio.Event()
        self._read_as_of: float | None = None

    # ---- LedgerLog ------------------------------------------------------------

    async def append(self, record: dict) -> int:
        await self._started.wait()
        async with self._append_lock:  # one record in flight: one record per batch
            metadata = await self._producer.send_and_wait(
                self.topic, json.dumps(record).encode(), key=str(record.get("worker", "")).encode())
        self._poke.set()
        return metadata.offset

    async def read_through(self, offset: int) -> None:
        while self.ledger.position < offset:
            progress = self._progress
            self._poke.set()
            await progress.wait()

    def read_as_of(self) -> float | None:
        return self._read_as_of

    # ---- following the topic ------------------------------------------------------

    async def _start(self) -> None:
        await self._ensure_topic()
        self._producer = AIOKafkaProducer(bootstrap_servers=self._servers, acks="all", linger_ms=0,
                                          **kafka_security())
        await self._producer.start()
        self._consumer = AIOKafkaConsumer(bootstrap_servers=self._servers, group_id=None,
                                          enable_auto_commit=False, auto_offset_reset="earliest",
                                          **kafka_security())
        await self._consumer.start()
        self._consumer.assign([self._partition])
        await self._consumer.seek_to_beginning(self._partition)
        self._started.set()

    async def _ensure_topic(self) -> None:
        admin = AIOKafkaAdminClient(bootstrap_servers=self._servers, **kafka_security())
        await admin.start()
        try:
            if self.topic not in await admin.list_topics():
                try:
                    await admin.create_topics([NewTopic(self.topic, 1, 1,
                                                        topic_configs={"retention.ms": str(RETENTION_MS)})])
                except TopicAlreadyExistsError:
                    pass
        finally:
            await admin.close()

    async def run(self) -> None:
        """Start, then read the topic for good; each round ends with the ledger read up to a known time."""
        while not self._started.is_set():
            try:
                await self._start()
            except KafkaError as error:
                log.warning("budget ledger not reachable yet (%s); new partitions keep their longest hold-off",
                            error)
                await self.close()
                await asyncio.sleep(1.0)
        while True:
            try:
                await self._read_round()
            except KafkaError as error:
                log.warning("reading the budget ledger failed: %s", error)
                await asyncio.sleep(1.0)

    async def _read_round(self) -> None:
        asked_at = self._wall()
        end = (await self._consumer.end_offsets([self._partition]))[self._partition]
        while self.ledger.position < end - 1:
            batches = await self._consumer.getmany(self._partition, timeout_ms=500)
            for records in batches.values():
                for record in records:
                    try:
                        value = json.loads(record.value)
                    except ValueError:
                        log.warning("ignored a budget ledger record that is not JSON at offset %d", record.offset)
                        value = {}
                    self.ledger.apply(value if isinstance(value, dict) else {}, record.offset)
        # every record acknowledged before ``asked_at`` had an offset below ``end``: all applied now
        self._read_as_of = asked_at
        progress, self._progress = self._progress, asyncio.Event()
        progress.set()
        if self._on_progress is not None:
            try:
                self._on_progress()
            except Exception:  # noqa: BLE001 - a figure that cannot be refreshed must not stop the ledger
                log.exception("budget ledger progress callback failed")
        self._poke.clear()
        try:
            await asyncio.wait_for(self._poke.wait(), POLL_SECONDS)
        except asyncio.TimeoutError:
            pass

    async def close(self) -> None:
        for client in (self._producer, self._consumer):
            if client is not None:
                try:
                    await client.stop()
                except Exception:  # noqa: BLE001 - stopping anyway
                    pass
        self._producer = self._consumer = None

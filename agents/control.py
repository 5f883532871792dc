"""Control: every worker follows the budget-control topic and applies its share of the newest budget.

Each worker reads the one-partition topic from the beginning with its own
consumer (no group), so every worker sees every budget, after a restart too,
within one poll interval. (A Faust GlobalTable would be the textbook carrier;
on the embedded broker its standby replication did not reach the other
workers reliably, measured, while a plain consumer always does.)
"""

from __future__ import annotations

import json
import logging

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import KafkaError

from docsight.app import app, settings
from docsight.client import bootstrap_servers
from docsight.streams.topics import budget_control

from .resources import apply_budget_override

log = logging.getLogger(__name__)

POLL_SECONDS = 2.0


class BudgetFollower:
    def __init__(self) -> None:
        self.override: dict = {}
        self._consumer: AIOKafkaConsumer | None = None

    async def poll(self) -> None:
        if self._consumer is None:
            self._consumer = AIOKafkaConsumer(
                bootstrap_servers=bootstrap_servers(settings.broker_url), group_id=None,
                enable_auto_commit=False, auto_offset_reset="earliest")
            await self._consumer.start()
            partition = TopicPartition(budget_control.get_topic_name(), 0)
            self._consumer.assign([partition])
            await self._consumer.seek_to_beginning(partition)
        batches = await self._consumer.getmany(timeout_ms=100)
        changed = False
        for records in batches.values():
            for record in records:
                try:
                    message = json.loads(record.value)
                except ValueError:
                    log.warning("ignored a budget-control message that is not JSON")
                    continue
                self.override.update({key: value for key, value in message.items()
                                      if value is not None and key != "set_at"})
                changed = True
        if changed:
            log.info("cluster budget set at runtime: %s", self.override)
            apply_budget_override(dict(self.override))

    async def close(self) -> None:
        if self._consumer is not None:
            await self._consumer.stop()


follower = BudgetFollower()


@app.timer(interval=POLL_SECONDS)
async def follow_budget() -> None:
    try:
        await follower.poll()
    except KafkaError as error:  # the topic may not exist before the first control message
        log.debug("budget-control not readable yet: %s", error)

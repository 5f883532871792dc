"""Control: every worker follows the budget-control topic and applies the newest budget, or a resume.

Each worker reads the one-partition topic from the beginning with its own consumer (no group), so
every worker sees every message, after a restart too, within one poll interval. (A Faust GlobalTable
would be the textbook carrier; on the embedded broker its standby replication did not reach the
other workers reliably, measured, while a plain consumer always does.)

Messages (``docsight control``): a budget ``{"requests_per_minute": ..., "set_at": ...}`` (fields left
out keep their value), or ``{"resume": true, "set_at": ...}`` when what held the calls (an invalid
key, an unknown model, the API's spent day) has been fixed.
"""

from __future__ import annotations

import json
import logging

import mode
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import KafkaError

from docsight.app import app, settings
from docsight.broker import bootstrap_servers, kafka_security
from docsight.streams.topics import budget_control
from docsight.vision.worker_budget import ControlState

from .resources import apply_budget_override, resume_calls

log = logging.getLogger(__name__)

POLL_SECONDS = 2.0


class BudgetFollower:
    def __init__(self) -> None:
        self.state = ControlState()
        self._consumer: AIOKafkaConsumer | None = None

    @property
    def override(self) -> dict:
        return self.state.override

    async def poll(self) -> None:
        if self._consumer is None:
            self._consumer = AIOKafkaConsumer(
                bootstrap_servers=bootstrap_servers(settings.broker_url), group_id=None,
                enable_auto_commit=False, auto_offset_reset="earliest", **kafka_security())
            await self._consumer.start()
            partition = TopicPartition(budget_control.get_topic_name(), 0)
            self._consumer.assign([partition])
            await self._consumer.seek_to_beginning(partition)
        batches = await self._consumer.getmany(timeout_ms=100)
        budget_changed = resumed = False
        for records in batches.values():
            for record in records:
                try:
                    message = json.loads(record.value)
                except ValueError:
                    log.warning("ignored a budget-control message that is not JSON")
                    continue
                if not isinstance(message, dict):
                    continue
                changed, resume = self.state.apply(message)
                budget_changed |= changed
                resumed |= resume
        if budget_changed:
            log.info("cluster budget set at runtime: %s", self.state.override)
            apply_budget_override(dict(self.state.override))
        if resumed:
            log.warning("docsight control resume: held pictures try again")
            resume_calls(self.state.resumed_at)

    async def close(self) -> None:
        if self._consumer is not None:
            await self._consumer.stop()
            self._consumer = None


follower = BudgetFollower()


@app.timer(interval=POLL_SECONDS)
async def follow_budget() -> None:
    try:
        await follower.poll()
    except KafkaError as error:  # the topic may not exist before the first control message
        log.debug("budget-control not readable yet: %s", error)


@app.service
class ControlFollower(mode.Service):
    """Closes the follower's consumer when the worker stops."""

    async def on_stop(self) -> None:
        await follower.close()

"""Drive the real describe agent with Faust's ``agent.test_context()``, in this process, and print what it sent.

Run by tests/test_describe_agent.py as ``python describe_agent_run.py SCENARIO`` with a worker's environment
(its own app id on the test cluster's broker, the local Gemini server): the agent, its description service,
budget, cache table and topics are the worker's own; only the stream is fed by ``test_context().put`` instead
of the broker. Prints one JSON line: the picture results the agent sent to document-updates (by picture
index; each scenario numbers its pictures apart) and how many requests it handed back to the picture topic.
"""

from __future__ import annotations

import asyncio
import io
import json
import sys

from aiokafka import AIOKafkaConsumer
from PIL import Image

from docsight.agents import describe as describe_agent
from docsight.agents.resources import blob_store, ledger_log, vision_provider, worker_budget
from docsight.app import app, settings
from docsight.broker import bootstrap_servers, kafka_security
from docsight.streams.records import PictureRequest
from docsight.streams.topics import document_updates, picture_requests


def png(colour) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (320, 240), colour).save(buffer, "PNG")
    return buffer.getvalue()


def request(data: bytes, document_id: str, index: int = 0) -> PictureRequest:
    sha256 = blob_store().put(data)
    return PictureRequest(document_id=document_id, picture_index=index, sha256=sha256, mime_type="image/png",
                          width=320, height=240, size_bytes=len(data), caption=f"caption of {document_id}")


SCENARIOS = {
    # the second request for a picture described before is a cache hit
    "cache_hit": lambda colour: [[request(png(colour), "doc-a")], [request(png(colour), "doc-b", 1)]],
    # three requests for one picture in flight together: one call
    "single_flight": lambda colour: [[request(png(colour), f"doc-{n}", n) for n in range(3)]],
    # two different pictures: each its own call (with VISION_DAILY_BUDGET_USD tiny: none goes)
    "two_pictures": lambda colour: [[request(png(colour), "doc-a"), request(png(colour[::-1]), "doc-b", 1)]],
}


async def read_topic(topic: str, count: int, timeout: float = 20.0) -> list[dict]:
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap_servers(settings.broker_url), group_id=None,
                                auto_offset_reset="earliest", enable_auto_commit=False, **kafka_security())
    await consumer.start()
    found: list[dict] = []
    try:
        deadline = asyncio.get_running_loop().time() + timeout
        while len(found) < count and asyncio.get_running_loop().time() < deadline:
            for records in (await consumer.getmany(timeout_ms=300)).values():
                found += [json.loads(record.value) for record in records]
    finally:
        await consumer.stop()
    return found


async def main(scenario: str, colour: tuple[int, int, int]) -> dict:
    app.finalize()
    app.flow_control.resume()
    await app.producer.start()
    ledger = asyncio.ensure_future(ledger_log().run())  # the day's dollars are reserved in the budget ledger
    worker_budget().gate.assign(set(range(6)), 1)  # as a partition assignment would
    batches = SCENARIOS[scenario](colour)
    sent = 0
    try:
        async with describe_agent.describe.test_context() as agent:
            for batch in batches:
                for item in batch:
                    await agent.put(item, key=item.sha256, wait=False)
                sent += len(batch)
                updates = await read_topic(document_updates.get_topic_name(), sent)
        handed_back = await read_topic(picture_requests.get_topic_name(), 0, timeout=1.0)
    finally:
        ledger.cancel()
        await worker_budget().close()
        await vision_provider().close()
        await ledger_log().close()
        await app.producer.stop()
    # by picture index: the updates of different documents sit on different partitions, in no common order
    return {"results": sorted((update["picture"] for update in updates), key=lambda picture: picture["index"]),
            "handed_back": len(handed_back),
            "spent_usd": worker_budget().usd_per_day.used}


if __name__ == "__main__":
    colour = tuple(int(part) for part in sys.argv[2].split(","))
    print(json.dumps(asyncio.run(asyncio.wait_for(main(sys.argv[1], colour), 60))))

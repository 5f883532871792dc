"""A Faust app that does what the describe agent does, minus Gemini: the ``framework`` scenario's relay.

    BENCH_BROKER_URL=kafka://... BENCH_EVENTS=10000 BENCH_OUT=result.json BENCH_DATA_DIR=... \
    BENCH_PRODUCER_BATCH=1 python -m docsight.benchmarks.framework_app worker -l warn

Each picture request read from the source topic becomes one picture update
sent to the sink topic, with the describe agent's concurrency and docsight's
broker options (``producer_max_batch_size=1`` for Tansu unless
``BENCH_PRODUCER_BATCH`` says otherwise). When ``BENCH_EVENTS`` have gone
through it flushes the producer, writes the timings and waits to be killed.
"""

from __future__ import annotations

import json
import os
import time

import faust

from docsight.broker import faust_broker_options
from docsight.streams.records import DocumentUpdate, PictureRequest, PictureResult

SOURCE_TOPIC = os.environ.get("BENCH_SOURCE_TOPIC", "bench-picture-requests")
SINK_TOPIC = os.environ.get("BENCH_SINK_TOPIC", "bench-document-updates")
EVENTS = int(os.environ.get("BENCH_EVENTS", "1000"))
CONCURRENCY = int(os.environ.get("BENCH_CONCURRENCY", "5"))

options = faust_broker_options(embedded=True)
options["producer_max_batch_size"] = int(os.environ.get("BENCH_PRODUCER_BATCH", "1"))

app = faust.App(
    os.environ.get("BENCH_APP_ID", "docsight-bench-framework"),
    broker=os.environ.get("BENCH_BROKER_URL", "kafka://127.0.0.1:9092"),
    store="memory://", datadir=os.environ.get("BENCH_DATA_DIR", "var/bench-framework"), topic_partitions=6,
    web_enabled=False, **options)
source = app.topic(SOURCE_TOPIC, key_type=str, value_type=PictureRequest, partitions=6)
sink = app.topic(SINK_TOPIC, key_type=str, value_type=DocumentUpdate, partitions=6)

_seen = {"count": 0, "first": 0.0, "last": 0.0, "done": False}


@app.agent(source, concurrency=CONCURRENCY)
async def relay(requests):
    async for request in requests:
        now = time.time()
        if not _seen["count"]:
            _seen["first"] = now
        _seen["count"] += 1
        await sink.send(key=request.document_id, value=DocumentUpdate(
            kind="picture", document_id=request.document_id, at=now, picture=PictureResult(
                index=request.picture_index, sha256=request.sha256, status="described", description="x" * 300)))
        if _seen["count"] >= EVENTS and not _seen["done"]:
            _seen["done"] = True
            await app.producer.flush()
            _seen["last"] = time.time()
            with open(os.environ.get("BENCH_OUT", "framework.json"), "w") as out:
                json.dump({"events": _seen["count"], "first": _seen["first"], "last": _seen["last"]}, out)


if __name__ == "__main__":
    app.main()

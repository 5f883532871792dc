"""Submit documents to the test cluster and wait for their outcomes."""

from __future__ import annotations

import asyncio
import uuid

from docsight.client import DocsightClient, document_event


def unique_id(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def submit_and_wait(cluster, events=(), raw=(), timeout: float = 120.0, expect: set[str] | None = None):
    """Submit events (dicts) and raw payloads (key, bytes); return the outcomes of ``expect`` ids."""
    ids = {event["document_id"] for event in events} if expect is None else expect

    async def run():
        # the workers' blob store: an outcome over the broker's limit is read in full from it
        async with DocsightClient(cluster.broker_url, store_dir=cluster.store_dir) as client:
            await _send(client, events, raw)
            return await client.collect(ids, timeout=timeout)

    outcomes = asyncio.run(run())
    return {outcome.document_id: outcome for outcome in outcomes}


def submit_document(cluster, location: str, prefix: str = "doc", **kwargs):
    document_id = unique_id(prefix)
    outcomes = submit_and_wait(cluster, [document_event(document_id, "tester", location)], **kwargs)
    assert document_id in outcomes, f"no outcome for {location}"
    return outcomes[document_id]


def wait_for_status(worker, document_id: str, status: str, timeout: float = 15.0) -> dict:
    """Poll the document's web view until it shows ``status`` (the table trails the output topics)."""
    import time

    deadline = time.monotonic() + timeout
    body: dict = {}
    while time.monotonic() < deadline:
        code, body = worker.get_json(f"/documents/{document_id}")
        if code == 200 and body.get("status") == status:
            return body
        time.sleep(0.2)
    raise AssertionError(f"document {document_id} never reached {status!r}; last view: {body}")


def unique_markdown_document(document_root, pictures: int = 2, shared: bytes | None = None) -> str:
    """A markdown file with never-seen pictures (so nothing comes from the description cache).

    ``shared`` adds one more picture with those exact bytes, for dedupe tests.
    """
    import io
    import os

    from PIL import Image

    name = unique_id("md")
    folder = document_root / name
    folder.mkdir()
    lines = [f"# Document {name}", "", "Some text before the pictures.", ""]
    images = [os.urandom(64 * 48 * 3) for _ in range(pictures)]
    for number, noise in enumerate(images):
        buffer = io.BytesIO()
        Image.frombytes("RGB", (64, 48), noise).resize((320, 240)).save(buffer, "PNG")
        (folder / f"p{number}.png").write_bytes(buffer.getvalue())
        lines += [f"Paragraph {number} introduces the next figure.", "", f"![Figure {number}](p{number}.png)", ""]
    if shared is not None:
        (folder / "shared.png").write_bytes(shared)
        lines += ["The shared picture:", "", "![Shared](shared.png)", ""]
    (folder / "doc.md").write_text("\n".join(lines + ["The end."]))
    return f"{name}/doc.md"


def collect_outcomes(cluster, match, count: int, timeout: float = 120.0, distinct_ids: bool = False):
    """Outcomes (document-enriched/-failed, from the beginning) for which ``match(outcome)``, read until there
    are at least ``count`` of them (of distinct document ids with ``distinct_ids``) or the timeout passes."""
    import json
    import time

    from aiokafka import AIOKafkaConsumer

    from docsight.client import OUTPUT_TOPICS, Outcome

    async def run():
        consumer = AIOKafkaConsumer(*OUTPUT_TOPICS, bootstrap_servers=cluster.broker.bootstrap_servers,
                                    group_id=None, enable_auto_commit=False, auto_offset_reset="earliest")
        await consumer.start()
        found = []
        deadline = time.monotonic() + timeout
        try:
            while time.monotonic() < deadline:
                if len({o.document_id for o in found} if distinct_ids else found) >= count:
                    break
                for records in (await consumer.getmany(timeout_ms=300)).values():
                    for record in records:
                        value = json.loads(record.value)
                        outcome = Outcome(record.topic, value.get("document_id"), value, time.time())
                        if match(outcome):
                            found.append(outcome)
        finally:
            await consumer.stop()
        return found

    return asyncio.run(run())


def submit(cluster, events=(), raw=()) -> None:
    """Submit events (dicts) and raw payloads (key, bytes or None) without waiting for anything."""

    async def run():
        async with DocsightClient(cluster.broker_url) as client:
            await _send(client, events, raw)

    asyncio.run(run())


async def _send(client, events, raw) -> None:
    for event in events:
        await client.submit(event)
    for key, payload in raw:
        await client.submit_raw(key, payload)

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
        async with DocsightClient(cluster.broker_url) as client:
            for event in events:
                await client.submit(event)
            for key, payload in raw:
                await client.submit_raw(key, payload)
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

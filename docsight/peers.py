"""The other workers of this one's consumer group: ask each for a JSON view, say which ones did not answer.

Used by the web views that cover the whole cluster (``/documents`` in ``docsight.tables.views``, the
status page's ``/status/stats``), so it sits beside them in the worker, under neither.

Faust's partition assignor gives every member, on each rebalance, the web URL
and table partitions of all members (``app.router.tables_metadata()``, the
``/router`` view), so any worker can reach the others without a registry.
Workers of another role run in another consumer group and are not listed.
"""

from __future__ import annotations

import asyncio
from typing import Any, Callable

from yarl import URL

from docsight.app import app

PEER_TIMEOUT_SECONDS = 3.0


def cluster_workers() -> list[dict[str, Any]]:
    """Every worker of the group: its web URL, whether it is this one, and its partitions of each table.

    Before the first assignment only this worker is known.
    """
    own = str(app.conf.canonical_url)
    workers: dict[str, dict[str, list[int]]] = {own: {}}
    for url, topics in app.router.tables_metadata().items():
        workers[own if same_worker(url, own) else url] = {
            table_name(topic): sorted(partitions) for topic, partitions in topics.items()}
    return [{"url": url, "partitions": tables, "self": url == own} for url, tables in sorted(workers.items())]


def table_name(changelog_topic: str) -> str:
    """``docsight-documents-changelog`` → ``documents``."""
    return changelog_topic.removeprefix(f"{app.conf.id}-").removesuffix("-changelog")


def same_worker(url: str, other: str) -> bool:
    a, b = URL(url), URL(other)
    return (a.host, a.port) == (b.host, b.port)


async def gather_from_workers(path: str, query: dict[str, str] | None = None,
                              local: Callable[[], Any] | None = None) -> list[dict[str, Any]]:
    """GET ``path`` from every worker; one that does not answer is reported, not raised.

    This worker answers with ``local()`` without a request, unless ``local`` is None.
    Each answer: ``{"url", "partitions", "self", "ok", "error", "body"}``.
    """

    async def ask(worker: dict) -> dict:
        answer = {**worker, "ok": True, "error": None, "body": None}
        try:
            if worker["self"] and local is not None:
                answer["body"] = local()
            else:
                answer["body"] = await asyncio.wait_for(
                    _get_json(URL(worker["url"]).with_path(path).with_query(query or {})), PEER_TIMEOUT_SECONDS)
        except Exception as error:  # noqa: BLE001 - a worker that does not answer is shown, not raised
            answer.update(ok=False, error=(f"{type(error).__name__}: {error}" if str(error) else type(error).__name__))
        return answer

    return list(await asyncio.gather(*(ask(worker) for worker in cluster_workers())))


async def _get_json(url: URL) -> Any:
    async with app.http_client.get(url) as response:
        if response.status != 200:
            raise RuntimeError(f"HTTP {response.status} from {url}")
        return await response.json()

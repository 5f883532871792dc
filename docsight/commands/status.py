"""``docsight status`` (a document's progress, from a worker's web view) and ``docsight results`` (its outcome).

Also the pieces ``docsight submit`` shares: the worker's URL, reading a
document's view, reading outcomes from the broker, writing them to a folder,
and turning connection failures into one line that names the setting to fix.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys
import textwrap
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import aiohttp
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import KafkaConnectionError, KafkaError

from docsight.broker import kafka_security
from docsight.client import OUTPUT_TOPICS, Outcome, OutcomeUnavailable, bootstrap_servers, full_outcome
from docsight.config import SettingsError, get_settings

VIEW_TIMEOUT_SECONDS = 5.0


class CommandError(Exception):
    """A problem the user can fix; shown as one line, without a traceback."""


def quiet_client_libraries() -> None:
    # aiokafka logs every failed connection attempt itself; the command says it once, with the setting to fix
    for name in ("aiokafka", "asyncio"):
        logging.getLogger(name).setLevel(logging.CRITICAL)


def run_reporting_errors(command: str, body) -> int:
    """Run ``body()``; a CommandError or a bad setting becomes ``docsight COMMAND: message`` on stderr, exit code 2."""
    quiet_client_libraries()
    try:
        return body()
    except (CommandError, SettingsError) as error:
        print(f"docsight {command}: {error}", file=sys.stderr)
        return 2


# --- the worker's web view ------------------------------------------------------------

def default_worker_url(explicit: str | None) -> str:
    if explicit:
        return explicit.rstrip("/")
    return f"http://127.0.0.1:{get_settings().web_port}"


def worker_unreachable(worker_url: str, error: Exception) -> CommandError:
    return CommandError(f"cannot reach a docsight worker at {worker_url} ({_reason(error)}); "
                        "pass --worker-url or set DOCSIGHT_WEB_PORT to a running worker's web port")


class UnknownDocument(Exception):
    pass


class WorkerCouldNotAnswer(Exception):
    """The worker answered, but not with the document's view (a rebalance, an error)."""


async def fetch_document_view(http: aiohttp.ClientSession, worker_url: str, document_id: str) -> dict:
    """The worker's ``GET /documents/{id}`` (routed by Faust to the worker that owns the id)."""
    url = f"{worker_url}/documents/{quote(document_id, safe='')}"
    async with http.get(url, timeout=aiohttp.ClientTimeout(total=VIEW_TIMEOUT_SECONDS)) as response:
        if response.status == 404:
            raise UnknownDocument(document_id)
        if response.status == 503:
            raise WorkerCouldNotAnswer("the cluster is rebalancing (HTTP 503); try again in a few seconds")
        if response.status != 200:
            raise WorkerCouldNotAnswer(f"HTTP {response.status} from {url}")
        return await response.json()


# --- the broker -------------------------------------------------------------------------

def broker_unreachable(broker_url: str) -> CommandError:
    return CommandError(f"cannot reach the Kafka broker at {broker_url} (DOCSIGHT_BROKER_URL): is it running, "
                        "and is that its address?")


def configured_broker_url() -> str:
    url = get_settings().broker_url
    if not url:
        raise CommandError("DOCSIGHT_BROKER_URL is not set: results are read from the cluster's broker; set it "
                           "to the broker the workers use (e.g. kafka://localhost:9092)")
    return url


class OutcomeReader:
    """A consumer of document-enriched and document-failed, without a consumer group (it commits nothing)."""

    def __init__(self, broker_url: str, store_dir: Path | None = None) -> None:
        self.broker_url = broker_url
        self.store_dir = store_dir  # the workers' blob store: outcomes sent by reference are read from it
        self.consumer = AIOKafkaConsumer(
            bootstrap_servers=bootstrap_servers(broker_url), group_id=None, enable_auto_commit=False,
            auto_offset_reset="earliest", metadata_max_age_ms=2000, client_id="docsight-cli",
            **kafka_security())
        self.missing_topics: set[str] = set(OUTPUT_TOPICS)

    async def __aenter__(self) -> "OutcomeReader":
        try:
            await self.consumer.start()
        except KafkaConnectionError:
            await self.consumer.stop()
            raise broker_unreachable(self.broker_url) from None
        return self

    async def __aexit__(self, *exc) -> None:
        await self.consumer.stop()

    async def assign(self, from_end: bool) -> None:
        """Assign the output topics' partitions, at their end (only what comes next) or their beginning.

        A topic that does not exist yet (no worker has run) is picked up by ``poll`` when it appears,
        from its beginning: all of it is new then.
        """
        existing = await self.consumer.topics()
        present = {topic for topic in self.missing_topics if topic in existing}
        if not present:
            return
        previous = {tp: await self.consumer.position(tp) for tp in self.consumer.assignment()}
        added = [TopicPartition(topic, partition) for topic in present
                 for partition in sorted(self.consumer.partitions_for_topic(topic) or ())]
        self.consumer.assign([*previous, *added])
        for tp, offset in previous.items():
            self.consumer.seek(tp, offset)
        if from_end:
            await self.consumer.seek_to_end(*added)
        else:
            await self.consumer.seek_to_beginning(*added)
        for tp in added:
            await self.consumer.position(tp)  # resolves the position now, before anything is submitted
        self.missing_topics -= present

    async def poll(self, timeout: float = 0.5) -> list[Outcome]:
        if self.missing_topics:
            await self.assign(from_end=False)
        if not self.consumer.assignment():
            await asyncio.sleep(timeout)
            return []
        outcomes = []
        batches = await self.consumer.getmany(timeout_ms=int(timeout * 1000))
        for records in batches.values():
            for record in records:
                try:
                    value = json.loads(record.value)
                except (TypeError, ValueError):
                    continue
                outcomes.append(self._outcome(record.topic, value))
        return outcomes

    def _outcome(self, topic: str, value: dict) -> Outcome:
        outcome = Outcome(topic, value.get("document_id"), value, time.time())
        if outcome.enriched and self.store_dir is not None:
            try:
                outcome.value = full_outcome(value, self.store_dir)
            except OutcomeUnavailable:
                pass  # write_enriched says what is missing, if the outcome is written
        return outcome

    async def read_all(self, document_id: str, timeout: float) -> list[Outcome]:
        """Every outcome of ``document_id`` already on the broker (scans the output topics to their end)."""
        await self.assign(from_end=False)
        partitions = list(self.consumer.assignment())
        if not partitions:
            return []
        ends = await self.consumer.end_offsets(partitions)
        key = document_id.encode()
        found: list[Outcome] = []
        deadline = time.monotonic() + timeout
        while [tp for tp in partitions if await self.consumer.position(tp) < ends[tp]]:
            if time.monotonic() > deadline:
                raise CommandError(f"reading the output topics took longer than {timeout:.0f}s; "
                                   "try again with a larger --timeout")
            batches = await self.consumer.getmany(*partitions, timeout_ms=500)
            for records in batches.values():
                for record in records:
                    if record.key is not None and record.key != key:
                        continue  # outputs are keyed by document id: skip the others without parsing them
                    try:
                        value = json.loads(record.value)
                    except (TypeError, ValueError):
                        continue
                    if value.get("document_id") == document_id:
                        found.append(self._outcome(record.topic, value))
        return found


def best_outcome(outcomes: list[Outcome]) -> Outcome | None:
    """The document's own outcome: a later submission under the same id fails as a duplicate, which is not it."""
    enriched = [o for o in outcomes if o.enriched]
    failed = [o for o in outcomes if not o.enriched]
    own_failures = [o for o in failed if o.value.get("reason") != "duplicate_document_id"]
    for candidates in (enriched, own_failures, failed):
        if candidates:
            return candidates[0]
    return None


# --- writing outcomes ------------------------------------------------------------------

@dataclass
class Written:
    markdown: Path
    details: Path


def output_name(location: str, document_id: str) -> str:
    """``reports/q3.pdf`` → ``q3.pdf`` (the output files are ``q3.pdf.md`` and ``q3.pdf.json``)."""
    name = Path(location.removeprefix("file://")).name if location else ""
    return name or document_id


def write_enriched(output: Path, name: str, event: dict, store_dir: Path | None = None) -> Written:
    """The enriched markdown, and a JSON with everything else in the event (every picture's position,
    caption, description, tokens and cost). An outcome sent by reference is read from ``store_dir``."""
    try:
        event = full_outcome(event, store_dir)
    except OutcomeUnavailable as error:
        raise CommandError(f"{error}; set DOCSIGHT_STORE_DIR to the workers' store") from None
    output.mkdir(parents=True, exist_ok=True)
    written = Written(output / f"{name}.md", output / f"{name}.json")
    written.markdown.write_text(event["markdown"], encoding="utf-8")
    details = {key: value for key, value in event.items() if key not in ("markdown", "__faust")}
    written.details.write_text(json.dumps(details, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return written


def describe_failure(event: dict) -> str:
    return f"{event.get('stage', '?')} failed: {event.get('reason', '?')} ({event.get('message', '')})"


def picture_summary(pictures: dict) -> str:
    expected = pictures.get("expected")
    if expected is None:
        return "pictures not counted yet (extracting)"
    parts = [f"{pictures['described']} of {expected} described"]
    for key in ("failed", "skipped"):
        if pictures.get(key):
            parts.append(f"{pictures[key]} {key}")
    if pictures.get("from_cache"):
        parts.append(f"{pictures['from_cache']} from the description cache")
    return ", ".join(parts)


def _reason(error: Exception) -> str:
    if isinstance(error, asyncio.TimeoutError):
        return "no answer within {:.0f}s".format(VIEW_TIMEOUT_SECONDS)
    text = str(error)
    if isinstance(error, aiohttp.ClientConnectorError):
        text = str(error.os_error.strerror or error.os_error) if error.os_error else text
    return text or type(error).__name__


def _when(epoch: float | None) -> str:
    if not epoch:
        return "–"
    moment = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(epoch))
    return f"{moment} ({max(0, time.time() - epoch):.0f} s ago)"


# --- docsight status -------------------------------------------------------------------

def help_text(*paragraphs: str, examples: str) -> str:
    """Help text: paragraphs wrapped for the terminal, examples kept as written."""
    return "\n\n".join(textwrap.fill(paragraph, 88) for paragraph in paragraphs) + "\n\n" + examples


def register(subcommands) -> None:
    status = subcommands.add_parser(
        "status", help="show a document's progress (from a worker's web view)",
        description=help_text(
            "Show a document's status, pictures described out of expected, tokens and cost, from a worker's "
            "GET /documents/{id} (any worker will do: the request is routed to the one that owns the document). "
            "Exit code 0 when the document is known, 1 when it is not, 2 when no worker answers.",
            examples="examples:\n  docsight status report-3f9c2a1b7d40\n"
                     "  docsight status report-3f9c2a1b7d40 --worker-url http://worker-2:6066 --json"),
        formatter_class=argparse.RawDescriptionHelpFormatter)
    status.add_argument("document_id", metavar="DOCUMENT_ID", help="the id printed by docsight submit")
    status.add_argument("--worker-url", help="a worker's web address (default: http://127.0.0.1:$DOCSIGHT_WEB_PORT)")
    status.add_argument("--json", action="store_true", help="print the web view's JSON as it is")
    status.set_defaults(run=run_status)

    results = subcommands.add_parser(
        "results", help="fetch a document's outcome from the broker and write its markdown and JSON",
        description=help_text(
            "Read document-enriched and document-failed on the broker (DOCSIGHT_BROKER_URL) for one document id. "
            "An enriched document's markdown and a JSON with every picture's position, caption, description, "
            "tokens and cost are written to the output folder; a failed one's reason is shown. Exit code 0 when "
            "enriched, 1 when failed or not finished.",
            examples="example:\n  DOCSIGHT_BROKER_URL=kafka://localhost:9092 docsight results report-3f9c2a1b7d40 "
                     "--output results/"),
        formatter_class=argparse.RawDescriptionHelpFormatter)
    results.add_argument("document_id", metavar="DOCUMENT_ID", help="the id printed by docsight submit")
    results.add_argument("--output", type=Path, default=Path("output"),
                         help="folder for NAME.md and NAME.json (default: ./output)")
    results.add_argument("--timeout", type=float, default=60.0, help="seconds allowed to scan the output topics")
    results.set_defaults(run=run_results)


def run_status(args) -> int:
    return run_reporting_errors("status", lambda: asyncio.run(_status(args)))


async def _status(args) -> int:
    worker_url = default_worker_url(args.worker_url)
    try:
        async with aiohttp.ClientSession() as http:
            view = await fetch_document_view(http, worker_url, args.document_id)
    except WorkerCouldNotAnswer as error:
        raise CommandError(f"the worker at {worker_url} could not answer: {error}") from None
    except UnknownDocument:
        print(f"docsight status: unknown document {args.document_id!r}: no worker of the cluster at {worker_url} "
              "has it (check the id; a document appears once a worker has read its event)", file=sys.stderr)
        return 1
    except (aiohttp.ClientError, asyncio.TimeoutError, OSError) as error:
        raise worker_unreachable(worker_url, error) from None
    if args.json:
        print(json.dumps(view, indent=2))
        return 0
    tokens = view.get("tokens", {})
    lines = [
        ("document", view["document_id"]),
        ("status", view["status"]),
        ("pictures", picture_summary(view["pictures"])),
        ("tokens", f"{tokens.get('input', 0)} input, {tokens.get('output', 0)} output, "
                   f"{tokens.get('thinking', 0)} thinking"),
        ("cost", f"${view.get('cost_usd', 0):.6f}"),
        ("received", _when(view.get("received_at"))),
    ]
    if view.get("completed_at"):
        lines.append(("completed", _when(view["completed_at"])))
    if view.get("failure"):
        lines.append(("failure", describe_failure(view["failure"])))
    for label, value in lines:
        print(f"{label:<10} {value}")
    return 0


# --- docsight results ------------------------------------------------------------------

def run_results(args) -> int:
    return run_reporting_errors("results", lambda: asyncio.run(_results(args)))


async def _results(args) -> int:
    broker_url = configured_broker_url()
    try:
        async with OutcomeReader(broker_url, store_dir=get_settings().store_location) as reader:
            outcomes = await reader.read_all(args.document_id, args.timeout)
    except KafkaError as error:
        raise CommandError(f"reading from the broker at {broker_url} (DOCSIGHT_BROKER_URL) failed: "
                           f"{type(error).__name__} {error}") from None
    outcome = best_outcome(outcomes)
    if outcome is None:
        print(f"docsight results: no outcome for {args.document_id!r} on {broker_url} (neither document-enriched "
              f"nor document-failed has it): it may still be in progress (docsight status {args.document_id}) "
              "or the id may be wrong", file=sys.stderr)
        return 1
    event = outcome.value
    if not outcome.enriched:
        print(f"{args.document_id}: {describe_failure(event)}")
        return 1
    written = write_enriched(Path(args.output), output_name(event.get("location", ""), args.document_id), event,
                             get_settings().store_location)
    pictures = event.get("pictures") or []
    described = sum(1 for p in pictures if p.get("status") == "described")
    print(f"{args.document_id}: enriched, {described} of {len(pictures)} pictures described, "
          f"{event.get('input_tokens', 0)} input tokens, ${event.get('cost_usd', 0):.6f}")
    print(f"wrote {written.markdown} and {written.details}")
    return 0

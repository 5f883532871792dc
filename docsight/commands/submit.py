"""``docsight submit``: put files under the document root, send one document-received event each, and
with ``--wait`` follow their progress and write the enriched markdown and JSON.

With no broker configured there is no cluster to talk to, so the documents go
through a temporary local cluster (embedded broker, local Gemini server, one
worker), like ``docsight demo``, which stops when the command ends.
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import os
import re
import shutil
import sys
import tempfile
import time
import uuid
from collections import Counter
from contextlib import AsyncExitStack
from dataclasses import dataclass
from pathlib import Path

import aiohttp
from aiokafka.errors import KafkaConnectionError, KafkaError

from docsight.client import DocsightClient, Outcome, document_event, ensure_topics
from docsight.config import get_settings

from .status import (CommandError, OutcomeReader, UnknownDocument, WorkerCouldNotAnswer, broker_unreachable,
                     default_worker_url, describe_failure, fetch_document_view, help_text, run_reporting_errors,
                     worker_unreachable, write_enriched)

# settings the temporary cluster sets itself; the user's other DOCSIGHT_/VISION_/GEMINI_ settings pass through
CLUSTER_MANAGED_SETTINGS = {
    "DOCSIGHT_BROKER_URL", "DOCSIGHT_EMBEDDED_BROKER", "DOCSIGHT_DATA_DIR", "DOCSIGHT_STORE_DIR",
    "DOCSIGHT_DOCUMENT_ROOT", "DOCSIGHT_WEB_PORT", "DOCSIGHT_ROLE", "GEMINI_API_KEY", "GOOGLE_GEMINI_BASE_URL",
}
# formats whose local pictures sit beside the file: a lone copy loses them
FORMATS_WITH_PICTURES_BESIDE = {".html", ".htm", ".md"}
BAR_WIDTH = 24


def register(subcommands) -> None:
    parser = subcommands.add_parser(
        "submit", help="submit documents; with --wait, show their progress and write the results",
        description=help_text(
            "Put each FILE under the document root (DOCSIGHT_DOCUMENT_ROOT: copied to ROOT/submitted/ID/ unless "
            "it is already below the root) and send one document-received event each to DOCSIGHT_BROKER_URL.",
            "With --wait, show a progress bar per document (pictures described out of expected, from a worker's "
            "web view) until each is enriched or failed, then write NAME.md and NAME.json (every picture's "
            "position, caption, description, tokens and cost) to the output folder. Exit code 1 if any document "
            "failed, 2 for a missing file, an unreachable broker or a bad setting.",
            "Without DOCSIGHT_BROKER_URL there is no cluster to send to: the documents go through a temporary "
            "local cluster (embedded broker, local Gemini server, one worker) and the command waits.",
            examples="examples:\n"
                     "  docsight submit report.pdf slides.pptx --wait --output results/\n"
                     "  DOCSIGHT_BROKER_URL=kafka://kafka:9092 DOCSIGHT_DOCUMENT_ROOT=/shared/documents \\\n"
                     "    docsight submit scans/*.pdf --user alice"),
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("files", nargs="+", type=Path, metavar="FILE", help="documents to submit")
    parser.add_argument("--user", default=None, help="user id in the events (default: your login name)")
    parser.add_argument("--wait", action="store_true",
                        help="show progress until every document is enriched or failed, then write the results")
    parser.add_argument("--output", type=Path, default=Path("output"),
                        help="folder for NAME.md and NAME.json with --wait (default: ./output)")
    parser.add_argument("--worker-url", help="a worker's web address for progress "
                                             "(default: http://127.0.0.1:$DOCSIGHT_WEB_PORT)")
    parser.add_argument("--timeout", type=float, default=600.0, help="seconds to wait for the outcomes (default: 600)")
    parser.set_defaults(run=run_submit)


@dataclass
class Submission:
    path: Path
    document_id: str
    location: str = ""
    copy: Path | None = None  # where the file was copied below the root, if it was


def run_submit(args) -> int:
    return run_reporting_errors("submit", lambda: submit(args))


def submit(args) -> int:
    settings = get_settings()
    paths = checked_files(args.files)
    user = args.user or _login_name()
    if not settings.broker_url:
        return submit_through_temporary_cluster(settings, paths, user, args)
    root = settings.document_root.resolve()
    if not root.is_dir():
        raise CommandError(f"the document root {root} does not exist: set DOCSIGHT_DOCUMENT_ROOT to the folder "
                           "the workers read documents from")
    return asyncio.run(submit_and_follow(settings.broker_url, root, paths, user, args, wait=args.wait,
                                         worker_url=default_worker_url(args.worker_url),
                                         store_dir=settings.store_location))


def checked_files(files: list[Path]) -> list[Path]:
    missing = [str(path) for path in files if not path.exists()]
    if missing:
        raise CommandError(f"no such file: {', '.join(missing)}")
    for path in files:
        if path.is_dir():
            raise CommandError(f"{path} is a folder: give the files inside it (e.g. {path}/*.pdf)")
        if not os.access(path, os.R_OK):
            raise CommandError(f"cannot read {path}: permission denied")
    return [path.resolve() for path in files]


def submit_through_temporary_cluster(settings, paths: list[Path], user: str, args) -> int:
    from docsight.local_cluster import LocalCluster

    root = settings.document_root.resolve()
    root.mkdir(parents=True, exist_ok=True)
    use_real_api = bool(settings.gemini_api_key)
    gemini = ("the Gemini API (GEMINI_API_KEY)" if use_real_api
              else "the local Gemini server (placeholder descriptions; set GEMINI_API_KEY for real ones)")
    print("No broker configured (DOCSIGHT_BROKER_URL is unset): running the documents through a temporary local "
          f"cluster (embedded broker, one worker, {gemini}).\nIt stops when this command ends, so the command "
          "waits for the results. Set DOCSIGHT_BROKER_URL to send to a running cluster instead.", flush=True)
    workdir = Path(tempfile.mkdtemp(prefix="docsight-submit-"))
    cluster = LocalCluster(workdir, document_root=root, env=_settings_to_pass_on(),
                           gemini_base_url=(settings.gemini_base_url or "") if use_real_api else None,
                           gemini_api_key=settings.gemini_api_key if use_real_api else None)
    try:
        try:
            cluster.start()
            asyncio.run(ensure_topics(cluster.broker_url, partitions=settings.document_partitions))
            worker = cluster.start_worker("submit")
        except (RuntimeError, TimeoutError, OSError, KafkaError) as error:
            raise CommandError(f"the temporary local cluster did not start: {error}") from None
        print(f"temporary cluster ready: broker {cluster.broker_url}, worker {worker.url} "
              f"(status page {worker.url}/status)", flush=True)
        # the copies are only for this run's worker: nothing reads them after the cluster stops
        return asyncio.run(submit_and_follow(cluster.broker_url, root, paths, user, args, wait=True,
                                             worker_url=worker.url, keep_copies=False, store_dir=cluster.store_dir))
    finally:
        cluster.stop()
        shutil.rmtree(workdir, ignore_errors=True)


async def submit_and_follow(broker_url: str, root: Path, paths: list[Path], user: str, args, *, wait: bool,
                            worker_url: str, keep_copies: bool = True, store_dir: Path | None = None) -> int:
    submissions = [Submission(path, new_document_id(path)) for path in paths]
    try:
        return await _submit_and_follow(broker_url, root, submissions, user, args, wait, worker_url, store_dir)
    except KafkaConnectionError:
        raise broker_unreachable(broker_url) from None
    except KafkaError as error:
        raise CommandError(f"the broker at {broker_url} (DOCSIGHT_BROKER_URL) answered with an error: "
                           f"{type(error).__name__}: {error}") from None
    finally:
        if not keep_copies:
            for submission in submissions:
                if submission.copy:
                    shutil.rmtree(submission.copy.parent, ignore_errors=True)


async def _submit_and_follow(broker_url: str, root: Path, submissions: list[Submission], user: str, args,
                             wait: bool, worker_url: str, store_dir: Path | None = None) -> int:
    async with AsyncExitStack() as stack:
        reader = await stack.enter_async_context(OutcomeReader(broker_url, store_dir)) if wait else None
        if reader:
            await reader.assign(from_end=True)  # before submitting: only outcomes that come after count
        client = await stack.enter_async_context(DocsightClient(broker_url))
        for submission in submissions:
            submission.location = place_under_root(submission, root)
        for submission in submissions:
            await client.submit(document_event(submission.document_id, user, submission.location))
            print(f"submitted {submission.path.name} as {submission.document_id}", flush=True)
        if not wait:
            print(f"follow them with: docsight status ID, the status page {worker_url}/status, "
                  "or docsight results ID --output DIR")
            return 0
        outcomes = await follow(reader, worker_url, submissions, args.timeout)
    return report(submissions, outcomes, Path(args.output), args.timeout, store_dir)


def new_document_id(path: Path) -> str:
    """The file's name, made safe, and a random suffix: unique, and still telling which file it was."""
    stem = re.sub(r"[^A-Za-z0-9._-]+", "-", path.stem).strip("-.")[:80] or "document"
    return f"{stem}-{uuid.uuid4().hex[:12]}"


def place_under_root(submission: Submission, root: Path) -> str:
    """The event's location: the file's path below the root, or where it was copied to below it."""
    try:
        return submission.path.relative_to(root).as_posix()
    except ValueError:
        pass
    target = root / "submitted" / submission.document_id / submission.path.name
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(submission.path, target)
        submission.copy = target
    except OSError as error:
        raise CommandError(f"cannot copy {submission.path} under the document root {root} "
                           f"(DOCSIGHT_DOCUMENT_ROOT): {error.strerror or error}") from None
    if submission.path.suffix.lower() in FORMATS_WITH_PICTURES_BESIDE:
        bring_pictures_along(submission.path, target.parent, root)
    return target.relative_to(root).as_posix()


def bring_pictures_along(document: Path, destination: Path, root: Path) -> list[Path]:
    """Copy the local pictures an HTML or Markdown file refers to beside its copy, keeping their paths.

    A picture the copy cannot take along is never dropped silently: one outside the file's folder
    (docling does not read those, wherever the file is) or missing is reported here, and the document's
    results list it with that reason; a picture that cannot be copied stops the submission.
    """
    from docsight.extraction.references import local_pictures

    copied: list[Path] = []
    outside, missing = [], []
    for picture in local_pictures(document):
        if picture.relative is None:
            outside.append(picture.source)
        elif not picture.exists:
            missing.append(picture.source)
        else:
            target = destination / picture.relative
            try:
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(picture.path, target)
            except OSError as error:
                raise CommandError(f"{document.name} refers to the picture {picture.source}, which cannot be copied "
                                   f"under the document root {root} with it: {error.strerror or error}. Put the "
                                   f"file's folder under {root} and submit it from there.") from None
            copied.append(target)
    if copied:
        print(f"{document.name}: brought along {len(copied)} picture{'s' if len(copied) != 1 else ''} it refers to",
              flush=True)
    if outside:
        print(f"note: {document.name} refers to {len(outside)} picture(s) outside its folder ({_listed(outside)}); "
              "docsight reads only pictures in a document's folder, so they will be listed as skipped "
              "(outside_document_folder). Move them beside the file to have them described.", flush=True)
    if missing:
        print(f"note: {document.name} refers to {len(missing)} picture(s) that do not exist ({_listed(missing)}); "
              "they will be listed as skipped (missing_picture).", flush=True)
    return copied


def _listed(sources: list[str], most: int = 3) -> str:
    shown = ", ".join(sources[:most])
    return shown + (f" and {len(sources) - most} more" if len(sources) > most else "")


# --- following progress -----------------------------------------------------------------

async def follow(reader: OutcomeReader, worker_url: str, submissions: list[Submission],
                 timeout: float) -> dict[str, Outcome]:
    """Outcomes from the broker (they decide completion), progress from the worker's web view meanwhile."""
    progress = ProgressDisplay(submissions)
    outcomes: dict[str, Outcome] = {}
    deadline = time.monotonic() + timeout
    view_problem_reported = False
    async with aiohttp.ClientSession() as http:
        while len(outcomes) < len(submissions) and time.monotonic() < deadline:
            for outcome in await reader.poll(0.5):
                submission = progress.by_id.get(outcome.document_id)
                if submission and outcome.document_id not in outcomes:
                    outcomes[outcome.document_id] = outcome
                    progress.finish(submission, outcome)
            pending = [s for s in submissions if s.document_id not in outcomes]
            views = await asyncio.gather(*(fetch_document_view(http, worker_url, s.document_id) for s in pending),
                                         return_exceptions=True)
            for submission, view in zip(pending, views):
                if isinstance(view, dict):
                    progress.update(submission, view)
                elif isinstance(view, UnknownDocument):
                    progress.update(submission, None)
                elif isinstance(view, WorkerCouldNotAnswer):
                    continue  # e.g. a rebalance: the next poll asks again
                elif not view_problem_reported:
                    view_problem_reported = True
                    progress.note(f"no progress to show: {worker_unreachable(worker_url, view)}; still waiting "
                                  "for the outcomes on the broker")
    progress.close()
    return outcomes


class ProgressDisplay:
    """One line per document: redrawn in place on a terminal, printed when it changes otherwise."""

    def __init__(self, submissions: list[Submission], stream=None) -> None:
        self.stream = stream or sys.stdout
        self.tty = self.stream.isatty()
        self.by_id = {s.document_id: s for s in submissions}
        self.width = max(len(s.path.name) for s in submissions)
        self.rows = {s.document_id: self._row(s, "queued", None, "waiting for a worker to read it")
                     for s in submissions}
        self.drawn = 0
        self._draw()

    def update(self, submission: Submission, view: dict | None) -> None:
        if view is None:
            return  # not read by a worker yet: still queued
        pictures = view["pictures"]
        expected = pictures["expected"]
        done = pictures["described"] + pictures["failed"] + pictures["skipped"]
        if expected is None:
            text = "extracting pictures"
        else:
            text = f"{pictures['described']}/{expected} pictures described"
            extra = [f"{pictures[key]} {key}" for key in ("failed", "skipped") if pictures[key]]
            if extra:
                text += f" ({', '.join(extra)})"
        if view["status"] == "failed" and view.get("failure"):
            text = view["failure"]["reason"]
        fraction = None if expected is None else (done / expected if expected else 1.0)
        self._set(submission, self._row(submission, view["status"], fraction, text))

    def finish(self, submission: Submission, outcome: Outcome) -> None:
        event = outcome.value
        if outcome.enriched:
            pictures = event.get("pictures") or []
            described = sum(1 for p in pictures if p.get("status") == "described")
            cached = sum(1 for p in pictures if p.get("cached"))
            text = (f"{described}/{len(pictures)} pictures described"
                    + (f" ({cached} from the description cache)" if cached else "")
                    + f", {event.get('input_tokens', 0)} input tokens, ${event.get('cost_usd', 0):.6f}")
            self._set(submission, self._row(submission, "enriched", 1.0, text))
        else:
            self._set(submission, self._row(submission, "failed", None, describe_failure(event)))

    def note(self, text: str) -> None:
        self._erase()
        print(f"\r\x1b[2K{text}" if self.tty else text, file=self.stream, flush=True)
        self._draw()

    def close(self) -> None:
        self.drawn = 0

    def _row(self, submission: Submission, status: str, fraction: float | None, text: str) -> str:
        name = submission.path.name.ljust(self.width)
        if not self.tty:
            return f"{submission.path.name} ({submission.document_id}): {status}: {text}"
        filled = 0 if fraction is None else round(BAR_WIDTH * fraction)
        return f"{name}  [{'#' * filled}{'-' * (BAR_WIDTH - filled)}]  {status:<10} {text}"

    def _set(self, submission: Submission, row: str) -> None:
        if self.rows[submission.document_id] == row:
            return
        self.rows[submission.document_id] = row
        if self.tty:
            self._erase()
            self._draw()
        else:
            print(row, file=self.stream, flush=True)

    def _draw(self) -> None:
        if self.tty:
            for row in self.rows.values():
                print(f"\r\x1b[2K{row}", file=self.stream)
            self.drawn = len(self.rows)
            self.stream.flush()
        elif not self.drawn:
            for row in self.rows.values():
                print(row, file=self.stream)
            self.drawn = len(self.rows)
            self.stream.flush()

    def _erase(self) -> None:
        if self.tty and self.drawn:
            self.stream.write(f"\x1b[{self.drawn}F")  # back to the first row; _draw overwrites each line
            self.drawn = 0


# --- the results ------------------------------------------------------------------------

def report(submissions: list[Submission], outcomes: dict[str, Outcome], output: Path, timeout: float,
           store_dir: Path | None = None) -> int:
    names = Counter(s.path.name for s in submissions)
    problems = 0
    print()
    for submission in submissions:
        outcome = outcomes.get(submission.document_id)
        label = f"{submission.path.name} ({submission.document_id})"
        if outcome is None:
            problems += 1
            print(f"{label}: no outcome within {timeout:.0f}s; follow it with docsight status "
                  f"{submission.document_id}")
        elif not outcome.enriched:
            problems += 1
            print(f"{label}: FAILED, {describe_failure(outcome.value)}")
        else:
            name = submission.path.name if names[submission.path.name] == 1 else (
                f"{submission.document_id}{submission.path.suffix}")
            try:
                written = write_enriched(output, name, outcome.value, store_dir)
            except CommandError as error:
                problems += 1
                print(f"{label}: enriched, but its result cannot be written: {error}")
                continue
            print(f"{label}: enriched, wrote {written.markdown} and {written.details}")
    enriched = sum(1 for outcome in outcomes.values() if outcome.enriched)
    print(f"{len(submissions)} submitted, {enriched} enriched, {problems} failed or unfinished")
    return 1 if problems else 0


def _settings_to_pass_on() -> dict[str, str]:
    return {key: value for key, value in os.environ.items()
            if key.startswith(("DOCSIGHT_", "VISION_", "GEMINI_", "GOOGLE_GEMINI_"))
            and key not in CLUSTER_MANAGED_SETTINGS}


def _login_name() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "docsight-cli"

"""ExtractionPool: extract_document in worker processes, awaited from asyncio."""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import os
import threading
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path

from .errors import ExtractionError
from .models import ExtractionLimits, ExtractionResult

_log = logging.getLogger(__name__)

# Set in each worker process by _init_worker.
_worker_store = None
_worker_limits: ExtractionLimits | None = None


def _init_worker(store_root: str, limits: ExtractionLimits) -> None:
    os.environ["HF_HUB_OFFLINE"] = "1"
    global _worker_store, _worker_limits
    from PIL import Image

    from docsight.storage import BlobStore

    from . import engine

    # Past the cap PIL warns, past twice the cap it raises: a second line of defence behind our own checks.
    Image.MAX_IMAGE_PIXELS = limits.max_picture_pixels
    _worker_store = BlobStore(store_root)
    _worker_limits = limits
    engine.warm_up()  # import docling and build ONE converter (and its pipelines) per process


def _extract_in_worker(path: str, content_type: str | None) -> ExtractionResult:
    from .extract import extract_document

    assert _worker_store is not None and _worker_limits is not None, "worker not initialised"
    return extract_document(Path(path), content_type, _worker_store, _worker_limits)


def _worker_pid() -> int:
    return os.getpid()


class ExtractionPool:
    """A process pool with one docling converter per process.

    Processes are started with "spawn" (never fork: the parent runs asyncio
    and Kafka client threads, which a forked child would inherit mid-state).
    A worker that dies (killed, out of memory) breaks a ProcessPoolExecutor
    for good; the pool then replaces the executor and reports that one
    document as conversion_failed.
    """

    def __init__(self, store_root: Path, processes: int, limits: ExtractionLimits = ExtractionLimits()) -> None:
        if processes < 1:
            raise ValueError("processes must be at least 1")
        self.store_root = Path(store_root)
        self.processes = processes
        self.limits = limits
        self._lock = threading.Lock()
        self._closed = False
        self._executor = self._new_executor()

    def _new_executor(self) -> ProcessPoolExecutor:
        return ProcessPoolExecutor(
            max_workers=self.processes,
            mp_context=multiprocessing.get_context("spawn"),
            initializer=_init_worker,
            initargs=(str(self.store_root), self.limits),
        )

    def _replace_broken(self, broken: ProcessPoolExecutor) -> None:
        with self._lock:
            if self._executor is broken and not self._closed:
                _log.warning("an extraction worker died; starting a new process pool")
                broken.shutdown(wait=False, cancel_futures=True)
                self._executor = self._new_executor()

    async def extract(self, path: Path, content_type: str | None) -> ExtractionResult:
        if self._closed:
            raise RuntimeError("ExtractionPool is closed")
        executor = self._executor
        loop = asyncio.get_running_loop()
        try:
            future = loop.run_in_executor(executor, _extract_in_worker, str(path), content_type)
        except BrokenProcessPool:
            # Broken before this document reached it (a worker died while idle): retry on a new pool.
            self._replace_broken(executor)
            executor = self._executor
            future = loop.run_in_executor(executor, _extract_in_worker, str(path), content_type)
        try:
            return await future
        except BrokenProcessPool:
            # Possibly this document's fault (memory): fail it rather than retry a poison input.
            self._replace_broken(executor)
            raise ExtractionError(
                "conversion_failed", f"{Path(path).name}: the extraction worker process died (out of memory?)"
            ) from None

    def warm_up(self) -> None:
        """Start every worker now (each imports docling in its initializer) and wait for them."""
        seen: set[int] = set()
        for _ in range(3):
            futures = [self._executor.submit(_worker_pid) for _ in range(self.processes)]
            seen.update(f.result() for f in futures)
            if len(seen) >= self.processes:
                return

    def close(self) -> None:
        with self._lock:
            self._closed = True
            self._executor.shutdown(wait=True, cancel_futures=True)

    def __enter__(self) -> ExtractionPool:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

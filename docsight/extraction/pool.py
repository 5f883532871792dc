"""ExtractionPool: documents converted in long-lived worker processes, one at a time each, awaited from asyncio.

A bad document can only fail itself. Each process converts one document at a time over
its own pipe, so when a conversion runs past its deadline the pool kills that one process
(the document fails with ``extraction_timeout``), and when a process dies during a
conversion (killed, out of memory, segfault) only the document it held fails
(``extraction_crashed``). The dead process is replaced by a fresh one; a document that was
handed to a process that died before starting it is retried on a fresh process.
The memory limit and a backstop for the deadline are enforced in the process itself
(see :mod:`.worker_process`), and processes die with their parent, even on SIGKILL.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import multiprocessing
import os
import signal
import threading
import time
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from multiprocessing.connection import wait as wait_for_ready
from multiprocessing.util import Finalize
from pathlib import Path

from . import worker_process
from .errors import ExtractionError
from .models import ExtractionLimits, ExtractionResult

_log = logging.getLogger(__name__)

STARTUP_TIMEOUT_SECONDS = 180.0  # importing docling takes 4-8 s; much longer on a loaded machine
ACK_TIMEOUT_SECONDS = 30.0  # an idle process answers a job at once
STOP_GRACE_SECONDS = 5.0
DISPATCH_ATTEMPTS = 3  # processes that die before starting a document (not its fault) before giving up
POLL_SECONDS = 0.5  # how often a waiting job notices close()


class PoolClosing(Exception):
    """The pool closed while a document waited or converted: not the document's fault."""


class _Lost(Exception):
    """The process died or went silent before it started the document: try another."""


class _Worker:
    """One extraction process and the parent's end of its pipe.

    A dead process is reaped only after its process group was killed: until then its
    pid (the group's id) cannot be reused, so killpg never reaches a stranger.
    """

    def __init__(self, process: multiprocessing.process.BaseProcess, conn) -> None:
        self.process = process
        self.conn = conn
        self.pid: int = process.pid
        self.ready = False
        self.document: Path | None = None  # being converted

    def alive(self) -> bool:
        return not self.conn.closed and not wait_for_ready([self.process.sentinel], 0)

    def await_ready(self, closing: threading.Event) -> None:
        if self.ready:
            return
        deadline = time.monotonic() + STARTUP_TIMEOUT_SECONDS
        while not closing.is_set():
            message = self.receive(deadline)
            if message is not None and message[0] == "ready":
                self.ready = True
                return
            if not self.alive() or time.monotonic() >= deadline:
                self.kill()
                raise _Lost(f"extraction process {self.pid} did not start ({_death(self.process)})")
        raise PoolClosing

    def receive(self, deadline: float):
        """A message, or None on timeout or death (waits POLL_SECONDS at most)."""
        timeout = max(0.0, min(POLL_SECONDS, deadline - time.monotonic()))
        try:
            if self.conn in wait_for_ready([self.conn, self.process.sentinel], timeout) or self.conn.poll():
                return self.conn.recv()
        except (EOFError, OSError, ValueError):
            pass  # the process is gone: its end of the pipe closed
        return None

    def signal_kill(self) -> None:
        """SIGKILL the process and what it started (docling may run LibreOffice): its process group."""
        try:
            os.killpg(self.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass  # no group yet (the process makes it first thing): the process alone
        self.process.kill()

    def kill(self) -> None:
        """Kill, reap, close the pipe. Once."""
        if self.conn.closed:
            return
        self.signal_kill()
        self.process.join(timeout=STOP_GRACE_SECONDS)
        self.conn.close()

    def stop(self) -> None:
        """Ask an idle process to end; kill it (and its group) if it does not."""
        try:
            self.conn.send(("stop",))
        except (OSError, ValueError):
            pass
        wait_for_ready([self.process.sentinel], STOP_GRACE_SECONDS)
        self.kill()


def _death(process) -> str:
    code = process.exitcode
    if code is None:
        return "still running"
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exit code {code}"


def _kill_all(workers: set[_Worker]) -> None:
    for worker in list(workers):
        worker.kill()
    workers.clear()


class ExtractionPool:
    """Long-lived spawn processes, each with one docling converter, each converting one document at a time.

    Processes are started with "spawn" (never fork: the parent runs asyncio and Kafka
    client threads, which a forked child would inherit mid-state), all from one
    long-lived thread: the kernel's parent-death signal follows the thread that
    started the process, not the process.
    """

    def __init__(self, store_root, processes: int, limits: ExtractionLimits = ExtractionLimits()) -> None:
        """``store_root``: a folder, or a ``docsight.storage.StoreLocation`` (any backend)."""
        if processes < 1:
            raise ValueError("processes must be at least 1")
        self.store_root = store_root if hasattr(store_root, "scheme") else Path(store_root)
        self.processes = processes
        self.limits = limits
        self._context = multiprocessing.get_context("spawn")
        self._condition = threading.Condition()
        self._closing = threading.Event()
        self._workers: set[_Worker] = set()
        self._idle: deque[_Worker] = deque()
        self._job_ids = itertools.count(1)
        # One thread per process waits on its document: a queued document holds no thread.
        self._jobs = ThreadPoolExecutor(max_workers=processes, thread_name_prefix="extraction-job")
        self._spawner = ThreadPoolExecutor(max_workers=1, thread_name_prefix="extraction-spawner")
        # At interpreter exit, before multiprocessing joins its children (which ignore SIGTERM).
        self._finalizer = Finalize(self, _kill_all, args=(self._workers,), exitpriority=100)

    # -- processes ------------------------------------------------------------

    def _start_process(self) -> _Worker:
        parent_end, child_end = self._context.Pipe(duplex=True)
        process = self._context.Process(
            target=worker_process.main,
            args=(child_end, self.store_root, self.limits, os.getpid()),
            name="docsight-extraction",
            daemon=False,  # docling may start processes of its own; close() and the finalizer end these
        )
        process.start()
        child_end.close()
        return _Worker(process, parent_end)

    def _spawn(self) -> _Worker:
        return self._spawner.submit(self._start_process).result()

    def _acquire(self) -> _Worker:
        with self._condition:
            while True:
                if self._closing.is_set():
                    raise PoolClosing
                if self._idle:
                    worker = self._idle.popleft()
                    if worker.alive():
                        return worker
                    self._workers.discard(worker)  # died while idle
                    worker.kill()
                    continue
                if len(self._workers) < self.processes:
                    worker = self._spawn()
                    self._workers.add(worker)
                    return worker
                self._condition.wait()

    def _release(self, worker: _Worker, healthy: bool) -> None:
        worker.document = None
        if not healthy:
            worker.kill()
        with self._condition:
            if healthy and not self._closing.is_set():
                self._idle.append(worker)
            else:
                self._workers.discard(worker)
                if not self._closing.is_set():
                    # Start the replacement now: it warms up while nobody waits for it.
                    try:
                        replacement = self._spawn()
                    except Exception:  # noqa: BLE001 - the next _acquire starts one
                        _log.exception("could not start a replacement extraction process")
                    else:
                        self._workers.add(replacement)
                        self._idle.append(replacement)
            self._condition.notify()
        if healthy and self._closing.is_set():
            worker.stop()

    def _replace(self, worker: _Worker) -> _Worker:
        worker.kill()
        replacement = self._spawn()
        with self._condition:
            self._workers.discard(worker)
            self._workers.add(replacement)
        return replacement

    # -- one document ---------------------------------------------------------

    def _run(self, path: Path, content_type: str | None) -> ExtractionResult:
        lost = []
        for _ in range(DISPATCH_ATTEMPTS):
            worker = self._acquire()
            healthy = False
            try:
                worker.await_ready(self._closing)
                outcome, healthy = self._convert(worker, path, content_type)
            except _Lost as error:
                _log.warning("%s; %s goes to a fresh process", error, path.name)
                lost.append(str(error))
                continue
            finally:
                self._release(worker, healthy)
            if isinstance(outcome, BaseException):
                raise outcome
            return outcome
        raise RuntimeError(f"{path.name}: extraction processes keep dying before starting it: {'; '.join(lost)}")

    def _convert(self, worker: _Worker, path: Path, content_type: str | None):
        """(result or ExtractionError, whether the process may take another document)."""
        job_id = next(self._job_ids)
        try:
            worker.conn.send(("extract", job_id, str(path), content_type))
        except (OSError, ValueError):
            raise _Lost(f"extraction process {worker.pid} is gone") from None
        acked = time.monotonic() + ACK_TIMEOUT_SECONDS
        while True:
            if self._closing.is_set():
                raise PoolClosing
            message = worker.receive(acked)
            if message is not None and message[:2] == ("started", job_id):
                break
            if not worker.alive() or time.monotonic() >= acked:
                worker.kill()
                raise _Lost(f"extraction process {worker.pid} did not take the document ({_death(worker.process)})")
        worker.document = path
        deadline = time.monotonic() + self.limits.timeout_seconds
        while True:
            message = worker.receive(deadline)
            if message is not None and message[0] == "done" and message[1] == job_id:
                _, _, outcome, retire = message
                return outcome, not retire
            if self._closing.is_set():
                raise PoolClosing  # close() may have killed the process: not the document's doing
            if not worker.alive():
                return self._crashed(worker, path), False
            if time.monotonic() >= deadline:
                worker.kill()
                _log.warning("%s: no result after %.0f s; killed extraction process %d",
                             path.name, self.limits.timeout_seconds, worker.pid)
                return ExtractionError(
                    "extraction_timeout",
                    f"{path.name}: converting it took longer than {self.limits.timeout_seconds:g} s; stopped",
                ), False

    def _crashed(self, worker: _Worker, path: Path) -> ExtractionError:
        worker.kill()  # what it started goes with it; reaped, it has an exit code
        how = _death(worker.process)
        _log.warning("%s: extraction process %d died while converting it (%s)", path.name, worker.pid, how)
        if worker.process.exitcode in (-signal.SIGALRM, -signal.SIGXCPU):
            # The process's own backstop: the parent missed the deadline (stalled, overloaded).
            return ExtractionError(
                "extraction_timeout",
                f"{path.name}: converting it took longer than {self.limits.timeout_seconds:g} s; stopped",
            )
        return ExtractionError(
            "extraction_crashed", f"{path.name}: the extraction process died while converting it ({how})"
        )

    # -- public ---------------------------------------------------------------

    async def extract(self, path: Path, content_type: str | None) -> ExtractionResult:
        """Convert one document; raises ExtractionError (with its reason) when it cannot be.

        Raises asyncio.CancelledError when the pool closes meanwhile: the document was
        not at fault, so it must not be failed (a worker that stops leaves its event for the next one).
        """
        if self._closing.is_set():
            raise RuntimeError("ExtractionPool is closed")
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(self._jobs, self._run, Path(path), content_type)
        except PoolClosing:
            raise asyncio.CancelledError("the extraction pool closed before the document was converted") from None

    def warm_up(self) -> None:
        """Start every process now and wait until each has imported docling and built its converter."""
        workers = [self._acquire() for _ in range(self.processes)]
        try:
            for index in range(len(workers)):
                for attempt in range(DISPATCH_ATTEMPTS):
                    try:
                        workers[index].await_ready(self._closing)
                        break
                    except _Lost as error:
                        if attempt == DISPATCH_ATTEMPTS - 1:
                            raise RuntimeError(f"extraction processes cannot start: {error}") from None
                        workers[index] = self._replace(workers[index])
        finally:
            for worker in workers:
                self._release(worker, healthy=worker.alive())

    def pids(self) -> list[int]:
        """Process ids of the extraction processes (starting, idle or converting)."""
        with self._condition:
            return sorted(worker.pid for worker in self._workers)

    def running(self) -> dict[int, Path]:
        """The documents being converted now, by process id."""
        with self._condition:
            return {worker.pid: worker.document for worker in self._workers if worker.document is not None}

    def close(self) -> None:
        """Stop every process (documents in flight raise CancelledError in extract) and wait for them."""
        with self._condition:
            if self._closing.is_set():
                return
            self._closing.set()
            self._condition.notify_all()
            idle, busy = list(self._idle), [w for w in self._workers if w not in self._idle]
            self._idle.clear()
        for worker in busy:
            worker.signal_kill()  # its job thread sees it, raises PoolClosing and cleans up
        self._jobs.shutdown(wait=True, cancel_futures=True)
        for worker in idle:
            if worker.ready:
                worker.stop()
            else:
                worker.kill()  # still importing docling: nothing to finish
        _kill_all(self._workers)  # what is left: processes still starting
        self._spawner.shutdown(wait=True)
        self._finalizer.cancel()

    def __enter__(self) -> ExtractionPool:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

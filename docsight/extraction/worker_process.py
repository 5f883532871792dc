"""What runs inside one extraction process: one docling converter, one document at a time, over a pipe.

The limits that must hold even when the parent cannot act are enforced here:

- memory: RLIMIT_AS caps the address space before docling is imported;
- time: per document, an alarm (SIGALRM, default action: terminate) and a CPU-time
  limit (SIGXCPU) a little past the deadline the parent enforces, in case the parent
  is stuck or slow to kill;
- orphans: the kernel sends SIGKILL when the parent dies (PR_SET_PDEATHSIG), and a
  watchdog thread exits when the parent pid changes (a backstop for the prctl race
  and for kernels without it).

Protocol (pickled tuples over a multiprocessing Pipe), child → parent:
``("ready", pid)`` once, then per job ``("started", job_id)`` and
``("done", job_id, result_or_ExtractionError, retire)``. Parent → child:
``("extract", job_id, path, content_type)`` or ``("stop",)``.
"""

from __future__ import annotations

import ctypes
import math
import os
import resource
import signal
import sys
import threading
import time
from pathlib import Path

from .errors import ExtractionError
from .models import ExtractionLimits

PR_SET_PDEATHSIG = 1  # linux/prctl.h
EXIT_ORPHANED = 3
WATCHDOG_INTERVAL_SECONDS = 0.5
# A job that leaves the process within this of its memory limit retires the process:
# the next document gets a fresh heap, and a failure there is most likely the limit.
MEMORY_HEADROOM_FRACTION = 0.1
MEMORY_HEADROOM_MIN_BYTES = 64 * 1024 * 1024


def backstop_seconds(timeout_seconds: float) -> int:
    """When the process ends itself: past the parent's deadline, so the parent normally acts first."""
    return math.ceil(timeout_seconds + max(5.0, 0.1 * timeout_seconds))


def die_with_parent(parent_pid: int) -> None:
    if sys.platform.startswith("linux"):
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        except (OSError, AttributeError):
            pass  # the watchdog alone
    if os.getppid() != parent_pid:  # the parent died before prctl: nobody would signal us
        os._exit(EXIT_ORPHANED)

    def watch() -> None:
        while True:
            time.sleep(WATCHDOG_INTERVAL_SECONDS)
            if os.getppid() != parent_pid:
                os._exit(EXIT_ORPHANED)

    threading.Thread(target=watch, name="parent-watchdog", daemon=True).start()


def limit_memory(memory_bytes: int | None) -> None:
    if memory_bytes:
        resource.setrlimit(resource.RLIMIT_AS, (memory_bytes, memory_bytes))


class JobBackstop:
    """Ends the process if one job runs well past its deadline, whether it sleeps or spins."""

    def __init__(self, timeout_seconds: float) -> None:
        self.seconds = backstop_seconds(timeout_seconds)

    def __enter__(self) -> JobBackstop:
        signal.alarm(self.seconds)
        usage = resource.getrusage(resource.RUSAGE_SELF)
        _, hard = resource.getrlimit(resource.RLIMIT_CPU)
        # RLIMIT_CPU counts the process's whole life: the soft limit moves with each job.
        soft = math.ceil(usage.ru_utime + usage.ru_stime) + self.seconds
        if hard == resource.RLIM_INFINITY or soft < hard:
            resource.setrlimit(resource.RLIMIT_CPU, (soft, hard))
        return self

    def __exit__(self, *exc_info) -> None:
        signal.alarm(0)
        _, hard = resource.getrlimit(resource.RLIMIT_CPU)
        resource.setrlimit(resource.RLIMIT_CPU, (hard, hard))


def peak_address_space_bytes() -> int | None:
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmPeak:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def near_memory_limit(memory_bytes: int | None) -> bool:
    if not memory_bytes:
        return False
    peak = peak_address_space_bytes()
    headroom = max(MEMORY_HEADROOM_MIN_BYTES, int(memory_bytes * MEMORY_HEADROOM_FRACTION))
    return peak is not None and peak >= memory_bytes - headroom


def _ran_out_of_memory(error: BaseException) -> bool:
    seen = set()
    while error is not None and id(error) not in seen:
        if isinstance(error, MemoryError):
            return True
        seen.add(id(error))
        error = error.__cause__ or error.__context__
    return False


def run_job(path: Path, content_type: str | None, store, limits: ExtractionLimits):
    """(result or ExtractionError, retire this process)."""
    from .extract import extract_document

    try:
        outcome = extract_document(path, content_type, store, limits)
        failed = None
    except ExtractionError as error:
        outcome = failed = error
    except Exception as error:  # noqa: BLE001 - extract_document wraps everything; this is the last line
        outcome = failed = ExtractionError(
            "conversion_failed", f"{path.name}: unexpected {type(error).__name__} while converting: {error}"
        )
        outcome.__context__ = error
    retire = near_memory_limit(limits.memory_bytes)
    if failed is not None and (retire or _ran_out_of_memory(failed)):
        # docling reports an allocation failure as a bare "failure": name the real cause.
        outcome = ExtractionError(
            "extraction_crashed",
            f"{path.name}: converting it needs more memory than the limit of "
            f"{limits.memory_bytes // (1024 * 1024):,} MiB per extraction process",
        )
        retire = True
    return outcome, retire


def main(conn, store_root, limits: ExtractionLimits, parent_pid: int) -> None:
    """Entry point of an extraction process (spawned by ExtractionPool)."""
    os.setpgid(0, 0)  # its own process group: the parent kills what docling starts (LibreOffice) with it
    die_with_parent(parent_pid)
    # The parent decides when this process ends: a Ctrl-C or a SIGTERM sent to the whole
    # group must not kill a conversion in flight and fail its document.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    limit_memory(limits.memory_bytes)
    os.environ["HF_HUB_OFFLINE"] = "1"

    from PIL import Image

    from docsight.storage import open_store

    from . import engine

    # Past the cap PIL warns, past twice the cap it raises: a second line of defence behind our own checks.
    Image.MAX_IMAGE_PIXELS = limits.max_picture_pixels
    store = open_store(store_root)  # a folder or a StoreLocation: the worker's own store
    engine.warm_up()  # import docling and build ONE converter (and its pipelines) per process
    conn.send(("ready", os.getpid()))
    while True:
        try:
            message = conn.recv()
        except (EOFError, OSError):
            return  # the parent closed the pipe
        if message[0] != "extract":
            return
        _, job_id, path, content_type = message
        conn.send(("started", job_id))
        with JobBackstop(limits.timeout_seconds):
            outcome, retire = run_job(Path(path), content_type, store, limits)
        conn.send(("done", job_id, outcome, retire))
        if retire:
            return

"""A bad document can only fail itself: deadlines, memory limits, crashes, archive totals, no orphans.

Real docling processes on real files. The hanging document is a real one: a 5 KB XLSX whose
only two cells are A1 and XFD1048576 (the last cell of a sheet). docling walks the whole
sheet, so its process spins and grows by about 80 MB/s until something stops it.
The processes are found through /proc, the way an operator would see them.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import select
import signal
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import pytest

from docsight.extraction import ExtractionError, ExtractionLimits, ExtractionPool, extract_document
from docsight.storage import BlobStore

REPO = Path(__file__).resolve().parents[1]
SAMPLES = REPO / "samples" / "documents"
FAST = ["annual_report.pdf", "product_brief.docx", "quarterly_review.pptx", "team_update.md"]
MIB = 1024 * 1024


# ----------------------------------------------------------------------------
# Documents and processes
# ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def documents(tmp_path_factory) -> dict[str, Path]:
    import openpyxl

    folder = tmp_path_factory.mktemp("documents")
    endless = openpyxl.Workbook()
    endless.active["A1"] = "first cell"
    endless.active["XFD1048576"] = "last cell of the sheet"
    endless.save(folder / "endless_sheet.xlsx")
    slow = openpyxl.Workbook()  # converts in several seconds: long enough to be in flight
    for row in range(1, 2001):
        slow.active.append([row * column for column in range(1, 51)])
    slow.save(folder / "large_sheet.xlsx")
    return {"endless": folder / "endless_sheet.xlsx", "slow": folder / "large_sheet.xlsx"}


def process_table() -> dict[int, tuple[int, str, float]]:
    """pid → (parent pid, state, CPU seconds) of every process, from /proc."""
    ticks = os.sysconf("SC_CLK_TCK")
    table = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2:].split()
        table[int(entry.name)] = (int(fields[1]), fields[0], (int(fields[11]) + int(fields[12])) / ticks)
    return table


def children_of(parent: int) -> dict[int, float]:
    """Live (not zombie) children of ``parent``: pid → CPU seconds."""
    return {pid: cpu for pid, (ppid, state, cpu) in process_table().items() if ppid == parent and state not in "ZX"}


def spawned_children() -> set[int]:
    """This process's live multiprocessing children that convert documents (not the resource tracker)."""
    found = set()
    for pid in children_of(os.getpid()):
        try:
            if b"spawn_main" in Path(f"/proc/{pid}/cmdline").read_bytes():
                found.add(pid)
        except OSError:
            continue
    return found


def alive(pid: int) -> bool:
    entry = process_table().get(pid)
    return entry is not None and entry[1] not in "ZX"


def wait_until(condition, timeout: float, interval: float = 0.2) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(interval)
    return condition()


async def busiest_child_during(seconds: float) -> int:
    """The child of this process that used the most CPU meanwhile (the one spinning on the endless sheet)."""
    before = children_of(os.getpid())
    await asyncio.sleep(seconds)
    after = children_of(os.getpid())
    return max(after, key=lambda pid: after[pid] - before.get(pid, 0.0))


def reason(outcome) -> str:
    assert isinstance(outcome, ExtractionError), f"expected a failure, got {outcome!r}"
    assert str(outcome)
    return outcome.reason


def converted(outcome) -> bool:
    return not isinstance(outcome, BaseException)


# ----------------------------------------------------------------------------
# Deadline
# ----------------------------------------------------------------------------


@pytest.mark.timeout(180)
def test_a_hanging_document_times_out_and_fails_alone(tmp_path, documents):
    limits = ExtractionLimits(timeout_seconds=5)

    async def scenario(pool: ExtractionPool):
        hanging = asyncio.ensure_future(pool.extract(documents["endless"], None))
        await asyncio.sleep(1)  # it is converting: the others arrive while it hangs
        others = await asyncio.gather(*(pool.extract(SAMPLES / name, None) for name in FAST), return_exceptions=True)
        assert not hanging.done(), "the hanging document is still converting when the others are done"
        return await asyncio.gather(hanging, return_exceptions=True), others

    with ExtractionPool(tmp_path / "blobs", processes=2, limits=limits) as pool:
        pool.warm_up()
        before = spawned_children()
        [hung], others = asyncio.run(scenario(pool))
        assert reason(hung) == "extraction_timeout"
        assert [len(result.pictures) for result in others] == [5, 4, 4, 3]
        # Exactly the process that held it was killed, and replaced.
        killed = before - spawned_children()
        assert len(killed) == 1 and not alive(killed.pop())
        assert len(pool.pids()) == 2 and set(pool.pids()) == spawned_children()
        # The pool goes on: the same sample on the replacement.
        again = asyncio.run(pool.extract(SAMPLES / "sales_data.xlsx", None))
        assert len(again.pictures) == 3


@pytest.mark.timeout(180)
def test_a_document_queued_behind_a_hang_runs_on_a_fresh_process(tmp_path, documents):
    async def scenario(pool: ExtractionPool):
        return await asyncio.gather(
            pool.extract(documents["endless"], None), pool.extract(SAMPLES / "product_brief.docx", None),
            return_exceptions=True)

    with ExtractionPool(tmp_path / "blobs", processes=1, limits=ExtractionLimits(timeout_seconds=5)) as pool:
        pool.warm_up()
        first = spawned_children()
        hung, queued = asyncio.run(scenario(pool))
        assert reason(hung) == "extraction_timeout"
        assert converted(queued) and len(queued.pictures) == 4
        assert not first & spawned_children()  # converted by the replacement


# ----------------------------------------------------------------------------
# Crashes and memory
# ----------------------------------------------------------------------------


@pytest.mark.timeout(240)
def test_a_crashed_process_fails_only_its_document(tmp_path, documents):
    async def kill_while_another_converts(pool: ExtractionPool, how: signal.Signals, other: Path):
        doomed = asyncio.ensure_future(pool.extract(documents["endless"], None))
        victim = await busiest_child_during(4)
        second = asyncio.ensure_future(pool.extract(other, None))
        await asyncio.sleep(1.5)  # the second document is converting now
        assert not second.done()
        os.kill(victim, how)
        return await asyncio.gather(doomed, second, return_exceptions=True)

    with ExtractionPool(tmp_path / "blobs", processes=2, limits=ExtractionLimits(timeout_seconds=120)) as pool:
        pool.warm_up()
        crashed, survivor = asyncio.run(kill_while_another_converts(pool, signal.SIGKILL, documents["slow"]))
        assert reason(crashed) == "extraction_crashed" and "SIGKILL" in str(crashed)
        assert converted(survivor), survivor
        assert "2000" in survivor.markdown  # the last row of the large sheet

        crashed, survivor = asyncio.run(kill_while_another_converts(pool, signal.SIGSEGV, documents["slow"]))
        assert reason(crashed) == "extraction_crashed" and "SIGSEGV" in str(crashed)
        assert converted(survivor), survivor
        assert len(pool.pids()) == 2


@pytest.mark.timeout(240)
def test_a_document_over_the_memory_limit_fails_alone(tmp_path, documents):
    # A warm process maps about 500 MiB; the large sheet needs about 700 MiB at its peak.
    limits = ExtractionLimits(timeout_seconds=120, memory_bytes=1200 * MIB)

    async def scenario(pool: ExtractionPool):
        greedy = asyncio.ensure_future(pool.extract(documents["endless"], None))
        await asyncio.sleep(1)
        return await asyncio.gather(greedy, pool.extract(documents["slow"], None), return_exceptions=True)

    with ExtractionPool(tmp_path / "blobs", processes=2, limits=limits) as pool:
        pool.warm_up()
        greedy, modest = asyncio.run(scenario(pool))
        assert reason(greedy) == "extraction_crashed" and "memory" in str(greedy)
        assert converted(modest), modest
        again = asyncio.run(pool.extract(SAMPLES / "product_brief.docx", None))
        assert len(again.pictures) == 4


@pytest.mark.timeout(120)
def test_the_process_enforces_its_own_limits_when_the_parent_does_not(tmp_path, documents):
    """The child's backstop: with nobody killing it, it ends itself a little past the deadline."""
    from docsight.extraction import worker_process

    context = multiprocessing.get_context("spawn")
    parent_end, child_end = context.Pipe()
    limits = ExtractionLimits(timeout_seconds=2, memory_bytes=1536 * MIB)
    process = context.Process(target=worker_process.main,
                              args=(child_end, str(tmp_path / "blobs"), limits, os.getpid()))
    process.start()
    child_end.close()
    try:
        assert parent_end.poll(90), "the extraction process did not start"
        assert parent_end.recv() == ("ready", process.pid)
        [address_space] = [line for line in Path(f"/proc/{process.pid}/limits").read_text().splitlines()
                           if line.startswith("Max address space")]
        assert address_space.split()[3:5] == [str(1536 * MIB)] * 2  # soft and hard
        assert os.getpgid(process.pid) == process.pid  # its own group: killed with what it starts
        parent_end.send(("extract", 1, str(documents["endless"]), None))
        assert parent_end.recv() == ("started", 1)
        started = time.monotonic()
        process.join(60)
        assert process.exitcode in (-signal.SIGALRM, -signal.SIGXCPU), process.exitcode
        assert time.monotonic() - started >= worker_process.backstop_seconds(2) - 1
    finally:
        if process.exitcode is None:
            process.kill()
            process.join()


# ----------------------------------------------------------------------------
# No process left behind
# ----------------------------------------------------------------------------

POOL_OWNER = """
import asyncio, sys, threading, time
from pathlib import Path
from docsight.extraction import ExtractionPool

if __name__ == "__main__":
    pool = ExtractionPool(Path(sys.argv[1]), processes=2)
    pool.warm_up()
    # one process busy converting (the endless sheet), one idle
    threading.Thread(target=asyncio.run, args=(pool.extract(Path(sys.argv[2]), None),), daemon=True).start()
    time.sleep(1)
    print("ready", flush=True)
    time.sleep(600)
"""


@pytest.mark.timeout(180)
def test_extraction_processes_die_with_a_killed_worker(tmp_path, documents):
    script = tmp_path / "pool_owner.py"
    script.write_text(POOL_OWNER)
    owner = subprocess.Popen([sys.executable, str(script), str(tmp_path / "blobs"), str(documents["endless"])],
                             stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, cwd=REPO, text=True)
    children: dict[int, float] = {}
    try:
        readable, _, _ = select.select([owner.stdout], [], [], 120)
        assert readable and owner.stdout.readline().strip() == "ready", "the pool owner did not start"
        children = children_of(owner.pid)
        assert len(children) >= 2, children  # the two extraction processes (and multiprocessing's tracker)
        owner.send_signal(signal.SIGKILL)
        owner.wait(10)
        assert wait_until(lambda: not any(alive(pid) for pid in children), timeout=5), (
            f"left behind: {[pid for pid in children if alive(pid)]}")
    finally:
        owner.kill()
        owner.wait()
        for pid in children:  # a failed run must not leave the endless sheet spinning
            if alive(pid):
                os.kill(pid, signal.SIGKILL)


@pytest.mark.timeout(120)
def test_close_stops_every_process_and_cancels_documents_in_flight(tmp_path, documents):
    async def scenario(pool: ExtractionPool):
        in_flight = asyncio.ensure_future(pool.extract(documents["endless"], None))
        await asyncio.sleep(2)
        pids = spawned_children()
        await asyncio.get_running_loop().run_in_executor(None, pool.close)
        with pytest.raises(asyncio.CancelledError):
            await in_flight  # not failed: the pool's closing is not the document's fault
        return pids

    pool = ExtractionPool(tmp_path / "blobs", processes=2, limits=ExtractionLimits(timeout_seconds=120))
    pool.warm_up()
    pids = asyncio.run(scenario(pool))
    assert len(pids) == 2
    assert not any(alive(pid) for pid in pids)


# ----------------------------------------------------------------------------
# Archives: the total, not only each part
# ----------------------------------------------------------------------------


def padded_docx(target: Path, parts: int, part_bytes: int) -> Path:
    """The sample DOCX plus ``parts`` extra parts of zeros, each ``part_bytes`` decompressed."""
    chunk = bytes(min(part_bytes, 64 * MIB))
    with zipfile.ZipFile(SAMPLES / "product_brief.docx") as source, \
            zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as archive:
        for info in source.infolist():
            archive.writestr(info, source.read(info))
        for index in range(parts):
            with archive.open(f"customXml/padding{index}.bin", "w", force_zip64=True) as part:
                for _ in range(part_bytes // len(chunk)):
                    part.write(chunk)
    return target


def test_an_archive_whose_parts_expand_too_far_together_is_a_decompression_bomb(tmp_path):
    store = BlobStore(tmp_path / "blobs")
    limits = ExtractionLimits(max_archive_bytes=8 * MIB)
    bomb = padded_docx(tmp_path / "padded.docx", parts=3, part_bytes=4 * MIB)
    assert bomb.stat().st_size < 200_000
    with pytest.raises(ExtractionError) as caught:
        extract_document(bomb, None, store, limits)
    assert caught.value.reason == "decompression_bomb" and "in all" in str(caught.value)
    # Under the same cap the plain sample converts: the total is what refused the padded one.
    assert len(extract_document(SAMPLES / "product_brief.docx", None, store, limits).pictures) == 4
    fits = padded_docx(tmp_path / "fits.docx", parts=1, part_bytes=4 * MIB)
    assert len(extract_document(fits, None, store, limits).pictures) == 4


@pytest.mark.timeout(120)
def test_the_default_total_cap_refuses_gigabytes_in_parts_each_under_the_part_cap(tmp_path):
    from docsight.config import load_settings

    assert load_settings().max_archive_mb * MIB == ExtractionLimits().max_archive_bytes == 1024 * MIB
    bomb = padded_docx(tmp_path / "bomb.docx", parts=3, part_bytes=400 * MIB)  # each under 512 MiB
    assert bomb.stat().st_size < 10 * MIB  # far below the 50 MB document limit
    with pytest.raises(ExtractionError) as caught:
        extract_document(bomb, None, BlobStore(tmp_path / "blobs"), ExtractionLimits())
    assert caught.value.reason == "decompression_bomb"

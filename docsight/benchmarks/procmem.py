"""Peak memory of a process tree, read from /proc (psutil is not a dependency).

RSS counts shared pages (the docling libraries mapped in every extraction
process) once per process, so the sum over a tree overstates what the tree
really holds; PSS (``smaps_rollup``) splits shared pages between their users
and sums honestly. Both are reported.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass, field
from pathlib import Path

PROC = Path("/proc")


def read_status_kib(pid: int, key: str = "VmRSS") -> int | None:
    """A ``/proc/PID/status`` field in KiB (VmRSS, VmHWM...), None when the process is gone."""
    try:
        for line in (PROC / str(pid) / "status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1])
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    return None


def read_pss_kib(pid: int) -> int | None:
    try:
        for line in (PROC / str(pid) / "smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                return int(line.split()[1])
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    return None


def command_name(pid: int) -> str:
    try:
        raw = (PROC / str(pid) / "cmdline").read_bytes()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return "?"
    return " ".join(part.decode(errors="replace") for part in raw.split(b"\0") if part)[:120]


def parent_of(stat_line: str) -> int:
    # the command name (2nd field) may hold spaces and parentheses: split after its last ")"
    return int(stat_line.rsplit(")", 1)[1].split()[1])


def descendants(root: int) -> list[int]:
    """Every process below ``root`` (children, grandchildren...)."""
    children: dict[int, list[int]] = {}
    for entry in PROC.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            parent = parent_of((entry / "stat").read_text())
        except (FileNotFoundError, ProcessLookupError, PermissionError, IndexError, ValueError):
            continue
        children.setdefault(parent, []).append(int(entry.name))
    found, pending = [], [root]
    while pending:
        for child in children.get(pending.pop(), []):
            found.append(child)
            pending.append(child)
    return found


@dataclass
class TreePeaks:
    root_rss_kib: int = 0
    child_rss_kib: dict[int, int] = field(default_factory=dict)  # peak per child pid
    tree_rss_kib: int = 0  # peak of the sum at one instant
    tree_pss_kib: int = 0
    children_seen: dict[int, str] = field(default_factory=dict)
    samples: int = 0

    @property
    def largest_child_rss_kib(self) -> int:
        return max(self.child_rss_kib.values(), default=0)


class TreeMemorySampler:
    """Samples a process and its descendants every ``interval`` seconds in a thread.

    ``with TreeMemorySampler(pid) as sampler: ...; sampler.peaks`` — the root's own
    peak also comes from VmHWM, which the kernel keeps exactly between samples.
    """

    def __init__(self, root_pid: int, interval: float = 0.25, with_pss: bool = True) -> None:
        self.root_pid = root_pid
        self.interval = interval
        self.with_pss = with_pss
        self.peaks = TreePeaks()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="memory-sampler", daemon=True)

    def sample(self) -> None:
        peaks = self.peaks
        root = read_status_kib(self.root_pid) or 0
        hwm = read_status_kib(self.root_pid, "VmHWM") or 0
        peaks.root_rss_kib = max(peaks.root_rss_kib, root, hwm)
        tree_rss, tree_pss = root, (read_pss_kib(self.root_pid) or 0) if self.with_pss else 0
        for pid in descendants(self.root_pid):
            rss = read_status_kib(pid)
            if rss is None:
                continue
            if pid not in peaks.children_seen:
                peaks.children_seen[pid] = command_name(pid)
            peaks.child_rss_kib[pid] = max(peaks.child_rss_kib.get(pid, 0), rss,
                                           read_status_kib(pid, "VmHWM") or 0)
            tree_rss += rss
            if self.with_pss:
                tree_pss += read_pss_kib(pid) or 0
        peaks.tree_rss_kib = max(peaks.tree_rss_kib, tree_rss)
        peaks.tree_pss_kib = max(peaks.tree_pss_kib, tree_pss)
        peaks.samples += 1

    def _run(self) -> None:
        while not self._stop.is_set():
            self.sample()
            self._stop.wait(self.interval)

    def __enter__(self) -> "TreeMemorySampler":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self.sample()


def mib(kib: int | float) -> float:
    return kib / 1024.0



def cpu_seconds(pid: int, thread_id: int | None = None) -> float | None:
    """User + system CPU time of a process (or one of its threads), from /proc/PID[/task/TID]/stat."""
    path = PROC / str(pid) / ("stat" if thread_id is None else f"task/{thread_id}/stat")
    try:
        fields = path.read_text().rsplit(")", 1)[1].split()
    except (FileNotFoundError, ProcessLookupError, PermissionError, IndexError):
        return None
    # after the command name: state is fields[0], so utime (14th) and stime (15th) are [11] and [12]
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

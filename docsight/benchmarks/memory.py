"""Scenario ``memory`` (issue 7, scenario 5): peak RSS of a worker and its extraction processes.

The ``extraction`` scenario's documents go through a real worker (two
extraction processes, the default) while /proc is sampled four times a second
for the worker and everything below it. The reference for one extraction
process is a bare docling loop over the same files in a process of its own.
"""

from __future__ import annotations

import shutil

from docsight.gemini_server import GeminiServerConfig

from .cluster import events_for, kill_workers, new_cluster, prepare_topics, start_workers, submit_and_collect
from .extraction import build_workload, run_bare_docling
from .procmem import TreeMemorySampler, mib
from .report import ScenarioResult
from .runner import BenchOptions

NAME = "memory"
TITLE = "Memory: peak RSS of a worker and its extraction processes (issue 7, scenario 5)"
EXTRACTION_PROCESSES = 2


def run(options: BenchOptions) -> ScenarioResult:
    folder = options.scenario_dir(NAME)
    env = {"VISION_RATE_LIMIT_PER_MINUTE": "60000", "DOCSIGHT_EXTRACTION_PROCESSES": str(EXTRACTION_PROCESSES)}
    cluster = new_cluster(folder / "cluster", env=env, gemini_config=GeminiServerConfig(latency_ms=0))
    workload = build_workload(folder / "documents", options.quick)
    shutil.copytree(folder / "documents", cluster.document_root, dirs_exist_ok=True)
    locations = [path.relative_to(folder / "documents").as_posix() for path in workload.all_files]
    with cluster:
        prepare_topics(cluster)
        start_workers(cluster, ["worker1"])
        worker = cluster.workers["worker1"]
        options.progress(f"{NAME}: {len(locations)} documents through worker pid {worker.process.pid}")
        with TreeMemorySampler(worker.process.pid) as sampler:
            events = events_for(locations, "memory")
            _, outcomes = submit_and_collect(cluster, events, timeout=900)
        kill_workers(cluster)
    enriched = sum(1 for o in outcomes.values() if o.enriched)
    options.progress(f"{NAME}: {enriched}/{len(events)} enriched; bare docling loop for reference")
    bare = run_bare_docling(workload, folder / "bare.json")

    peaks = sampler.peaks
    extraction = {pid: kib for pid, kib in peaks.child_rss_kib.items() if "spawn_main" in peaks.children_seen[pid]}
    result = ScenarioResult(NAME, TITLE)
    table = result.table(f"{len(events)} documents through one worker ({EXTRACTION_PROCESSES} extraction processes)")
    table.add("worker process (Faust, RocksDB, agents, SDK)", mib(peaks.root_rss_kib), "MiB")
    table.add("largest extraction process", mib(max(extraction.values(), default=0)), "MiB", bare.peak_rss_mib)
    table.add("worker and all its processes, RSS summed", mib(peaks.tree_rss_kib), "MiB")
    table.add("worker and all its processes, PSS summed", mib(peaks.tree_pss_kib), "MiB")
    table.add("documents enriched", enriched, "", len(events))
    result.notes += [
        "the limit of the extraction process is the peak RSS of a bare docling loop over the same files",
        "RSS counts the libraries every process maps once per process; PSS splits shared pages between "
        "processes, so the PSS sum is what the tree really holds",
        f"processes seen below the worker: {len(peaks.children_seen)} "
        f"({len(extraction)} extraction, the rest multiprocessing's resource tracker)",
        f"sampled {peaks.samples} times (every 0.25 s); a process's own peak is also read from VmHWM",
    ]
    if options.quick:
        result.notes.append("--quick: the sample documents twice each, no photo-heavy documents")
    result.data = {"worker_rss_mib": mib(peaks.root_rss_kib),
                   "extraction_rss_mib": {str(pid): mib(kib) for pid, kib in extraction.items()},
                   "tree_rss_mib": mib(peaks.tree_rss_kib), "tree_pss_mib": mib(peaks.tree_pss_kib),
                   "bare_docling_rss_mib": bare.peak_rss_mib, "children": peaks.children_seen}
    return result

"""Scenario ``budget`` (issue 3): one Gemini quota shared by 1, 2 and 3 workers, and across a rebalance.

One cluster, one backlog larger than the quota allows, and phases: 1 worker,
then a second joins, then a third; the last phase SIGKILLs a worker a third of
the way in and starts a new one at two thirds. Every worker is a process on
the embedded broker with ``VISION_RATE_LIMIT_PER_MINUTE=Q``; the local Gemini
server enforces Q (and a tokens quota) over a sliding window and answers calls
above it with real 429s. The server's busiest window counts only the calls it
admitted, so it can never exceed Q by itself: the 429 count is the check that
docsight paced itself, and the busiest window shows how close it came.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

from docsight.gemini_server import GeminiServerConfig

from .cluster import (StatsSampler, events_for, kill_workers, new_cluster, picture_timings, prepare_topics,
                      start_workers, submit, tokens_in_window)
from .figures import QuotaPlan, Spread, per_minute
from .report import ScenarioResult, Target
from .runner import BenchOptions
from .workload import unique_markdown_documents

NAME = "budget"
TITLE = "Cluster budget: busiest window vs the quota with 1-3 workers and a rebalance (issue 3)"
PICTURES_PER_DOCUMENT = 5
SETTLE_SECONDS = 3.0  # after a worker joins, before the next phase is measured


@dataclass(frozen=True)
class Plan:
    quota: QuotaPlan
    phase_seconds: float
    rebalance_seconds: float
    worker_counts: tuple[int, ...]
    latency_ms: float
    jitter_ms: float


def plan_for(quick: bool) -> Plan:
    if quick:
        # 10 calls per 5 s window: the same 120/min, held over a window short enough to see in seconds
        return Plan(QuotaPlan(10, 5.0, tokens_per_window=5_000), phase_seconds=8, rebalance_seconds=16,
                    worker_counts=(2,), latency_ms=300, jitter_ms=100)
    return Plan(QuotaPlan(120, 60.0, tokens_per_window=60_000), phase_seconds=150, rebalance_seconds=180,
                worker_counts=(1, 2, 3), latency_ms=1000, jitter_ms=500)


@dataclass
class Phase:
    label: str
    started: float
    ended: float = 0.0
    stats: dict | None = None
    peak_tokens_sampled: float = 0.0
    events: tuple[str, ...] = ()

    @property
    def seconds(self) -> float:
        return self.ended - self.started


def run(options: BenchOptions) -> ScenarioResult:
    plan = plan_for(options.quick)
    quota = plan.quota
    total_seconds = len(plan.worker_counts) * plan.phase_seconds + plan.rebalance_seconds
    # more pictures than the quota allows in the whole run, so there is always work
    pictures = math.ceil(1.4 * quota.per_minute * total_seconds / 60) + 20
    documents = math.ceil(pictures / PICTURES_PER_DOCUMENT)

    env = {**quota.worker_env(), "DOCSIGHT_EXTRACTION_PROCESSES": "1", "VISION_ENABLED_FORMATS": "md"}
    server = GeminiServerConfig(**quota.server_config(), latency_ms=plan.latency_ms, jitter_ms=plan.jitter_ms,
                                seed=7)
    cluster = new_cluster(options.scenario_dir(NAME), env=env, gemini_config=server)
    phases: list[Phase] = []
    with cluster:
        gemini = cluster.gemini
        prepare_topics(cluster)
        start_workers(cluster, [f"worker{n + 1}" for n in range(plan.worker_counts[0])])
        locations = unique_markdown_documents(cluster.document_root, documents, PICTURES_PER_DOCUMENT)
        options.progress(f"{NAME}: {documents} documents, {documents * PICTURES_PER_DOCUMENT} unique pictures; "
                         f"quota {quota.per_window}/{quota.window_seconds:g}s ({quota.per_minute:g}/min)")
        submit(cluster, events_for(locations, "budget"))
        _wait_for_first_call(gemini, timeout=120)

        def measure(label: str, seconds: float, midway=()) -> Phase:
            gemini.reset_stats()
            phase = Phase(label, time.time())
            with StatsSampler(lambda: tokens_in_window(gemini), interval=0.25) as sampler:
                deadline = phase.started + seconds
                events = []
                for at_fraction, action in midway:
                    _sleep_until(phase.started + seconds * at_fraction)
                    events.append(action())
                _sleep_until(deadline)
            phase.ended = time.time()
            phase.stats = gemini.stats()
            phase.peak_tokens_sampled = max((s["tokens"] for _, s in sampler.samples), default=0)
            phase.events = tuple(events)
            options.progress(f"{NAME}: {label}: {phase.stats['calls_ok']} calls, {phase.stats['calls_429']} 429s, "
                             f"busiest window {phase.stats['busiest_window']}/{quota.per_window}")
            return phase

        for count in plan.worker_counts:
            while len(cluster.workers) < count:
                cluster.start_worker(f"worker{len(cluster.workers) + 1}")
                time.sleep(SETTLE_SECONDS)
            phases.append(measure(f"{count} worker{'s' if count > 1 else ''}", plan.phase_seconds))

        last = plan.worker_counts[-1]

        def kill_one() -> str:
            name = sorted(cluster.workers)[-1]
            cluster.stop_worker(name, kill=True)
            return f"SIGKILL {name}"

        def add_one() -> str:
            name = f"worker{last + 1}-new"
            cluster.start_worker(name)
            return f"started {name}"

        phases.append(measure(f"{last} workers, one killed at 1/3, one added at 2/3", plan.rebalance_seconds,
                              midway=((1 / 3, kill_one), (2 / 3, add_one))))
        kill_workers(cluster)
        timings = picture_timings(cluster.broker_url)

    return _result(plan, phases, timings, options.quick, documents * PICTURES_PER_DOCUMENT)


def _wait_for_first_call(gemini, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if gemini.stats()["calls_ok"] > 0:
            return
        time.sleep(0.2)
    raise TimeoutError(f"no Gemini call within {timeout:.0f} s of submitting")


def _sleep_until(wall_time: float) -> None:
    delay = wall_time - time.time()
    if delay > 0:
        time.sleep(delay)


def _result(plan: Plan, phases: list[Phase], timings, quick: bool, pictures: int) -> ScenarioResult:
    quota = plan.quota
    window = f"{quota.window_seconds:g} s"
    result = ScenarioResult(NAME, TITLE)
    for phase in phases:
        stats = phase.stats
        inside = [t for t in timings
                  if t.finished and phase.started <= t.finished_at < phase.ended and t.status == "described"]
        requested_by_end = sum(1 for t in timings if t.requested_at < phase.ended)
        finished_by_end = sum(1 for t in timings if t.finished and t.finished_at < phase.ended)
        rebalance = bool(phase.events)
        events = "".join(f"; {event}" for event in phase.events)
        table = result.table(f"{phase.label} ({phase.seconds:.0f} s{events})")
        table.add(f"busiest {window} window, calls", stats["busiest_window"], "calls", quota.per_window,
                  Target("<=", 1.0))
        table.add(f"busiest {window} window, input tokens (sampled 4/s)", phase.peak_tokens_sampled, "tokens",
                  quota.tokens_per_window, Target("<=", 1.0))
        table.add("429 answers", stats["calls_429"], "", None, Target("==", 0, of="value"))
        table.add("achieved calls/min", per_minute(stats["calls_ok"], phase.seconds), "/min", quota.per_minute,
                  None if rebalance else Target(">=", 0.9))
        calls = Spread.of([t.call_seconds for t in inside])
        latency = Spread.of([t.latency for t in inside])
        table.add("p50 call time (pacing wait + call)", calls.p50, "s")
        table.add("p95 call time (pacing wait + call)", calls.p95, "s")
        table.add("p50 picture latency (request to description)", latency.p50, "s")
        table.add("p95 picture latency (request to description)", latency.p95, "s")
        table.add("pictures still waiting at the end", requested_by_end - finished_by_end, "")
    result.notes += [
        f"quota Q = {quota.per_window} calls and {quota.tokens_per_window:,} input tokens per {window} window "
        f"(workers: VISION_RATE_LIMIT_PER_MINUTE={quota.per_minute:g}, VISION_TOKENS_PER_MINUTE="
        f"{quota.tokens_per_minute:g}); server latency {plan.latency_ms:g} ± {plan.jitter_ms:g} ms",
        f"{pictures} unique pictures submitted at once: more than the quota allows in the run, so there is "
        "always work (last row of each phase)",
        "the server counts only admitted calls in its busiest window: 0 429s means docsight never tried to go "
        "above Q; the safety factor 0.95 puts the planned rate at 95% of Q",
        "picture latency is dominated by the backlog wait (everything was submitted at once); "
        "call time is the describer's: pacing wait inside the worker plus the call",
        "in the rebalance phase the killed worker's partitions sit idle until its session times out (10 s) "
        "and the group rebalances (5 s), so its achieved rate has no target",
    ]
    if quick:
        result.notes.append("--quick: window scaled to 5 s, phases of seconds, 2 workers only: a smoke check, "
                            "not a measurement")
    result.data = {"quota": quota.__dict__, "phases": [
        {"label": p.label, "seconds": p.seconds, "stats": p.stats, "peak_tokens_sampled": p.peak_tokens_sampled,
         "events": p.events} for p in phases]}
    return result

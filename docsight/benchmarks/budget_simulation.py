"""A cluster simulated in virtual time around the real ``BudgetGate``s: does the budget hold?

Workers, a consumer group that rebalances, and a Gemini server are simulated; the budget is not:
each simulated worker passes the real ``BudgetGate`` with the real day quotas, lease and hold-off
on a shared in-memory budget ledger. Time is virtual (an asyncio loop whose clock jumps to the
next timer), so a simulated hour takes a second and every run is deterministic for its seed.

The server counts for itself, independently of the gates: it keeps every arrival (time, its own
token count, its own cost) and the figures come from those lists alone: the busiest window by a
two-pointer sweep, the calls a quota-enforcing server would have refused, requests and dollars per
simulated day.

The group behaves like Kafka's: a membership change starts a rebalance; every member notices it
within a heartbeat and starts draining; a member joins the new generation when its calls in flight
have ended, or is evicted after the rebalance timeout; a killed member leaves only when its
session times out. Partitions are dealt round robin over the members that joined.
"""

from __future__ import annotations

import asyncio
import math
import random
import selectors
from collections import deque
from dataclasses import dataclass, field
from typing import Callable

from docsight.vision.budget import BudgetGate, BudgetRevoked, ClusterBudget, DailyBudgetExhausted
from docsight.vision.day_ledger import InMemoryLedgerLog
from docsight.vision.worker_budget import WorkerBudget

# ---- virtual time -------------------------------------------------------------------


class SimulationStalled(RuntimeError):
    """Nothing is scheduled and nothing can run: the simulated cluster deadlocked."""


class VirtualClock:
    def __init__(self, start: float = 0.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now


class _VirtualSelector(selectors.SelectSelector):
    """Nothing does real I/O in a simulation: waiting for I/O means jumping to the next timer."""

    def __init__(self, clock: VirtualClock) -> None:
        super().__init__()
        self._clock = clock

    def select(self, timeout=None):
        if timeout is None:
            raise SimulationStalled("nothing scheduled and nothing ready")
        if timeout > 0:
            self._clock.now += timeout
        return []


class VirtualTimeLoop(asyncio.SelectorEventLoop):
    """An event loop whose ``time()`` is virtual: ``asyncio.sleep(60)`` returns at once, 60 s later."""

    def __init__(self, clock: VirtualClock) -> None:
        self.virtual_clock = clock
        super().__init__(_VirtualSelector(clock))

    def time(self) -> float:
        return self.virtual_clock.now


def run_in_virtual_time(main: Callable[[VirtualClock], object], start: float = 1_000_000.0):
    """Run ``main(clock)`` (a coroutine function) to completion on a virtual-time loop."""
    clock = VirtualClock(start)
    loop = VirtualTimeLoop(clock)
    try:
        return loop.run_until_complete(main(clock))
    finally:
        # like asyncio.run: whatever the run left behind is cancelled and awaited before the loop closes
        leftovers = asyncio.all_tasks(loop)
        for task in leftovers:
            task.cancel()
        if leftovers:
            loop.run_until_complete(asyncio.gather(*leftovers, return_exceptions=True))
        loop.close()


# ---- what a run measures, counted independently of the gates --------------------------


def busiest_window(times: list[float], window: float, weights: list[float] | None = None) -> float:
    """The largest total in any half-open window (t - window, t], as the server counts."""
    order = sorted(range(len(times)), key=lambda i: times[i])
    ordered = [times[i] for i in order]
    amounts = [1.0] * len(order) if weights is None else [weights[i] for i in order]
    best, total, first = 0.0, 0.0, 0
    for last, at in enumerate(ordered):
        total += amounts[last]
        while ordered[first] <= at - window:
            total -= amounts[first]
            first += 1
        best = max(best, total)
    return best


def refused_by_quota(times: list[float], window: float, limit: float, weights: list[float] | None = None) -> int:
    """How many calls a server enforcing ``limit`` per sliding window would have answered with 429."""
    order = sorted(range(len(times)), key=lambda i: times[i])
    admitted: deque[tuple[float, float]] = deque()
    total, refused = 0.0, 0
    for i in order:
        at, amount = times[i], 1.0 if weights is None else weights[i]
        while admitted and admitted[0][0] <= at - window:
            total -= admitted.popleft()[1]
        if total + amount > limit + 1e-9:
            refused += 1
            continue
        admitted.append((at, amount))
        total += amount
    return refused


# ---- the plan ------------------------------------------------------------------------


@dataclass(frozen=True)
class SimEvent:
    at: float
    action: str        # join | leave (SIGTERM) | kill (SIGKILL) | restart (kill, back after restart_seconds)
    worker: str        # | hang (this worker's calls hang for hang_seconds: evicted at the next rebalance)


@dataclass(frozen=True)
class SimPlan:
    quota: int                                   # calls per window
    workers: int = 3                             # started at time 0 (see ``stagger_seconds``)
    window_seconds: float = 60.0
    tokens_per_window: float | None = None
    partitions: int = 6
    duration_seconds: float = 600.0
    events: tuple[SimEvent, ...] = ()
    stagger_seconds: float = 0.0                 # worker k starts at k x this
    latency_seconds: float = 0.3
    jitter_seconds: float = 0.1
    upload_seconds: float = 0.02                 # admission to arrival at the server
    concurrency: int = 5
    call_timeout_seconds: float = 60.0
    notice_seconds: float = 1.0                  # a member notices a rebalance within a heartbeat
    rebalance_timeout_seconds: float = 5.0
    session_timeout_seconds: float = 10.0
    restart_seconds: float = 5.0
    hang_seconds: float = 30.0
    tokens_per_call: int = 300                   # the client's estimate; the server counts its own
    server_token_factor: tuple[float, float] = (0.97, 1.05)
    requests_per_day: int | None = None
    usd_per_day: float | None = None
    day_seconds: float = 86_400.0
    safety_factor: float = 1.0
    seed: int = 1
    # negative controls: switch a protection off to see the simulation catch the overshoot
    hold_off: bool = True                        # new partitions wait for the old owners' calls to leave the window
    drain_at_rebalance_start: bool = True        # stop admitting when a rebalance starts (not after Faust's drain)


INPUT_USD_PER_TOKEN = 0.30e-6
OUTPUT_USD_PER_TOKEN = 2.50e-6
MAX_OUTPUT_TOKENS = 512


class SimPricing:
    """gemini-2.5-flash's list prices; what a call may cost before it, and did cost after."""

    def max_cost(self, estimated_input_tokens: int) -> float:
        return estimated_input_tokens * INPUT_USD_PER_TOKEN + MAX_OUTPUT_TOKENS * OUTPUT_USD_PER_TOKEN

    def cost(self, input_tokens: int, output_tokens: int, thinking_tokens: int) -> float:
        return input_tokens * INPUT_USD_PER_TOKEN + (output_tokens + thinking_tokens) * OUTPUT_USD_PER_TOKEN


@dataclass
class SimResult:
    plan: SimPlan
    calls: int
    busiest_calls: float
    busiest_tokens: float
    refused_calls: int
    refused_tokens: int
    used_ratio: float                            # calls / (quota x duration / window)
    requests_per_day: dict[int, int] = field(default_factory=dict)
    usd_per_day: dict[int, float] = field(default_factory=dict)
    requeued: int = 0
    incarnations: int = 0

    @property
    def calls_ratio(self) -> float:
        return self.busiest_calls / self.plan.quota

    @property
    def tokens_ratio(self) -> float | None:
        return None if not self.plan.tokens_per_window else self.busiest_tokens / self.plan.tokens_per_window

    def day_ratios(self) -> tuple[float | None, float | None]:
        requests = (max(self.requests_per_day.values(), default=0) / self.plan.requests_per_day
                    if self.plan.requests_per_day else None)
        usd = max(self.usd_per_day.values(), default=0.0) / self.plan.usd_per_day if self.plan.usd_per_day else None
        return requests, usd


# ---- the simulated parts ----------------------------------------------------------------


@dataclass
class _Picture:
    number: int
    partition: int
    estimate: int
    factor: float


class _Server:
    def __init__(self, sim: "_Simulation") -> None:
        self.sim = sim
        self.arrivals: list[float] = []
        self.tokens: list[float] = []
        self.costs: list[float] = []
        self.hanging: dict[str, float] = {}   # worker name -> calls arriving before this hang

    async def call(self, worker: "_Worker", picture: _Picture) -> tuple[int, int]:
        plan, clock = self.sim.plan, self.sim.clock
        await asyncio.sleep(plan.upload_seconds)
        # the server's own count, not the client's estimate
        input_tokens = max(1, round(picture.estimate * picture.factor))
        output_tokens = self.sim.rng.randint(40, 120)
        self.arrivals.append(clock.now)
        self.tokens.append(input_tokens)
        self.costs.append(input_tokens * INPUT_USD_PER_TOKEN + output_tokens * OUTPUT_USD_PER_TOKEN)
        latency = max(0.0, plan.latency_seconds + self.sim.rng.uniform(-plan.jitter_seconds, plan.jitter_seconds))
        if self.hanging.get(worker.name, -math.inf) > clock.now:
            latency = min(plan.call_timeout_seconds, plan.hang_seconds)
        await asyncio.sleep(latency)
        return input_tokens, output_tokens


class _Worker:
    def __init__(self, sim: "_Simulation", name: str, incarnation: int) -> None:
        self.sim = sim
        self.name = name
        self.id = f"{name}#{incarnation}"
        plan, clock = sim.plan, sim.clock
        self.log = InMemoryLedgerLog(sim.ledger_records, wall_clock=clock, on_append=sim.ledger_changed)
        self.budget = ClusterBudget(requests_per_minute=plan.quota * 60.0 / plan.window_seconds,
                                    tokens_per_minute=None if plan.tokens_per_window is None
                                    else plan.tokens_per_window * 60.0 / plan.window_seconds,
                                    requests_per_day=plan.requests_per_day, daily_budget_usd=plan.usd_per_day,
                                    max_concurrent_per_consumer=plan.concurrency, safety_factor=plan.safety_factor,
                                    window_seconds=plan.window_seconds)
        self.log_budget = WorkerBudget.build(
            self.budget, total_partitions=plan.partitions, log=self.log, worker=self.id, group="sim",
            pricing=SimPricing(), call_timeout_seconds=plan.call_timeout_seconds, clock=clock, wall_clock=clock,
            day_of=sim.day_key)
        self.gate: BudgetGate = self.log_budget.gate
        if not plan.hold_off:
            self.gate._hold_oracle = lambda generation, assigned_at, gained: dict.fromkeys(gained, -math.inf)
        self.requests_day, self.usd_day, self.lease = (self.log_budget.requests_per_day,
                                                       self.log_budget.usd_per_day, self.log_budget.lease)
        self.alive = True
        self.in_group = False
        self.tasks: list[asyncio.Task] = []

    def start(self) -> None:
        self.tasks = [asyncio.ensure_future(self._take_pictures(n)) for n in range(self.sim.plan.concurrency)]

    def kill(self) -> None:
        self.alive = False
        for task in self.tasks + list(self.log_budget._background):
            task.cancel()

    async def stop(self) -> None:
        """SIGTERM: stop admitting, let the calls in flight end, report the drain, give back the reserve."""
        await self.log_budget.close(grace_seconds=self.sim.plan.call_timeout_seconds)
        self.kill()

    def _partition(self) -> int | None:
        if self.gate.draining or not self.in_group:
            return None
        owned = sorted(self.gate.entitlements.owned)
        if not owned:
            return None
        # the agent takes events from whichever owned partition has one: here, any, in turn
        return owned[self.sim.rng.randrange(len(owned))]

    async def _take_pictures(self, number: int) -> None:
        sim = self.sim
        while self.alive:
            partition = self._partition()
            if partition is None:
                await sim.wait_for_work()
                continue
            picture = sim.take(partition)
            try:
                async with self.gate.slot(picture.estimate) as slot:
                    input_tokens, output_tokens = await sim.server.call(self, picture)
                    slot.reconcile(input_tokens, output_tokens)
            except BudgetRevoked:
                sim.put_back(picture)
            except DailyBudgetExhausted:
                sim.put_back(picture)
                # wait: held until the next simulated day
                await asyncio.sleep(sim.seconds_to_next_day() + 0.001)
            except asyncio.CancelledError:
                if self.alive:
                    raise
                return
            else:
                sim.described += 1


class _Simulation:
    def __init__(self, plan: SimPlan, clock: VirtualClock) -> None:
        self.plan = plan
        self.clock = clock
        self.start = clock.now
        self.rng = random.Random(plan.seed)
        self.server = _Server(self)
        self.ledger_records: list[dict] = []
        self.workers: dict[str, _Worker] = {}
        self.incarnations: dict[str, int] = {}
        self.generation = 0
        self.queues = [deque() for _ in range(plan.partitions)]
        self.numbers = 0
        self.described = 0
        self._work = asyncio.Event()
        self._rebalance = asyncio.Event()

    # work: every partition always has pictures waiting
    def take(self, partition: int) -> _Picture:
        if self.queues[partition]:
            return self.queues[partition].popleft()
        self.numbers += 1
        low, high = self.plan.server_token_factor
        return _Picture(self.numbers, partition, self.plan.tokens_per_call, self.rng.uniform(low, high))

    def put_back(self, picture: _Picture) -> None:
        self.queues[picture.partition].append(picture)

    def day_key(self, wall: float) -> str:
        return str(int((wall - self.start) // self.plan.day_seconds))

    def seconds_to_next_day(self) -> float:
        elapsed = self.clock.now - self.start
        return (math.floor(elapsed / self.plan.day_seconds) + 1) * self.plan.day_seconds - elapsed

    def work_changed(self) -> None:
        event, self._work = self._work, asyncio.Event()
        event.set()

    async def wait_for_work(self) -> None:
        await self._work.wait()

    def ledger_changed(self) -> None:
        for worker in self.workers.values():
            if worker.alive and worker.gate is not None:
                worker.gate.recheck_holds()

    # membership
    def join(self, name: str) -> None:
        self.incarnations[name] = self.incarnations.get(name, 0) + 1
        worker = _Worker(self, name, self.incarnations[name])
        self.workers[name] = worker
        worker.start()
        self._rebalance.set()

    async def leave(self, name: str) -> None:
        worker = self.workers.get(name)
        if worker is None or not worker.alive:
            return
        await worker.stop()
        worker.in_group = False
        self._rebalance.set()

    async def kill(self, name: str, back_after: float | None = None) -> None:
        worker = self.workers.get(name)
        if worker is None or not worker.alive:
            return
        worker.kill()
        if back_after is not None:
            asyncio.ensure_future(self._later(back_after, lambda: self.join(name)))
        await asyncio.sleep(self.plan.session_timeout_seconds)
        worker.in_group = False
        self._rebalance.set()

    async def _later(self, delay: float, action: Callable[[], object]) -> None:
        await asyncio.sleep(delay)
        action()

    async def coordinator(self) -> None:
        plan = self.plan
        while True:
            await self._rebalance.wait()
            self._rebalance.clear()
            members = [w for w in self.workers.values() if w.alive]
            # each member notices within a heartbeat and drains
            if plan.drain_at_rebalance_start:
                for worker in members:
                    asyncio.ensure_future(self._notice(worker, self.rng.uniform(0.05, plan.notice_seconds)))
            deadline = self.clock.now + plan.rebalance_timeout_seconds
            await asyncio.sleep(plan.notice_seconds)
            while self.clock.now < deadline and any(w.alive and w.gate.in_flight for w in members):
                await asyncio.sleep(0.05)
            if plan.drain_at_rebalance_start:
                joined = [w for w in members if w.alive and w.gate.draining and not w.gate.in_flight]
            else:  # the old way: everyone keeps calling at its old share until the new assignment
                joined = [w for w in members if w.alive]
            for worker in members:
                if worker not in joined:
                    worker.in_group = False
                    if worker.alive:   # evicted: it rejoins once its calls have ended
                        asyncio.ensure_future(self._rejoin_when_drained(worker))
            self.generation += 1
            joined.sort(key=lambda w: w.name)
            for worker in joined:
                parts = [p for p in range(plan.partitions) if joined[p % len(joined)] is worker]
                worker.in_group = True
                worker.gate.assign(parts, self.generation)
            self.work_changed()

    async def _notice(self, worker: _Worker, delay: float) -> None:
        await asyncio.sleep(delay)
        if worker.alive:
            worker.gate.start_draining()
            self.work_changed()

    async def _rejoin_when_drained(self, worker: _Worker) -> None:
        while worker.alive and worker.gate.in_flight:
            await asyncio.sleep(0.1)
        if worker.alive:
            self._rebalance.set()

    async def run(self) -> SimResult:
        plan = self.plan
        coordinator = asyncio.ensure_future(self.coordinator())
        actions = []
        for number in range(plan.workers):
            actions.append(asyncio.ensure_future(self._later(number * plan.stagger_seconds,
                                                             lambda n=number: self.join(f"w{n + 1}"))))
        for event in plan.events:
            actions.append(asyncio.ensure_future(self._event(event)))
        await asyncio.sleep(plan.duration_seconds)
        end = self.clock.now
        for worker in self.workers.values():
            worker.kill()
        coordinator.cancel()
        for task in actions:
            task.cancel()
        await asyncio.sleep(0)
        return self._result(end)

    async def _event(self, event: SimEvent) -> None:
        await asyncio.sleep(event.at)
        if event.action == "join":
            self.join(event.worker)
        elif event.action == "leave":
            await self.leave(event.worker)
        elif event.action == "kill":
            await self.kill(event.worker)
        elif event.action == "restart":
            await self.kill(event.worker, back_after=self.plan.restart_seconds)
        elif event.action == "hang":
            self.server.hanging[event.worker] = self.clock.now + self.plan.hang_seconds
        else:
            raise ValueError(f"unknown simulated action {event.action!r}")

    def _result(self, end: float) -> SimResult:
        plan, server = self.plan, self.server
        arrivals = [t for t in server.arrivals if t <= end]
        tokens = server.tokens[:len(arrivals)]
        requests_per_day: dict[int, int] = {}
        usd_per_day: dict[int, float] = {}
        for at, cost in zip(arrivals, server.costs):
            day = int((at - self.start) // plan.day_seconds)
            requests_per_day[day] = requests_per_day.get(day, 0) + 1
            usd_per_day[day] = usd_per_day.get(day, 0.0) + cost
        duration = end - self.start
        return SimResult(
            plan=plan, calls=len(arrivals),
            busiest_calls=busiest_window(arrivals, plan.window_seconds),
            busiest_tokens=busiest_window(arrivals, plan.window_seconds, tokens) if arrivals else 0.0,
            refused_calls=refused_by_quota(arrivals, plan.window_seconds, plan.quota),
            refused_tokens=(refused_by_quota(arrivals, plan.window_seconds, plan.tokens_per_window, tokens)
                            if plan.tokens_per_window else 0),
            used_ratio=len(arrivals) / (plan.quota * duration / plan.window_seconds),
            requests_per_day=requests_per_day, usd_per_day=usd_per_day,
            requeued=sum(w.gate.requeued for w in self.workers.values()),
            incarnations=sum(self.incarnations.values()))


def simulate(plan: SimPlan) -> SimResult:
    """Run one plan in virtual time and measure it at the simulated server."""

    async def main(clock: VirtualClock) -> SimResult:
        return await _Simulation(plan, clock).run()

    return run_in_virtual_time(main)


# ---- the patterns the benchmark and the tests run -----------------------------------------


def rolling_restart(workers: int, first_at: float, every: float) -> tuple[SimEvent, ...]:
    """SIGTERM each worker in turn and start it again ``restart_seconds`` later."""
    events = []
    for number in range(workers):
        at = first_at + number * every
        events.append(SimEvent(at, "leave", f"w{number + 1}"))
        events.append(SimEvent(at + 5.0, "join", f"w{number + 1}"))
    return tuple(events)


def crash_loop(worker: str, first_at: float, every: float, times: int) -> tuple[SimEvent, ...]:
    """SIGKILL one worker again and again; each time it comes back ``restart_seconds`` later."""
    return tuple(SimEvent(first_at + n * every, "restart", worker) for n in range(times))


PATTERNS: dict[str, Callable[[int, float], tuple[SimEvent, ...]]] = {
    "start together": lambda workers, window: (),
    "joins one by one": lambda workers, window: (),   # see ``stagger_seconds``
    "one leaves (SIGTERM)": lambda workers, window: (SimEvent(3 * window, "leave", "w1"),),
    "one killed and restarted": lambda workers, window: (SimEvent(3 * window, "restart", f"w{workers}"),),
    "evicted mid-call": lambda workers, window: (SimEvent(3 * window, "hang", "w1"),
                                                 SimEvent(3 * window + 1, "join", "extra")),
    "rolling restart": lambda workers, window: rolling_restart(workers, 3 * window, window / 2),
    "crash loop": lambda workers, window: crash_loop("w1", 2 * window, 20.0, 6),
}


# a pattern that takes a worker away needs another one left to do the work
MIN_WORKERS = {"one leaves (SIGTERM)": 2}


def plan_for(pattern: str, quota: int, workers: int, window: float = 60.0, **overrides) -> SimPlan:
    events = PATTERNS[pattern](workers, window)
    stagger = window / 3 if pattern == "joins one by one" else 0.0
    duration = max(10 * window, max((e.at for e in events), default=0.0) + 4 * window)
    return SimPlan(quota=quota, workers=workers, window_seconds=window, events=events, stagger_seconds=stagger,
                   duration_seconds=duration, **overrides)

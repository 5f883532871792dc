"""The budget ledger: what the cluster may still spend today, and who may still be calling.

Every worker appends records to one log (a one-partition Kafka topic in a worker; a list in the
tests and the simulation) and applies every record in log order, so all workers reach the same
verdicts without a coordinator. The log is read from the beginning at start, so it survives
restarts, rolling restarts, crash loops and scaling:

- ``reserve``: before spending, a worker asks for N more requests (or USD) of today's quota. The
  reservation is granted if everything reserved today plus N fits the limit named in the record;
  the same rule applied in the same order gives every worker the same answer, and the requester
  learns it by reading its own record back. A worker spends only what it was granted.
- ``release``: a worker stopping cleanly gives back what it reserved and did not spend.
- ``exhausted``: the API answered a per-day 429: nothing more today, for anyone.
- ``lease`` and ``drained``: see ``budget.py``'s hold-off. A lease also reports what the worker
  spent today, for the figures.

A worker that dies keeps its whole reservation counted, so a crash wastes at most one block and
never overspends; a new incarnation starts from the day's real total, never from 0. The day is
Gemini's: it turns at midnight Pacific.
"""

from __future__ import annotations

import math
import time
from collections import defaultdict
from dataclasses import dataclass
from typing import Callable, Iterable, Protocol

from .budget import CLOCK_MARGIN_SECONDS, DailyBudgetExhausted, pacific_day

REQUESTS, USD = "requests", "usd"
DIMENSIONS = (REQUESTS, USD)
_EPSILON = 1e-9
# marks (leases, drains) older than this no longer hold anyone off
MARK_RETENTION_SECONDS = 3600.0


@dataclass(frozen=True)
class Mark:
    """A lease ("I may call until active_until") or a drain: "my calls ended by ended_by; these were my
    partitions (whole calls each), these still held off, and my calls leave the window at these times"."""
    kind: str                     # lease | drained | assigned
    group: str
    generation: int | None
    at: float
    active_until: float = 0.0
    ended_by: float = 0.0
    partitions: tuple[tuple[int, float], ...] | None = None   # (partition, calls per window)
    tokens_per_partition: float | None = None
    held: tuple[tuple[int, float], ...] = ()                  # (partition, usable from)
    live: tuple[float, ...] = ()                              # when each call still counted leaves the window
    live_tokens: tuple[tuple[float, float], ...] = ()         # (leaves the window at, tokens)
    kept: tuple[int, ...] = ()                                # assigned: owned in the last generation too


class BudgetLedger:
    """The state every worker derives from the ledger log; ``apply`` each record once, in order."""

    def __init__(self) -> None:
        self.position = -1
        self._reserved: dict[tuple[str, str], dict[str, float]] = defaultdict(dict)
        self._exhausted: dict[tuple[str, str], float] = {}
        self._verdicts: dict[int, bool] = {}
        self._marks: dict[str, list[Mark]] = defaultdict(list)
        self._spent: dict[str, dict[str, dict[str, float]]] = defaultdict(dict)
        self._newest_day = ""
        self._marks_applied = 0

    # ---- applying --------------------------------------------------------

    def apply(self, record: dict, offset: int) -> None:
        """Apply one record; records at or before ``position`` were applied already."""
        if offset <= self.position:
            return
        self.position = offset
        kind = record.get("kind")
        worker = str(record.get("worker", ""))
        try:
            if kind == "reserve":
                self._verdicts[offset] = self._reserve(worker, record)
            elif kind == "release":
                key = (str(record["day"]), str(record["dimension"]))
                held = self._reserved[key].get(worker, 0.0)
                self._reserved[key][worker] = min(held, max(0.0, float(record["used"])))
            elif kind == "exhausted":
                key = (str(record["day"]), str(record["dimension"]))
                self._exhausted.setdefault(key, float(record.get("at", 0.0)))
            elif kind in ("lease", "drained", "assigned"):
                self._mark(worker, record)
        except (KeyError, TypeError, ValueError):
            return  # a malformed record decides nothing
        self._prune(str(record.get("day") or ""))

    def _reserve(self, worker: str, record: dict) -> bool:
        key = (str(record["day"]), str(record["dimension"]))
        amount, limit = float(record["amount"]), float(record["limit"])
        if amount <= 0:
            return False
        total = sum(self._reserved[key].values())
        if total + amount > limit + _EPSILON:
            return False
        self._reserved[key][worker] = self._reserved[key].get(worker, 0.0) + amount
        return True

    def _mark(self, worker: str, record: dict) -> None:
        generation = record.get("generation")
        partitions = record.get("partitions")
        tokens = record.get("tokens_per_partition")
        mark = Mark(kind=str(record["kind"]), group=str(record.get("group", "")),
                    generation=None if generation is None else int(generation), at=float(record.get("at", 0.0)),
                    active_until=float(record.get("active_until", 0.0)), ended_by=float(record.get("ended_by", 0.0)),
                    partitions=None if not isinstance(partitions, dict)
                    else tuple(sorted((int(p), float(c)) for p, c in partitions.items())),
                    tokens_per_partition=None if tokens is None else float(tokens),
                    held=tuple(sorted((int(p), float(t)) for p, t in (record.get("held") or {}).items())),
                    live=tuple(sorted(float(t) for t in record.get("live") or ())),
                    live_tokens=tuple(sorted((float(t), float(a)) for t, a in record.get("live_tokens") or ())),
                    kept=tuple(sorted(int(p) for p in record.get("kept") or ())))
        marks = self._marks[worker]
        marks.append(mark)
        self._marks_applied += 1
        if self._marks_applied % 1000 == 0:  # now and then, forget workers long gone
            self.forget_marks_before(mark.at - MARK_RETENTION_SECONDS)
        # keep the newest few: a hold-off looks at the last mark before a generation, and leases' maximum
        if len(marks) > 16:
            del marks[:-16]
        spent = record.get("spent")
        if isinstance(spent, dict) and spent.get("day"):
            self._spent[str(spent["day"])][worker] = {d: float(spent.get(d, 0.0)) for d in DIMENSIONS}

    def _prune(self, day: str) -> None:
        if day and day > self._newest_day:
            self._newest_day = day
            keep = {day}
            for store in (self._reserved, self._exhausted):
                for key in [k for k in store if k[0] < day and k[0] not in keep]:
                    del store[key]
            for old in [d for d in self._spent if d < day]:
                del self._spent[old]

    # ---- reading ---------------------------------------------------------

    def granted(self, offset: int) -> bool | None:
        """The verdict on the reservation at this offset (None: not applied yet, or not a reservation)."""
        return self._verdicts.pop(offset, None)

    def reserved(self, day: str, dimension: str) -> float:
        """Everything reserved today by every worker, dead or alive: the most the cluster can have spent."""
        return sum(self._reserved.get((day, dimension), {}).values())

    def reserved_by(self, worker: str, day: str, dimension: str) -> float:
        return self._reserved.get((day, dimension), {}).get(worker, 0.0)

    def exhausted_at(self, day: str, dimension: str) -> float | None:
        return self._exhausted.get((day, dimension))

    def spent(self, day: str) -> dict[str, float]:
        """What the workers reported spending today (leases and releases), summed."""
        totals = {d: 0.0 for d in DIMENSIONS}
        for figures in self._spent.get(day, {}).values():
            for dimension in DIMENSIONS:
                totals[dimension] += figures.get(dimension, 0.0)
        return totals

    def spent_by(self, worker: str, day: str) -> dict[str, float]:
        return dict(self._spent.get(day, {}).get(worker, {}))

    def hold_until(self, me: str, group: str, generation: int | None, assigned_at: float, window_seconds: float,
                   call_timeout_seconds: float, margin_seconds: float = CLOCK_MARGIN_SECONDS) -> float:
        """Until when (wall clock) partitions newly assigned to ``me`` in ``generation`` must wait.

        For every other worker (earlier incarnations of this one included), only what it published
        before this generation counts: after it, it no longer owned what ``me`` gained. If its last
        such mark is a drain, its calls left the window by ``ended_by + W``; else its last call was
        admitted by ``min(lease, assigned_at)`` and ended by the call timeout after that.
        """
        hold = -math.inf
        for marks, before in self._others_before(me, group, generation):
            last = before[-1]
            if last.kind == "drained":
                end = last.ended_by + window_seconds + margin_seconds
            else:
                lease = max(m.active_until for m in before if m.kind == "lease")
                end = min(lease, assigned_at) + call_timeout_seconds + window_seconds + margin_seconds
            hold = max(hold, end)
        return hold

    def _others_before(self, me: str, group: str, generation: int | None):
        """Each other worker's marks, with those published before ``generation`` (workers with none skipped)."""
        for worker, marks in self._marks.items():
            before = _marks_before(marks, group, generation) if worker != me else []
            if before:
                yield marks, before

    def partition_holds(self, me: str, group: str, generation: int | None, assigned_at: float,
                        gained: Iterable[int], window_seconds: float, call_timeout_seconds: float,
                        margin_seconds: float = CLOCK_MARGIN_SECONDS) -> dict[int, float]:
        """Until when (wall clock) each partition newly assigned to ``me`` in ``generation`` must wait.

        Finer than ``hold_until``. At a rebalance every member drains and publishes what it owned, what
        it still held off, and when each of its calls leaves the window. Its calls are charged to its
        partitions in a fixed order: those it keeps in the new generation first (its ``assigned``
        record says which), then the others from the highest number down. A partition it lost is free
        once its calls no longer reach into it and its own hold-off on it has ended. Any other worker,
        whose last word before this generation is not such a drain (killed, evicted with calls out,
        assigned and never drained), may have owned anything: ``hold_until``'s bound for it.
        """
        holds = {p: -math.inf for p in gained}
        for marks, before in self._others_before(me, group, generation):
            last = before[-1]
            if (last.kind == "drained" and last.partitions is not None and last.group == group
                    and generation is not None and last.generation == generation - 1):
                assigned = next((m for m in reversed(marks) if m.kind == "assigned" and m.group == group
                                 and m.generation == generation), None)
                kept = None if assigned is None else frozenset(assigned.kept)
                owned = dict(last.partitions)
                for p in holds:
                    if p in owned:
                        holds[p] = max(holds[p], _free_from(last, kept, p) + margin_seconds)
                continue
            bound = self._bound(before, assigned_at, window_seconds, call_timeout_seconds, margin_seconds)
            for p in holds:
                holds[p] = max(holds[p], bound)
        return holds

    @staticmethod
    def _bound(before: list[Mark], assigned_at: float, window_seconds: float, call_timeout_seconds: float,
               margin_seconds: float) -> float:
        """When everything a worker may have called (and held off) before a generation has left the window."""
        last = before[-1]
        if last.kind == "lease":
            lease = max(m.active_until for m in before if m.kind == "lease")
            return min(lease, assigned_at) + call_timeout_seconds + window_seconds + margin_seconds
        held = max(dict(last.held).values(), default=-math.inf)  # its predecessors' calls, where it waited
        if last.kind == "drained":
            return max(last.ended_by + window_seconds + margin_seconds, held)
        # assigned, then silent: no call since its last drain (a call needs a lease first)
        drains = [m.ended_by for m in before if m.kind == "drained"]
        called_until = max(drains, default=-math.inf)
        return max(called_until + window_seconds + margin_seconds, held)

    def forget_marks_before(self, wall_time: float) -> None:
        """Drop leases and drains that can no longer hold anyone off."""
        for worker in list(self._marks):
            marks = [m for m in self._marks[worker] if max(m.active_until, m.ended_by, m.at) >= wall_time]
            if marks:
                self._marks[worker] = marks
            else:
                del self._marks[worker]


def _free_from(drained: Mark, kept: frozenset[int] | None, partition: int) -> float:
    """When the old owner's calls (and tokens) no longer reach into ``partition`` of its drained record."""
    capacity = dict(drained.partitions or ())
    if kept is not None and partition in kept:
        return math.inf  # it kept what was assigned to someone else: a record out of step, take no chance
    kept = kept or frozenset()
    before = [q for q in capacity if q in kept] + [q for q in capacity if q not in kept and q > partition]
    calls_before = sum(capacity[q] for q in before)
    live = drained.live  # ascending
    excess = len(live) - int(math.floor(calls_before + 1e-9))
    free = live[excess - 1] if excess > 0 else -math.inf
    if drained.tokens_per_partition is not None and drained.live_tokens:
        room = drained.tokens_per_partition * len(before)
        remaining = sum(amount for _, amount in drained.live_tokens)
        for leaves_at, amount in drained.live_tokens:
            if remaining <= room + 1e-6:
                break
            remaining -= amount
            free = max(free, leaves_at)
    held = dict(drained.held).get(partition, -math.inf)
    return max(free, held)


class LedgerLog(Protocol):
    """Where ledger records go and come back from: a Kafka topic in a worker, a list in tests."""
    ledger: BudgetLedger

    async def append(self, record: dict) -> int:
        """Append durably; the record's offset."""

    async def read_through(self, offset: int) -> None:
        """Return once ``ledger`` has applied everything up to ``offset``."""

    def read_as_of(self) -> float | None:
        """A wall-clock time such that every record appended before it has been applied (None: not yet)."""


class InMemoryLedgerLog:
    """One replica of a log kept in a list shared by several replicas (tests, the simulation)."""

    def __init__(self, records: list[dict], wall_clock: Callable[[], float] = time.time,
                 on_append: Callable[[], None] | None = None) -> None:
        self.records = records
        self.ledger = BudgetLedger()
        self._wall = wall_clock
        self._on_append = on_append

    def sync(self) -> None:
        for offset in range(self.ledger.position + 1, len(self.records)):
            self.ledger.apply(self.records[offset], offset)

    async def append(self, record: dict) -> int:
        self.records.append(dict(record))
        if self._on_append is not None:
            self._on_append()
        return len(self.records) - 1

    async def read_through(self, offset: int) -> None:
        self.sync()

    def read_as_of(self) -> float | None:
        self.sync()
        return self._wall()


class DayQuota:
    """Requests per day or USD per day for the whole cluster, spent from reservations in the ledger.

    ``ensure`` makes sure this worker holds enough reserved for one more call, reserving a block
    when it does not (one ledger round trip); ``take`` spends at admission; ``settle`` corrects a
    USD charge once the call's real cost is known.
    """

    def __init__(self, dimension: str, limit: float | None, log: LedgerLog, worker: str, *,
                 wall_clock: Callable[[], float] = time.time, day_of: Callable[[float], str] = pacific_day,
                 block: Callable[[float], float] = lambda amount: amount) -> None:
        if dimension not in DIMENSIONS:
            raise ValueError(f"dimension must be one of {DIMENSIONS}, got {dimension!r}")
        self.dimension = dimension
        self.limit = limit
        self.log = log
        self.worker = worker
        self._wall = wall_clock
        self._day_of = day_of
        self._block = block
        self._day = day_of(wall_clock())
        self.used = 0.0
        self.resumed_at = 0.0  # per-day 429s recorded before this are ignored (``docsight control resume``)
        self._exhausted_here: tuple[str, float] | None = None  # (day, at): known here even if the ledger is not

    @property
    def day(self) -> str:
        self._roll()
        return self._day

    def _roll(self) -> None:
        today = self._day_of(self._wall())
        if today != self._day:
            self._day, self.used = today, 0.0

    def _sync(self) -> None:
        sync = getattr(self.log, "sync", None)
        if sync is not None:
            sync()

    def available(self) -> float:
        """Reserved by this worker today and not spent yet."""
        self._roll()
        self._sync()
        return self.log.ledger.reserved_by(self.worker, self._day, self.dimension) - self.used

    def cluster_reserved(self) -> float:
        self._roll()
        self._sync()
        return self.log.ledger.reserved(self._day, self.dimension)

    def exhausted_by_api(self) -> bool:
        self._roll()
        self._sync()
        at = self.log.ledger.exhausted_at(self._day, self.dimension)
        if at is None and self._exhausted_here is not None and self._exhausted_here[0] == self._day:
            at = self._exhausted_here[1]
        return at is not None and at >= self.resumed_at

    def spent_out(self, amount: float) -> bool:
        """True when ``amount`` more can neither come from this worker's reserve nor be reserved today."""
        if self.limit is None:
            return False
        if self.exhausted_by_api():
            return True
        return self.available() < amount - _EPSILON and self.limit - self.cluster_reserved() < amount - _EPSILON

    async def ensure(self, amount: float) -> None:
        """Hold ``amount`` for the next call, reserving more if needed; raise DailyBudgetExhausted when spent."""
        while True:
            if self.exhausted_by_api():
                raise DailyBudgetExhausted(self.dimension, self._day, self.cluster_reserved(), self.limit, by_api=True)
            if self.limit is None:
                return
            missing = amount - self.available()
            if missing <= _EPSILON:
                return
            room = self.limit - self.cluster_reserved()
            if room < missing - _EPSILON:
                raise DailyBudgetExhausted(self.dimension, self._day, self.cluster_reserved(), self.limit)
            ask = min(room, max(missing, self._block(amount)))
            offset = await self.log.append({
                "kind": "reserve", "worker": self.worker, "day": self._day, "dimension": self.dimension,
                "amount": ask, "limit": self.limit, "at": self._wall()})
            await self.log.read_through(offset)
            # granted or not (another worker got there first), look again with the ledger as it is now

    def take(self, amount: float) -> None:
        self._roll()
        self.used += amount

    def settle(self, charged: float, actual: float) -> None:
        self.used += actual - charged

    async def release(self) -> None:
        """Give back the unspent reservation (a clean stop, no call in flight)."""
        if self.limit is None or self.available() <= _EPSILON:
            return
        await self.log.append({"kind": "release", "worker": self.worker, "day": self.day,
                               "dimension": self.dimension, "used": self.used, "at": self._wall()})

    async def mark_exhausted_by_api(self) -> None:
        """The API said the day is spent (a per-day 429): tell every worker, for the rest of the day."""
        self._exhausted_here = (self.day, self._wall())
        offset = await self.log.append({"kind": "exhausted", "worker": self.worker, "day": self.day,
                                        "dimension": self.dimension, "at": self._wall()})
        await self.log.read_through(offset)


class Lease:
    """This worker's promise "I may call until T", renewed before it runs out and at every new generation."""

    def __init__(self, log: LedgerLog, worker: str, group: str, lease_seconds: float = 10.0, *,
                 wall_clock: Callable[[], float] = time.time,
                 spent: Callable[[], dict] | None = None) -> None:
        if lease_seconds <= 0:
            raise ValueError("lease_seconds must be positive")
        self.log = log
        self.worker = worker
        self.group = group
        self.lease_seconds = lease_seconds
        self.generation: int | None = None
        self.active_until = 0.0
        self._published_generation: int | None = None
        self._wall = wall_clock
        self._spent = spent

    async def ensure(self) -> None:
        now = self._wall()
        if self.active_until - now >= self.lease_seconds / 2 and self._published_generation == self.generation:
            return
        until = now + self.lease_seconds
        record = {"kind": "lease", "worker": self.worker, "group": self.group, "generation": self.generation,
                  "active_until": until, "at": now}
        if self._spent is not None:
            record["spent"] = self._spent()
        generation = self.generation
        await self.log.append(record)
        self.active_until = until
        self._published_generation = generation

    async def drained(self, report: dict) -> None:
        """All calls admitted so far have ended (``report``: see ``BudgetGate.drain_report``); none until the next
        assignment."""
        record = {"kind": "drained", "worker": self.worker, "group": self.group, "generation": self.generation,
                  **report, "at": self._wall()}
        if self._spent is not None:
            record["spent"] = self._spent()
        await self.log.append(record)
        self.active_until = 0.0
        self._published_generation = None

    async def assigned(self, generation: int | None, owned: Iterable[int], kept: Iterable[int],
                       held: dict[int, float]) -> None:
        """At an assignment: what this worker owns now, kept from the last generation (others' old calls are
        charged there first), and still holds off (wall clock)."""
        if generation is None:
            return
        await self.log.append({"kind": "assigned", "worker": self.worker, "group": self.group,
                               "generation": generation, "partitions": {str(p): 0 for p in owned},
                               "kept": sorted(kept), "held": {str(p): t for p, t in held.items()},
                               "at": self._wall()})


def ledger_hold_oracle(log: LedgerLog, worker: str, group: str, window_seconds: float, call_timeout_seconds: float
                       ) -> Callable[[int | None, float, frozenset[int]], dict[int, float] | None]:
    """The gate's ``hold_oracle``: each new partition's hold-off once the ledger is read up to the assignment."""

    def holds(generation: int | None, assigned_at: float, gained: frozenset[int]) -> dict[int, float] | None:
        read_as_of = log.read_as_of()
        if read_as_of is None or read_as_of < assigned_at:
            return None
        return log.ledger.partition_holds(worker, group, generation, assigned_at, gained, window_seconds,
                                          call_timeout_seconds)

    return holds


def _marks_before(marks, group: str, generation: int | None) -> list:
    """A worker's marks published before ``generation`` of ``group`` (all of another group's)."""
    return [m for m in marks
            if m.group != group or m.generation is None or generation is None or m.generation < generation]

"""``docsight bench``: scenarios that measure docsight on this machine and hold each figure against its limit.

One module per scenario (``budget``, ``quota``, ``extraction``, ``framework``,
``latency``, ``memory``, ``cost``, ``fidelity``), each with ``run(BenchOptions) -> ScenarioResult``;
``report`` renders the tables, ``figures`` holds the arithmetic, ``cluster``,
``workload`` and ``procmem`` the shared machinery. ``--quick`` shrinks every
scenario to a smoke check; the default is the real measurement (BENCHMARKS.md).
"""

from .report import Figure, ScenarioResult, Table, Target, render
from .runner import SCENARIOS, BenchOptions, run_scenario

__all__ = ["SCENARIOS", "BenchOptions", "Figure", "ScenarioResult", "Table", "Target", "render", "run_scenario"]

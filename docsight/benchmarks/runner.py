"""Running scenarios by name: options, timing, the registry."""

from __future__ import annotations

import importlib
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from .report import ScenarioResult

SCENARIOS = ("budget", "quota", "extraction", "framework", "latency", "memory", "cost", "fidelity")


def _progress(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


@dataclass(frozen=True)
class BenchOptions:
    quick: bool = False
    workdir: Path = Path("var/bench")
    folder: Path | None = None  # fidelity: the documents to compare (None: a generated corpus)
    progress: Callable[[str], None] = field(default=_progress, repr=False)

    def scenario_dir(self, name: str) -> Path:
        return Path(self.workdir).resolve() / name


def run_scenario(name: str, options: BenchOptions) -> ScenarioResult:
    if name not in SCENARIOS:
        raise ValueError(f"unknown scenario {name!r}; choose from {', '.join(SCENARIOS)}")
    module = importlib.import_module(f"docsight.benchmarks.{name}")
    started = time.monotonic()
    options.progress(f"{name}: start ({'quick' if options.quick else 'full'} run)")
    result = module.run(options)
    result.seconds = time.monotonic() - started
    result.data.setdefault("quick", options.quick)
    options.progress(f"{name}: done in {result.seconds:.0f} s")
    return result

"""``docsight bench``: run the benchmark scenarios and print each figure against its limit."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from docsight.benchmarks import SCENARIOS, BenchOptions, render, run_scenario


def register(subcommands) -> None:
    parser = subcommands.add_parser(
        "bench", help="measure docsight: budget, quota, extraction, framework, latency, memory, cost, fidelity",
        description="Run one benchmark scenario (or all) on this machine: embedded broker, local Gemini "
                    "server, worker processes, docling. Each prints its figures, their limits and ratios.\n\n"
                    "scenarios:\n"
                    "  budget      one quota shared by 1-3 workers and across a rebalance (429s, busiest window)\n"
                    "  quota       docsight vs docling's own picture description against one quota\n"
                    "  extraction  documents and pictures/s: ExtractionPool vs a bare docling loop\n"
                    "  framework   picture events/s through the picture topic on the embedded broker\n"
                    "  latency     a 20-picture document end to end vs its critical path\n"
                    "  memory      peak RSS of a worker and its extraction processes\n"
                    "  cost        calls, tokens and cost with each saving off, then on\n"
                    "  fidelity    [DIR] per document, the pictures bare docling reports vs what docsight lists\n"
                    "              (status and reason), documents lost, pictures per PDF figure, tables\n\n"
                    "examples:\n  docsight bench budget --quick\n  docsight bench all --json var/bench/results.json\n"
                    "  docsight bench fidelity ~/Downloads/documents",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("scenario", choices=[*SCENARIOS, "all"], help="which scenario to run")
    parser.add_argument("folder", nargs="?", type=Path, default=None,
                        help="fidelity only: a folder of documents to compare (default: a generated corpus)")
    parser.add_argument("--quick", action="store_true",
                        help="a short smoke run (under a minute per scenario); figures are indicative only")
    parser.add_argument("--workdir", type=Path, default=Path("var/bench"), help="scratch space (wiped per scenario)")
    parser.add_argument("--json", type=Path, default=None, help="also write every figure and raw measurement here")
    parser.add_argument("--markdown", action="store_true", help="print the tables as markdown")
    parser.set_defaults(run=run_bench)


def run_bench(args) -> int:
    names = list(SCENARIOS) if args.scenario == "all" else [args.scenario]
    if args.folder is not None and args.scenario != "fidelity":
        raise SystemExit("docsight bench: a folder goes with the fidelity scenario only")
    options = BenchOptions(quick=args.quick, workdir=args.workdir, folder=args.folder)
    results, failed = [], []
    for name in names:
        try:
            result = run_scenario(name, options)
        except Exception as error:  # noqa: BLE001 - in `all`, one broken scenario must not lose the others
            if len(names) == 1:
                raise
            failed.append(name)
            print(f"== {name}: FAILED: {type(error).__name__}: {error} ==\n", flush=True)
            continue
        results.append(result)
        print(render(result, markdown=args.markdown), flush=True)
        print(flush=True)
        if args.json:  # written after each scenario, so a long `all` run keeps what it measured
            args.json.parent.mkdir(parents=True, exist_ok=True)
            args.json.write_text(json.dumps([r.as_dict() for r in results], indent=2, default=str))
    met = sum(r.targets()[0] for r in results)
    missed = sum(r.targets()[1] for r in results)
    print(f"targets: {met} met, {missed} missed" + (f"; scenarios that failed: {', '.join(failed)}" if failed else ""))
    return 1 if failed else 0

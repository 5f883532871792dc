"""``docsight loadtest``: the load-testing strategy against the local Gemini server, as one table."""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def register(subcommands) -> None:
    parser = subcommands.add_parser(
        "loadtest", help="load-test scenarios: a 100+ picture document, many small ones, 3x the quota, API faults",
        description="Run the load-testing scenarios, each on a fresh local cluster (embedded broker, local Gemini "
                    "server, worker processes), and print documents in/out, lost, duplicates, 429s, the busiest "
                    "window against the quota and p50/p95 document latency. Exits 1 when a document is lost, "
                    "duplicated or missing.\n\nscenarios:\n"
                    "  1  one large document with 100+ pictures\n"
                    "  2  many small documents with 5 to 10 pictures each\n"
                    "  3  rate-limit simulation: three times more pictures than the quota allows per window\n"
                    "  4  API failures: dropped connections, hung calls, 429s, 500s and 503s\n\n"
                    "examples:\n  docsight loadtest --quick\n  docsight loadtest --scenarios 3 --json var/load.json",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="smaller scenarios, a short quota window (~3 min)")
    parser.add_argument("--scenarios", default="1,2,3,4", help="which scenarios, e.g. 1,3 (default: all)")
    parser.add_argument("--workers", type=int, default=None, help="worker processes (default: 2; 1 with --quick)")
    parser.add_argument("--workdir", type=Path, default=Path("var/loadtest"), help="scratch space, wiped per scenario")
    parser.add_argument("--json", type=Path, default=None, help="also write the results here")
    parser.set_defaults(run=run)


def run(args) -> int:
    from docsight.loadtest import render, run_scenario, scenarios

    wanted = {int(part) for part in args.scenarios.split(",") if part.strip()}
    workers = args.workers or (1 if args.quick else 2)
    results = []
    for scenario in scenarios(args.quick):
        if scenario.number not in wanted:
            continue
        results.append(run_scenario(scenario, args.workdir / f"scenario{scenario.number}", workers=workers,
                                    log=lambda line: print(line, flush=True)))
        if args.json:
            args.json.parent.mkdir(parents=True, exist_ok=True)
            args.json.write_text(json.dumps([r.as_dict() for r in results], indent=2))
    print()
    print(render(results))
    return 0 if results and all(r.ok for r in results) else 1

"""``docsight chaos``: kill workers and take the Gemini API down mid-flight, then audit what came out."""

from __future__ import annotations

import argparse
import json
import signal
from pathlib import Path


def register(subcommands) -> None:
    parser = subcommands.add_parser(
        "chaos", help="kill workers and stop the API while pictures are in flight; count lost and doubled documents",
        description="Start a cluster on this machine (embedded broker, local Gemini server with a quota and a "
                    "latency, worker processes), feed it a corpus of every format (0-50 pictures per document, "
                    "some shared) and, at seeded instants, SIGKILL or SIGTERM a worker that has pictures in "
                    "flight (from its /stats), start a replacement, and stop and restart the Gemini server. "
                    "Ends with the conservation audit and prints documents submitted, lost, doubled (different "
                    "content), re-emitted (same content) and time to outcome p50/p95, next to a no-fault "
                    "baseline of the same corpus. Every process it starts is stopped at the end, Ctrl-C "
                    "included. Exits 1 when a run lost or doubled a document.\n\n"
                    "examples:\n"
                    "  docsight chaos\n"
                    "  docsight chaos --workers 2 --rounds 3 --documents 12 --duration 40 --no-baseline\n"
                    "  docsight chaos --seed 7 --rpm 300 --json > var/chaos.json",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workers", type=int, default=3, help="worker processes (default: 3)")
    parser.add_argument("--rounds", type=int, default=3, help="kill rounds (default: 3)")
    parser.add_argument("--outages", type=int, default=1, help="Gemini server stops, 3-10 s each (default: 1)")
    parser.add_argument("--documents", type=int, default=30, help="documents in the corpus (default: 30)")
    parser.add_argument("--duration", type=float, default=90.0,
                        help="seconds over which the documents are submitted; the kills fall in it (default: 90)")
    parser.add_argument("--seed", type=int, default=1, help="fixes the corpus and the fault plan (default: 1)")
    parser.add_argument("--rpm", type=int, default=120,
                        help="the Gemini server's quota and the cluster's budget, requests/min (default: 120)")
    parser.add_argument("--window-seconds", type=float, default=60.0,
                        help="the quota's window; shorter scales the minute down, and with it the budget's "
                             "hold-off after a kill (default: 60, Gemini's)")
    parser.add_argument("--latency-ms", type=float, default=400.0, help="Gemini answer latency (default: 400)")
    parser.add_argument("--jitter-ms", type=float, default=200.0, help="± around the latency (default: 200)")
    parser.add_argument("--max-pictures", type=int, default=50, help="pictures per document at most (default: 50)")
    parser.add_argument("--min-in-flight", type=int, default=1,
                        help="distinct pictures the victim must have in flight for a kill (default: 1)")
    parser.add_argument("--stall-seconds", type=float, default=60.0,
                        help="stop waiting when no outcome and no Gemini call came for this long (default: 60)")
    parser.add_argument("--no-baseline", action="store_true", help="skip the no-fault baseline run")
    parser.add_argument("--workdir", type=Path, default=Path("var/chaos"),
                        help="corpus, worker logs and data dirs (wiped per run; default: var/chaos)")
    parser.add_argument("--worker-env", action="append", default=[], metavar="NAME=VALUE",
                        help="a setting for every worker, e.g. VISION_MAX_CONCURRENT_PER_CONSUMER=10 (repeatable)")
    parser.add_argument("--json", action="store_true", help="print the report as JSON (progress goes to stderr)")
    parser.set_defaults(run=run)


def run(args) -> int:
    from docsight.chaos import ChaosOptions, run_chaos

    worker_env = {}
    for item in args.worker_env:
        name, separator, value = item.partition("=")
        if not separator or not name:
            raise ValueError(f"--worker-env takes NAME=VALUE, not {item!r}")
        worker_env[name] = value
    options = ChaosOptions(
        workers=args.workers, rounds=args.rounds, outages=args.outages, documents=args.documents,
        duration=args.duration, seed=args.seed, rpm=args.rpm, window_seconds=args.window_seconds,
        latency_ms=args.latency_ms, jitter_ms=args.jitter_ms,
        max_pictures=args.max_pictures, min_in_flight=args.min_in_flight, stall_seconds=args.stall_seconds,
        baseline=not args.no_baseline, workdir=args.workdir, worker_env=worker_env)

    def interrupted(signum, frame):
        raise KeyboardInterrupt  # SIGTERM cleans up like Ctrl-C: every process the run started is stopped

    previous = signal.signal(signal.SIGTERM, interrupted)
    try:
        report = run_chaos(options)
    finally:
        signal.signal(signal.SIGTERM, previous)
    print(json.dumps(report.as_dict(), indent=2) if args.json else report.render(), flush=True)
    return report.exit_code

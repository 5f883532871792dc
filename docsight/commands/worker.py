"""``docsight worker``: run one worker of the cluster."""

from __future__ import annotations

import argparse


def register(subcommands) -> None:
    parser = subcommands.add_parser(
        "worker", help="run a worker of the cluster",
        description="Run a Faust worker with every agent, table and web view. Without DOCSIGHT_BROKER_URL it "
                    "starts the embedded broker first.\n\nexample:\n"
                    "  DOCSIGHT_BROKER_URL=kafka://kafka:9092 GEMINI_API_KEY=... docsight worker",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--loglevel", "-l", default="info", help="log level (default: info)")
    parser.set_defaults(run=run)


def run(args) -> int:
    from docsight.worker import run_worker

    run_worker(args.loglevel)
    return 0

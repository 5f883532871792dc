"""The ``docsight`` command: run workers, the demo, the local Gemini server and the tools around them."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

REPOSITORY = Path(__file__).resolve().parents[1]
SAMPLE_DOCUMENTS = REPOSITORY / "samples" / "documents"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="docsight",
        description="Describe the pictures inside documents at scale (Faust + docling + Gemini).",
        epilog="Settings come from environment variables; see the README's configuration table.",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    worker = commands.add_parser(
        "worker", help="run a worker of the cluster",
        description="Run a Faust worker with every agent. Without DOCSIGHT_BROKER_URL it starts the embedded "
                    "broker first.\n\nexample:\n  DOCSIGHT_BROKER_URL=kafka://kafka:9092 docsight worker",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    worker.add_argument("--loglevel", "-l", default="info", help="log level (default: info)")

    demo = commands.add_parser(
        "demo", help="run the whole pipeline on the sample documents",
        description="Start the embedded broker, the local Gemini server and a worker, submit the sample "
                    "documents, wait for their enriched markdown and write it to the output folder.\n\n"
                    "example:\n  docsight demo --output output/demo",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    demo.add_argument("--documents", type=Path, default=SAMPLE_DOCUMENTS, help="folder of documents to submit")
    demo.add_argument("--output", type=Path, default=Path("output/demo"), help="where enriched markdown goes")
    demo.add_argument("--workdir", type=Path, default=Path("var/demo"), help="broker, worker and store state")
    demo.add_argument("--workers", type=int, default=1, help="worker processes (default: 1)")
    demo.add_argument("--timeout", type=float, default=600.0, help="seconds to wait for every document")
    demo.add_argument("--local-gemini", action="store_true",
                      help="use the local Gemini server even when GEMINI_API_KEY is set")

    commands.add_parser(
        "gemini-server", help="serve the local Gemini-compatible API", add_help=False,
        description="The local Gemini-compatible server (see docsight gemini-server --help).")
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["gemini-server"]:
        from docsight.gemini_server import main as gemini_main

        return gemini_main(argv[1:]) or 0
    args = _parser().parse_args(argv)
    try:
        if args.command == "worker":
            from docsight.worker import run_worker

            run_worker(args.loglevel)
            return 0
        if args.command == "demo":
            logging.basicConfig(level=logging.WARNING, format="%(message)s")
            from docsight.demo import run_demo

            return run_demo(args)
    except KeyboardInterrupt:
        return 130
    except Exception as error:  # noqa: BLE001 - one clear line instead of a traceback
        from docsight.config import SettingsError

        if isinstance(error, (SettingsError, FileNotFoundError, TimeoutError, ConnectionError)):
            print(f"docsight {args.command}: {error}", file=sys.stderr)
            return 2
        raise
    return 0

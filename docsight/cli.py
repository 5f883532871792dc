"""The ``docsight`` command: workers, the demo, the local Gemini server and the tools around them."""

from __future__ import annotations

import argparse
import logging
import sys

from docsight.commands import COMMANDS


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="docsight",
        description="Describe the pictures inside documents at scale (Faust + docling + Gemini).",
        epilog="Settings come from environment variables; see the README's configuration table.\n"
               "example:\n  docsight demo",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    subcommands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for command in COMMANDS:
        command.register(subcommands)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["gemini-server"]:
        # the server parses its own options, --help included
        from docsight.gemini_server import main as gemini_server_main

        return gemini_server_main(argv[1:]) or 0
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    try:
        return args.run(args)
    except KeyboardInterrupt:
        return 130
    except Exception as error:  # noqa: BLE001 - one clear line instead of a traceback for known problems
        from docsight.config import SettingsError

        if isinstance(error, (SettingsError, FileNotFoundError, TimeoutError, ConnectionError, ValueError)):
            print(f"docsight {args.command}: {error}", file=sys.stderr)
            return 2
        raise

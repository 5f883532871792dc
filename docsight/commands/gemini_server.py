"""``docsight gemini-server``: the local Gemini-compatible API (its own options; see --help)."""

from __future__ import annotations

import argparse


def register(subcommands) -> None:
    parser = subcommands.add_parser(
        "gemini-server", help="serve the local Gemini-compatible API (for demos, tests, load tests)",
        description="The local Gemini-compatible server.\n\nexample:\n"
                    "  docsight gemini-server --port 8765 --rpm 10 --tpm 250000 --latency-ms 800",
        formatter_class=argparse.RawDescriptionHelpFormatter, add_help=False)
    # docsight.cli hands every argument after "gemini-server" to the server's own parser
    parser.set_defaults(run=None)

"""``docsight settings``: every setting with its default and meaning (the README's table)."""

from __future__ import annotations

import argparse
import re
from pathlib import Path

START, END = "<!-- settings-table:start -->", "<!-- settings-table:end -->"


def register(subcommands) -> None:
    parser = subcommands.add_parser(
        "settings", help="list every setting (environment variable) with its default",
        description="Print the configuration table generated from config/settings.py.\n\nexample:\n"
                    "  docsight settings\n  docsight settings --update-readme README.md",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--update-readme", type=Path, metavar="README",
                        help="rewrite the table between the settings-table markers of this file")
    parser.set_defaults(run=run)


def run(args) -> int:
    from docsight.config.settings import settings_table

    table = settings_table()
    if args.update_readme:
        text = args.update_readme.read_text()
        block = f"{START}\n{table}\n{END}"
        updated, count = re.subn(re.escape(START) + r".*?" + re.escape(END), lambda _: block, text, flags=re.S)
        if not count:
            raise FileNotFoundError(f"no {START} ... {END} markers in {args.update_readme}")
        args.update_readme.write_text(updated)
    else:
        print(table)
    return 0

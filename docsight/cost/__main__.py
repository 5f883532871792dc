"""``python -m docsight.cost``: the daily cost table for a workload (defaults: the design notes')."""

from __future__ import annotations

import argparse
import os

from docsight.cost.estimator import design_note_scenarios, estimate_daily_cost, render_scenarios
from docsight.cost.prices import load_price_table


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m docsight.cost", description=__doc__)
    parser.add_argument("--documents-per-day", type=float, default=1000)
    parser.add_argument("--images-per-document", type=float, default=20)
    parser.add_argument("--dedupe-ratio", type=float, default=0.3,
                        help="share of pictures already described (assumed; measure it on real documents)")
    parser.add_argument("--model", help="also print the detailed estimate for this model")
    parser.add_argument("--prices", default=os.environ.get("GEMINI_PRICES"),
                        help="price override: a JSON object or a JSON file (default: $GEMINI_PRICES)")
    args = parser.parse_args(argv)
    prices = load_price_table(args.prices)
    print(render_scenarios(design_note_scenarios(args.documents_per_day, args.images_per_document,
                                                 prices, args.dedupe_ratio)))
    if args.model:
        print()
        print(estimate_daily_cost(args.documents_per_day, args.images_per_document, args.model, prices,
                                  dedupe_ratio=args.dedupe_ratio).render())


if __name__ == "__main__":
    main()

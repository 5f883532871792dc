"""``docsight estimate``: what describing pictures will cost, from the price table and token rules."""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path


def register(subcommands) -> None:
    parser = subcommands.add_parser(
        "estimate", help="estimate daily and monthly Gemini cost, from figures or from real files",
        description="Estimate the cost of describing pictures with the same price table (GEMINI_PRICES) and "
                    "token rules the workers use.\n\nexamples:\n"
                    "  docsight estimate --documents-per-day 1000 --images-per-document 20\n"
                    "  docsight estimate --sample samples/documents --model gemini-2.5-flash-lite",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--documents-per-day", type=float, default=1000, help="default: 1000")
    parser.add_argument("--images-per-document", type=float, default=20, help="default: 20")
    parser.add_argument("--model", default=None, help="default: GEMINI_MODEL")
    parser.add_argument("--width", type=int, default=1600, help="average picture width in px (default 1600)")
    parser.add_argument("--height", type=int, default=1200, help="average picture height in px (default 1200)")
    parser.add_argument("--dedupe-ratio", type=float, default=0.0,
                        help="share of pictures already described elsewhere (0..1, default 0)")
    parser.add_argument("--sample", type=Path, metavar="DIR",
                        help="extract the documents in DIR and estimate from their actual pictures, "
                             "showing what each saving removes")
    parser.set_defaults(run=run)


def run(args) -> int:
    from docsight.config import get_settings
    from docsight.cost import (FilterPolicy, estimate_daily_cost, estimate_from_pictures, load_price_table,
                               render_scenarios)

    settings = get_settings()
    model = args.model or settings.gemini_model
    prices = load_price_table(settings.gemini_prices)
    if args.sample:
        pictures = _sample_pictures(args.sample, settings)
        report = estimate_from_pictures(pictures, model, prices, policy=FilterPolicy.from_settings(settings),
                                        max_side=settings.vision_max_image_side_px,
                                        media_resolution=settings.vision_media_resolution or None)
        print(report.render())
        return 0
    without = estimate_daily_cost(args.documents_per_day, args.images_per_document, model, prices,
                                  avg_width=args.width, avg_height=args.height, max_side=None)
    downscaled = estimate_daily_cost(args.documents_per_day, args.images_per_document, model, prices,
                                     avg_width=args.width, avg_height=args.height,
                                     max_side=settings.vision_max_image_side_px)
    deduped = estimate_daily_cost(args.documents_per_day, args.images_per_document, model, prices,
                                  avg_width=args.width, avg_height=args.height,
                                  max_side=settings.vision_max_image_side_px, dedupe_ratio=args.dedupe_ratio)
    scenarios = [("pictures as they are", without), (f"downscaled to {settings.vision_max_image_side_px} px",
                                                     downscaled)]
    if args.dedupe_ratio:
        scenarios.append((f"+ {args.dedupe_ratio:.0%} repeated pictures from the cache", deduped))
    print(render_scenarios(scenarios))
    return 0


def _sample_pictures(folder: Path, settings):
    from docsight.cost import SampledPicture
    from docsight.extraction import ExtractionError, ExtractionLimits, extract_document
    from docsight.storage import BlobStore

    if not folder.is_dir():
        raise FileNotFoundError(f"no such folder: {folder}")
    pictures = []
    with tempfile.TemporaryDirectory() as store_dir:
        store = BlobStore(store_dir)
        for path in sorted(p for p in folder.iterdir() if p.is_file()):
            try:
                result = extract_document(path, None, store, ExtractionLimits())
            except ExtractionError as error:
                print(f"skipped {path.name}: {error.reason} ({error})", file=sys.stderr)
                continue
            pictures += [SampledPicture.from_extracted(p, path.name, result.format) for p in result.pictures]
    return pictures

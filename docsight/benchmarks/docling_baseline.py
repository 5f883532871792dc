"""docling alone, as the baseline of the ``quota``, ``extraction`` and ``memory`` scenarios; run as its own process.

    python -m docsight.benchmarks.docling_baseline convert --out result.json FILES...
    python -m docsight.benchmarks.docling_baseline describe --url URL --concurrency 8 --out result.json FILES...

``convert`` is a bare conversion loop with docsight's own docling settings
(``engine.build_converter``): convert, export the markdown, next file. With
``--picture-images`` the native PDF pipeline also decodes every embedded
bitmap (``generate_picture_images``): what docling needs to hand over a PDF's
pictures, which docsight instead reads with pypdfium2.

``describe`` is docling's own picture description. It is an enrichment step
of every ``ConvertPipeline``, so it runs wherever the conversion needs no model
weights: the DOCX/PPTX/XLSX/HTML/MD ``SimplePipeline`` (pictures come from the
file) and the model-free ``NativePdfPipeline`` with ``generate_picture_images``
(pictures are the PDF's decoded bitmaps). The default ``StandardPdfPipeline``
needs the layout model from the Hugging Face hub and cannot run offline.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")


def describing_converter(url: str, api_key: str, model: str, concurrency: int):
    from docling.datamodel.base_models import InputFormat
    from docling.datamodel.pipeline_options import (ConvertPipelineOptions, NativePdfPipelineOptions,
                                                    PictureDescriptionApiOptions)
    from docling.document_converter import DocumentConverter, NativePdfFormatOption, WordFormatOption

    describe = PictureDescriptionApiOptions(
        url=url, headers={"Authorization": f"Bearer {api_key}"}, params={"model": model},
        concurrency=concurrency, batch_size=max(8, concurrency), timeout=60)
    common = dict(do_picture_description=True, enable_remote_services=True, picture_description_options=describe)
    return DocumentConverter(
        allowed_formats=[InputFormat.PDF, InputFormat.DOCX],
        format_options={
            InputFormat.PDF: NativePdfFormatOption(pipeline_options=NativePdfPipelineOptions(
                generate_page_images=False, generate_picture_images=True, parser_threads=1, **common)),
            InputFormat.DOCX: WordFormatOption(pipeline_options=ConvertPipelineOptions(**common)),
        })


def docsight_converter():
    from docsight.extraction import engine

    return engine.build_converter()


def picture_image_converter():
    """docsight's settings, except that PDF pictures are decoded by docling (generate_picture_images)."""
    from docling.datamodel.base_models import InputFormat
    from docling.datamodel.pipeline_options import NativePdfPipelineOptions
    from docling.document_converter import NativePdfFormatOption

    converter = docsight_converter()
    converter.format_to_options[InputFormat.PDF] = NativePdfFormatOption(pipeline_options=NativePdfPipelineOptions(
        generate_page_images=False, generate_picture_images=True, parser_threads=1))
    return converter


def describe_files(files: list[Path], converter) -> dict:
    from docling_core.types.doc import PictureItem

    documents = []
    started = time.monotonic()
    for path in files:
        result = converter.convert(path, raises_on_error=False)
        descriptions = []
        for item, _ in result.document.iterate_items():
            if isinstance(item, PictureItem):
                meta = item.meta.description if item.meta else None
                descriptions.append(meta.text if meta is not None else None)
        documents.append({"file": path.name, "status": result.status.value, "descriptions": descriptions})
    return {"seconds": time.monotonic() - started, "documents": documents}


def convert_files(files: list[Path], converter) -> dict:
    documents = []
    started = time.monotonic()
    for path in files:
        began = time.monotonic()
        result = converter.convert(path, raises_on_error=False)
        result.document.export_to_markdown()
        documents.append({"file": str(path), "status": result.status.value, "seconds": time.monotonic() - began})
    return {"seconds": time.monotonic() - started, "documents": documents}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m docsight.benchmarks.docling_baseline")
    parser.add_argument("mode", choices=["convert", "describe"])
    parser.add_argument("--url", help="describe: an OpenAI-compatible chat completions endpoint")
    parser.add_argument("--api-key", default="local-test-key")
    parser.add_argument("--model", default="gemini-2.5-flash")
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--picture-images", action="store_true",
                        help="convert: decode PDF pictures too (generate_picture_images)")
    parser.add_argument("--warm-up", type=Path, action="append", default=[],
                        help="convert these first, untimed (first calls build caches)")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("files", type=Path, nargs="+")
    args = parser.parse_args(argv)
    if args.mode == "describe":
        converter = describing_converter(args.url, args.api_key, args.model, args.concurrency)
        work = describe_files
    else:
        converter = picture_image_converter() if args.picture_images else docsight_converter()
        work = convert_files
    for fmt in converter.allowed_formats:
        converter.initialize_pipeline(fmt)
    for path in args.warm_up:
        converter.convert(path, raises_on_error=False)
    args.out.write_text(json.dumps(work(args.files, converter)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Which docling pipeline converts PDFs: the standard one (layout model) or the model-free native one.

``DOCSIGHT_PDF_PIPELINE``:

- ``native``: docling's model-free native pipeline, then docsight's own figure finding
  (bitmap fragments merged, vector drawings found) and headings (outline, font size);
- ``standard``: docling's layout model (figures, headings, tables as the model sees them). It needs
  the model's files in ``DOCSIGHT_PDF_ARTIFACTS_PATH`` and its runtime (torch and transformers);
  without them every PDF fails with a message that says what is missing;
- ``auto`` (default): standard when all of that is present, native otherwise.

No PyPI package ships the weights: ``docling-tools models download layout -o DIR`` fetches them
where the Hugging Face hub is reachable.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path

LAYOUT_MODEL_FOLDER = "docling-project--docling-layout-heron"  # docling's default layout model
TABLE_MODEL_FOLDER = "docling-project--docling-models"  # TableFormer: optional
WEIGHT_SUFFIXES = ("*.safetensors", "*.bin", "*.onnx", "*.pt")
RUNTIME_MODULES = ("torch", "transformers")


@dataclass(frozen=True)
class PdfPipelineChoice:
    pipeline: str  # native | standard | unavailable
    problem: str = ""  # why "unavailable"


def standard_pipeline_gaps(artifacts_path: str | Path | None) -> list[str]:
    """What the standard pipeline lacks here; empty when it can run."""
    gaps: list[str] = []
    if not artifacts_path:
        gaps.append("DOCSIGHT_PDF_ARTIFACTS_PATH is not set (the folder holding docling's model files)")
    else:
        folder = Path(artifacts_path) / LAYOUT_MODEL_FOLDER
        if not folder.is_dir():
            gaps.append(f"the layout model folder {folder} does not exist "
                        f"(docling-tools models download layout -o {artifacts_path})")
        elif not any(any(folder.rglob(pattern)) for pattern in WEIGHT_SUFFIXES):
            gaps.append(f"no model weights in {folder}")
        elif not (folder / "config.json").is_file() and not any(folder.rglob("config.json")):
            gaps.append(f"no config.json in {folder}")
    missing = [name for name in RUNTIME_MODULES if importlib.util.find_spec(name) is None]
    if missing:
        gaps.append(f"the layout model's runtime is not installed ({', '.join(missing)}; docsight installs "
                    "docling without torch)")
    return gaps


def choose_pdf_pipeline(setting: str, artifacts_path: str | Path | None) -> PdfPipelineChoice:
    if setting == "native":
        return PdfPipelineChoice("native")
    if setting not in ("auto", "standard"):
        raise ValueError(f"unknown PDF pipeline {setting!r}: auto, standard or native")
    gaps = standard_pipeline_gaps(artifacts_path)
    if not gaps:
        return PdfPipelineChoice("standard")
    if setting == "standard":
        return PdfPipelineChoice("unavailable", "DOCSIGHT_PDF_PIPELINE=standard needs docling's layout model, "
                                                "but " + "; ".join(gaps))
    return PdfPipelineChoice("native")


def standard_pdf_format_option(artifacts_path: str | Path | None):
    """docling's standard PDF pipeline from local model files only (no OCR: text comes from the PDF)."""
    from docling.datamodel.pipeline_options import PdfPipelineOptions
    from docling.document_converter import PdfFormatOption

    tables = artifacts_path is not None and (Path(artifacts_path) / TABLE_MODEL_FOLDER).is_dir()
    return PdfFormatOption(pipeline_options=PdfPipelineOptions(
        artifacts_path=artifacts_path, do_ocr=False, do_table_structure=tables,
        generate_page_images=False, generate_picture_images=False))

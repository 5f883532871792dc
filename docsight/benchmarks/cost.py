"""Scenario ``cost`` (issue 4): API calls, input tokens and cost with every saving off, then on one by one.

The sample set is ``samples/documents`` (the same logo in every document) plus
generated documents with large photos, two photos shared between a DOCX and a
Markdown file, and decorative icons. First the estimator
(``docsight.cost.estimate_from_pictures``) on the extracted pictures: as-is,
after the filters, after dedupe, after downscaling, then with media resolution
LOW. Then the real pipeline on fresh clusters: savings off, docsight's
defaults, and the defaults plus ``VISION_MEDIA_RESOLUTION=LOW``; calls and
tokens come from the local server's ``/_stats``, the description cache's hit
rate from the outcomes. The hit rate the cache would reach keyed by the
caption and nearby text too (issue 14) is counted on the extracted pictures.
"""

from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path

from docsight.cost import (DEFAULT_PRICES, FilterPolicy, PictureFacts, SampledPicture, estimate_from_pictures,
                           select_pictures)
from docsight.extraction import ExtractionLimits, extract_document
from docsight.gemini_server import GeminiServerConfig
from docsight.storage import BlobStore

from .cluster import events_for, fresh_dir, kill_workers, new_cluster, prepare_topics, start_workers, \
    submit_and_collect
from .report import ScenarioResult
from .runner import BenchOptions
from .workload import SAMPLE_DOCUMENTS, docx_document, icon_png, markdown_document, photo_jpeg, sample_documents

NAME = "cost"
TITLE = "Cost: calls, input tokens and USD with each saving off, then on (issue 4)"
MODEL = "gemini-2.5-flash"
ALL_FORMATS = "pdf,docx,pptx,xlsx,html,md"

SAVINGS_OFF = {
    "VISION_MIN_IMAGE_SIDE_PX": "0", "VISION_MIN_IMAGE_AREA_PX": "0", "VISION_SKIP_LARGE_IMAGES": "false",
    "VISION_MAX_IMAGES_PER_DOCUMENT": "0", "VISION_SKIP_IF_TOO_MANY_IMAGES": "0",
    "VISION_MAX_IMAGE_SIDE_PX": "100000",
}
REAL_RUNS = (
    ("savings off (no filters, no downscaling)", SAVINGS_OFF),
    ("docsight's defaults (filters, dedupe, 768 px)", {}),
    ("defaults + VISION_MEDIA_RESOLUTION=LOW", {"VISION_MEDIA_RESOLUTION": "LOW"}),
)


def build_sample_set(folder: Path, quick: bool) -> list[Path]:
    folder = fresh_dir(folder)
    shutil.copytree(SAMPLE_DOCUMENTS, folder, dirs_exist_ok=True)
    samples = sample_documents(folder)
    count, size = (2, (2400, 1800)) if quick else (6, (4000, 3000))
    photos = [photo_jpeg(*size, seed=100 + n, quality=92) for n in range(count)]
    icons = [icon_png(24), icon_png(16)]
    extra = [docx_document(folder / "site_photos.docx", [*photos, *icons], "Site photos")]
    # the same two photos again in another document: dedupe meets them on one partition
    extra.append(folder / markdown_document(folder, [photos[0], photos[1], icon_png(20)], prefix="photos"))
    return samples + extra


def extracted_pictures(files: list[Path], store: Path) -> tuple[list[SampledPicture], list]:
    """The pictures for the estimator, and as extracted (with their captions and nearby text)."""
    blob_store = BlobStore(fresh_dir(store))
    pictures, extracted = [], []
    for path in files:
        result = extract_document(path, None, blob_store, ExtractionLimits())
        pictures += [SampledPicture.from_extracted(p, str(path), result.format) for p in result.pictures]
        extracted.append((result.format, result.pictures))
    return pictures, extracted


def hit_rates_by_cache_key(extracted: list, policy: FilterPolicy) -> dict[str, float]:
    """The description cache's best hit rate over the pictures the filters send, were it keyed by the picture
    alone (docsight: the prompt carries no document text) or also by the caption, or by caption and nearby text."""
    sent = []
    for document_format, pictures in extracted:  # as the extract agent decides, document by document
        pending = [p for p in pictures if not p.status]
        facts = [PictureFacts(p.index, p.width, p.height, p.size_bytes) for p in pending]
        sent += [p for p, decision in zip(pending, select_pictures(facts, document_format, policy)) if decision.describe]
    keys = {"picture alone": lambda p: p.sha256, "picture and caption": lambda p: (p.sha256, p.caption),
            "picture, caption and nearby text": lambda p: (p.sha256, p.caption, p.context)}
    return {label: round(1 - len({key(p) for p in sent}) / len(sent), 4) if sent else 0.0
            for label, key in keys.items()}


def run(options: BenchOptions) -> ScenarioResult:
    folder = options.scenario_dir(NAME)
    files = build_sample_set(folder / "documents", options.quick)
    options.progress(f"{NAME}: extracting {len(files)} documents for the estimator")
    pictures, extracted = extracted_pictures(files, folder / "store")
    policy = FilterPolicy(enabled_formats=frozenset(ALL_FORMATS.split(",")))
    report = estimate_from_pictures(pictures, MODEL, DEFAULT_PRICES, policy=policy)
    low = estimate_from_pictures(pictures, MODEL, DEFAULT_PRICES, policy=policy, media_resolution="LOW")
    steps = [*report.steps, dataclasses.replace(low.steps[-1], label=f"{low.steps[-1].label}, media resolution LOW")]

    result = ScenarioResult(NAME, TITLE)
    baseline = steps[0]
    estimate = result.table(f"estimator: {len(pictures)} pictures in {len(files)} documents, {MODEL} "
                            "(250 prompt and 200 output tokens a call); limit = all pictures as-is")
    for step in steps:
        estimate.add(f"{step.label}: calls", step.calls, "", baseline.calls)
        estimate.add(f"{step.label}: input tokens", step.input_tokens, "", baseline.input_tokens)
        estimate.add(f"{step.label}: cost", step.cost, "USD", baseline.cost)

    keying = result.table("description cache hit rate after the filters, by what the cache key holds "
                          "(docsight's: the picture alone)")
    hit_rates = hit_rates_by_cache_key(extracted, policy)
    for label, rate in hit_rates.items():
        keying.add(f"keyed by the {label}", rate, "", None)

    real = []
    for label, env in REAL_RUNS[:2] if options.quick else REAL_RUNS:
        stats = _real_run(folder / "cluster", files, env)
        real.append((label, stats))
        options.progress(f"{NAME}: real pipeline, {label}: {stats['calls_ok']} calls, "
                         f"{stats['input_tokens']:,} input tokens")
    off = real[0][1]
    table = result.table("real pipeline, tokens from the local server's /_stats; limit = savings off")
    for label, stats in real:
        output = stats["output_tokens"] + stats["thoughts_tokens"]
        cost = float(DEFAULT_PRICES.cost(MODEL, stats["input_tokens"], output))
        off_cost = float(DEFAULT_PRICES.cost(MODEL, off["input_tokens"], off["output_tokens"] + off["thoughts_tokens"]))
        table.add(f"{label}: calls", stats["calls_ok"], "", off["calls_ok"])
        table.add(f"{label}: input tokens", stats["input_tokens"], "", off["input_tokens"])
        table.add(f"{label}: cost", cost, "USD", off_cost)
        table.add(f"{label}: pictures described", stats["described"], "", None)
        table.add(f"{label}: description cache hit rate", stats["cache_hit_rate"], "", None)
    result.notes += [
        "the real pipeline cannot turn dedupe off (the picture topic is keyed by content hash and every "
        "description is cached), so 'savings off' already calls each distinct picture once; the estimator's "
        "'as-is' row shows what one call per picture would cost",
        "the estimator's filters step applies the size filters with every format enabled (the defaults describe "
        "PDF and DOCX only, which would skip most of the sample set)",
        "description cache hit rate: pictures described from the cache (or by joining the call another "
        "request for the same picture had in flight) over all pictures described",
        "output tokens are the local server's (a few sentences per picture); a real model's answers vary",
        "skipped by the filters: " + ", ".join(f"{reason} {count}" for reason, count in sorted(report.skipped.items())),
    ]
    if options.quick:
        result.notes.append("--quick: 2 large photos of 2400x1800, and only the off and defaults real runs")
    result.data = {"steps": [step.__dict__ for step in steps], "real": real, "skipped": report.skipped,
                   "hit_rates_by_cache_key": hit_rates}
    return result


def _real_run(workdir: Path, files: list[Path], env: dict[str, str]) -> dict:
    cluster = new_cluster(workdir, env={"VISION_RATE_LIMIT_PER_MINUTE": "60000", "VISION_ENABLED_FORMATS": ALL_FORMATS,
                                        **env}, gemini_config=GeminiServerConfig(latency_ms=0))
    documents = files[0].parent
    shutil.copytree(documents, cluster.document_root, dirs_exist_ok=True)
    with cluster:
        prepare_topics(cluster)
        start_workers(cluster, ["worker1"])
        events = events_for([path.relative_to(documents).as_posix() for path in files], "cost")
        _, outcomes = submit_and_collect(cluster, events, timeout=600)
        missing = len(events) - sum(1 for o in outcomes.values() if o.enriched)
        if missing:
            raise RuntimeError(f"{missing} cost documents were not enriched")
        kill_workers(cluster)
        return {**cluster.gemini.stats(), **cache_hits([o.value for o in outcomes.values()])}


def cache_hits(enriched: list[dict]) -> dict:
    """Pictures described, how many of them came from the description cache, and the hit rate."""
    described = [p for outcome in enriched for p in outcome.get("pictures") or [] if p["status"] == "described"]
    hits = sum(1 for p in described if p.get("cached"))
    return {"described": len(described), "cache_hits": hits,
            "cache_hit_rate": round(hits / len(described), 4) if described else 0.0}

"""Scenario ``quota`` (issue 7, scenario 1): docsight vs docling's own picture description, one quota.

The same DOCX and PDF documents (never-seen pictures) go through a docsight
worker and through docling's ``PictureDescriptionApiOptions`` pointed at the
local server's OpenAI-compatible endpoint, against the same quota and the same
server latency. docling runs in a process of its own, one conversion after the
other, at several concurrencies; the best one is the one that described the
most pictures (then the fastest). Quotas and stats are reset between runs.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from docsight.gemini_server import GeminiServerConfig
from docsight.local_cluster import LOCAL_API_KEY

from .cluster import events_for, kill_workers, new_cluster, prepare_topics, start_workers, submit_and_collect
from .figures import QuotaPlan
from .report import ScenarioResult, Target
from .runner import BenchOptions
from .workload import docx_document, noise_png, pdf_document, unique_name

NAME = "quota"
TITLE = "Against one quota: docsight vs docling's own picture description (issue 7, scenario 1)"


@dataclass(frozen=True)
class Plan:
    quota: QuotaPlan
    latency_ms: float
    documents: int
    pictures_per_document: int
    docling_concurrency: tuple[int, ...]


def plan_for(quick: bool) -> Plan:
    if quick:
        return Plan(QuotaPlan(10, 10.0), latency_ms=200, documents=4, pictures_per_document=5,
                    docling_concurrency=(8,))
    # 120 pictures against 60/min: two minutes of quota, for both
    return Plan(QuotaPlan(60, 60.0), latency_ms=500, documents=24, pictures_per_document=5,
                docling_concurrency=(1, 4, 8))


@dataclass
class Run:
    name: str
    pictures: int
    described: int
    empty_or_failed: int
    seconds: float
    stats: dict


def run(options: BenchOptions) -> ScenarioResult:
    plan = plan_for(options.quick)
    quota = plan.quota
    env = {**quota.worker_env(), "VISION_ENABLED_FORMATS": "pdf,docx", "DOCSIGHT_EXTRACTION_PROCESSES": "1"}
    server = GeminiServerConfig(**quota.server_config(), latency_ms=plan.latency_ms)
    cluster = new_cluster(options.scenario_dir(NAME), env=env, gemini_config=server)
    runs: list[Run] = []
    with cluster:
        gemini = cluster.gemini
        files = _documents(cluster.document_root, plan)
        pictures = plan.documents * plan.pictures_per_document
        options.progress(f"{NAME}: {len(files)} documents (DOCX and PDF), {pictures} unique pictures; "
                         f"quota {quota.per_window}/{quota.window_seconds:g}s, latency {plan.latency_ms:g} ms")
        prepare_topics(cluster)
        start_workers(cluster, ["worker1"])
        # docsight's planned rate is 95% of the quota; give it that long and half as much again
        timeout = pictures / (0.95 * quota.per_minute) * 60 * 1.5 + 60
        _fresh(gemini)
        events = events_for([f.name for f in files], "quota")
        started, outcomes = submit_and_collect(cluster, events, timeout)
        finished = max((o.received_at for o in outcomes.values()), default=time.time())
        statuses = [p["status"] for o in outcomes.values() if o.enriched for p in o.value["pictures"]]
        described = statuses.count("described")
        runs.append(Run("docsight (1 worker)", pictures, described, pictures - described, finished - started,
                        gemini.stats()))
        options.progress(f"{NAME}: docsight: {described}/{pictures} described in {finished - started:.0f} s")
        kill_workers(cluster)

        url = f"{cluster.gemini_base_url}/v1beta/openai/chat/completions"
        for concurrency in plan.docling_concurrency:
            _fresh(gemini)
            result = _run_docling(files, url, concurrency, options.scenario_dir(NAME) / f"docling-{concurrency}.json")
            texts = [text for document in result["documents"] for text in document["descriptions"]]
            good = sum(1 for text in texts if text)
            runs.append(Run(f"docling, concurrency {concurrency}", pictures, good, pictures - good,
                            result["seconds"], gemini.stats()))
            options.progress(f"{NAME}: docling c={concurrency}: {good}/{pictures} described in "
                             f"{result['seconds']:.0f} s ({len(texts)} pictures found)")
    return _result(plan, runs, options.quick)


def _fresh(gemini) -> None:
    gemini.control({"reset_quotas": True})
    gemini.reset_stats()


def _documents(root: Path, plan: Plan) -> list[Path]:
    files = []
    for number in range(plan.documents):
        pictures = [noise_png() for _ in range(plan.pictures_per_document)]
        if number % 2:
            files.append(pdf_document(root / f"{unique_name('quota')}.pdf", pictures))
        else:
            files.append(docx_document(root / f"{unique_name('quota')}.docx", pictures))
    return files


def _run_docling(files: list[Path], url: str, concurrency: int, out: Path) -> dict:
    command = [sys.executable, "-m", "docsight.benchmarks.docling_baseline", "describe", "--url", url,
               "--api-key", LOCAL_API_KEY, "--concurrency", str(concurrency), "--out", str(out),
               *map(str, files)]
    completed = subprocess.run(command, capture_output=True, text=True, timeout=3600)
    if completed.returncode != 0:
        raise RuntimeError(f"docling run failed:\n{completed.stderr[-3000:]}")
    return json.loads(out.read_text())


def _result(plan: Plan, runs: list[Run], quick: bool) -> ScenarioResult:
    quota = plan.quota
    window = f"{quota.window_seconds:g} s"
    result = ScenarioResult(NAME, TITLE)
    docling = [r for r in runs if r.name.startswith("docling")]
    best = max(docling, key=lambda r: (r.described, -r.seconds)) if docling else None
    for run_ in runs:
        label = run_.name + (" (docling's best)" if run_ is best and len(docling) > 1 else "")
        table = result.table(label)
        table.add("pictures described", run_.described, "", run_.pictures, Target(">=", 1.0))
        table.add("empty or failed descriptions", run_.empty_or_failed, "", None, Target("==", 0, of="value"))
        table.add("429 answers", run_.stats["calls_429"], "", None)
        table.add("calls made (all attempts)", run_.stats["calls_received"], "", run_.pictures)
        table.add(f"busiest {window} window, calls", run_.stats["busiest_window"], "calls", quota.per_window,
                  Target("<=", 1.0))
        # every picture at exactly the quota's rate
        table.add("wall time (vs all pictures at the quota's rate)", run_.seconds, "s",
                  run_.pictures / quota.per_minute * 60)
    result.notes += [
        f"{plan.documents} documents (half DOCX, half PDF) with {plan.pictures_per_document} never-seen pictures "
        f"each; quota {quota.per_window} calls per {window}; server latency {plan.latency_ms:g} ms; docsight "
        f"with VISION_RATE_LIMIT_PER_MINUTE={quota.per_minute:g}",
        "docling's picture description runs offline in the DOCX SimplePipeline and in the model-free "
        "NativePdfPipeline (generate_picture_images=True); the default StandardPdfPipeline needs the layout "
        "model's weights from the Hugging Face hub and cannot",
        "docling has no rate limiter: each batch of up to `concurrency` pictures goes at once; a 429 is retried "
        "by urllib3 5 times within about 3 s (RetryInfo is never read), then the description is stored as \"\" "
        "and the conversion still reports success",
        "the wall time's limit is every picture at exactly the quota's rate; docsight plans 95% of the quota, "
        "so its ratio is about 1/0.95 at best; a ratio below 1 means pictures were given up, not described",
    ]
    if quick:
        result.notes.append("--quick: 20 pictures, a 10 s window and one docling concurrency: a smoke check")
    result.data = {"quota": quota.__dict__, "runs": [run_.__dict__ for run_ in runs]}
    return result

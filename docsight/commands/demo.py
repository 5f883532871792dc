"""``docsight demo``: the whole pipeline on real parts, end to end, on this machine."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import time
from pathlib import Path

from docsight.client import DocsightClient, document_event, ensure_topics
from docsight.local_cluster import LocalCluster

SUPPORTED_SUFFIXES = {".pdf", ".docx", ".pptx", ".xlsx", ".html", ".htm", ".md"}
SAMPLE_DOCUMENTS = Path(__file__).resolve().parents[2] / "samples" / "documents"


def register(subcommands) -> None:
    parser = subcommands.add_parser(
        "demo", help="run the whole pipeline on the sample documents",
        description="Start the embedded broker, the local Gemini server and a worker, submit the sample "
                    "documents, wait for their enriched markdown and write it to the output folder.\n\n"
                    "example:\n  docsight demo --output output/demo",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--documents", type=Path, default=SAMPLE_DOCUMENTS, help="folder of documents to submit")
    parser.add_argument("--output", type=Path, default=Path("output/demo"), help="where enriched markdown goes")
    parser.add_argument("--workdir", type=Path, default=Path("var/demo"), help="broker, worker and store state")
    parser.add_argument("--workers", type=int, default=1, help="worker processes (default: 1)")
    parser.add_argument("--timeout", type=float, default=600.0, help="seconds to wait for every document")
    parser.add_argument("--local-gemini", action="store_true",
                        help="use the local Gemini server even when GEMINI_API_KEY is set")
    parser.set_defaults(run=run_demo)


def run_demo(args) -> int:
    started = time.monotonic()
    documents = sorted(p for p in Path(args.documents).iterdir() if p.suffix.lower() in SUPPORTED_SUFFIXES)
    if not documents:
        raise FileNotFoundError(f"no documents to submit in {args.documents}")
    workdir = Path(args.workdir)
    if workdir.exists():
        shutil.rmtree(workdir)  # the embedded broker starts empty, so must the workers' tables
    use_real_api = bool(os.environ.get("GEMINI_API_KEY")) and not args.local_gemini
    # the demo shows every format described; production's default is pdf,docx only
    env = {"VISION_ENABLED_FORMATS": os.environ.get("VISION_ENABLED_FORMATS", "pdf,docx,pptx,xlsx,html,md")}
    cluster = LocalCluster(
        workdir, env=env,
        gemini_base_url=(os.environ.get("GOOGLE_GEMINI_BASE_URL") or "") if use_real_api else None,
        gemini_api_key=os.environ.get("GEMINI_API_KEY") if use_real_api else None)
    # the documents (and the folders their HTML pictures live in) go under the document root
    shutil.copytree(args.documents, cluster.document_root, dirs_exist_ok=True)

    with cluster:
        print(f"broker {cluster.broker_url}; Gemini {'API' if use_real_api else cluster.gemini_base_url}")
        for _ in range(args.workers):
            worker = cluster.start_worker()
            print(f"worker {worker.name} ready on {worker.url}")
        outcomes = asyncio.run(_submit_and_collect(cluster, documents, args.timeout))
        api_stats = cluster.gemini.stats() if cluster.gemini else None

    output = Path(args.output)
    output.mkdir(parents=True, exist_ok=True)
    pictures = described = cached = input_tokens = output_tokens = 0
    cost_usd = 0.0
    failed = []
    for name, outcome in outcomes.items():
        if outcome is None:
            failed.append(f"{name}: no outcome within {args.timeout:.0f}s")
            continue
        value = outcome.value
        if not outcome.enriched:
            failed.append(f"{name}: {value['reason']} ({value['message']})")
            continue
        stem = Path(name).stem + "." + Path(name).suffix.lstrip(".")
        (output / f"{stem}.md").write_text(value["markdown"])
        (output / f"{stem}.json").write_text(json.dumps({k: v for k, v in value.items() if k != "markdown"},
                                                         indent=2))
        pictures += len(value["pictures"])
        described += sum(1 for p in value["pictures"] if p["status"] == "described")
        cached += sum(1 for p in value["pictures"] if p["cached"])
        cost_usd += value["cost_usd"]
        input_tokens += value["input_tokens"]
        output_tokens += value["output_tokens"] + value["thinking_tokens"]

    print()
    print(f"documents   {len(documents)} submitted, {len(documents) - len(failed)} enriched, {len(failed)} failed")
    print(f"pictures    {pictures} found, {described} described ({cached} from the description cache)")
    if api_stats:
        print(f"API calls   {api_stats['calls_received']} ({api_stats['calls_ok']} OK, "
              f"{api_stats['calls_429']} rate-limited; busiest minute {api_stats['busiest_60s']})")
    print(f"tokens      {input_tokens} input, {output_tokens} output (thinking included)")
    print(f"cost        ${cost_usd:.4f} at the {os.environ.get('GEMINI_MODEL', 'gemini-2.5-flash')} price table")
    print(f"wall time   {time.monotonic() - started:.1f} s")
    print(f"output      {output.resolve()}")
    for line in failed:
        print(f"FAILED      {line}")
    return 1 if failed else 0


async def _submit_and_collect(cluster: LocalCluster, documents: list[Path], timeout: float):
    await ensure_topics(cluster.broker_url, partitions=6)
    ids = {}
    async with DocsightClient(cluster.broker_url, store_dir=cluster.store_dir) as client:
        for path in documents:
            document_id = f"demo-{path.stem}-{path.suffix.lstrip('.')}"
            ids[document_id] = path.name
            await client.submit(document_event(document_id, "demo-user", path.name))
        print(f"submitted {len(documents)} documents; waiting for them")
        outcomes = await client.collect(set(ids), timeout=timeout)
    by_id = {outcome.document_id: outcome for outcome in outcomes}
    return {name: by_id.get(document_id) for document_id, name in ids.items()}

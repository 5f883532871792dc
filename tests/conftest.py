"""Shared fixtures: a real local cluster (embedded Tansu, local Gemini server, a worker process)."""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path

import pytest

from docsight.client import ensure_topics
from docsight.local_cluster import LocalCluster

REPOSITORY = Path(__file__).resolve().parents[1]
SAMPLES = REPOSITORY / "samples" / "documents"

# Fast retries so fault tests finish in seconds; a small per-picture deadline.
TEST_WORKER_ENV = {
    "VISION_RATE_LIMIT_PER_MINUTE": "6000",
    # no quota under test: a 1 s window keeps the hold-off after a kill or a restart to seconds
    "VISION_QUOTA_WINDOW_SECONDS": "1",
    "VISION_RETRY_DEADLINE_SECONDS": "30",
    "VISION_REQUEST_TIMEOUT_SECONDS": "10",
    "DOCSIGHT_EXTRACTION_PROCESSES": "2",
    "VISION_ENABLED_FORMATS": "pdf,docx,pptx,xlsx,html,md",
}


@pytest.fixture(scope="session")
def cluster(tmp_path_factory):
    """One broker, one local Gemini server and one worker for the whole session."""
    workdir = tmp_path_factory.mktemp("cluster")
    with LocalCluster(workdir, env=TEST_WORKER_ENV) as running:
        shutil.copytree(SAMPLES, running.document_root, dirs_exist_ok=True)
        asyncio.run(ensure_topics(running.broker_url, partitions=6))
        running.start_worker("worker1")
        yield running


@pytest.fixture
def gemini(cluster):
    """The local Gemini server, with faults cleared before and after the test."""
    cluster.gemini.control({"clear_queue": True, "down": False, "error_rate_500": 0, "error_rate_503": 0,
                            "latency_ms": 0, "rpm": None, "tpm": None, "rpd": None, "reset_quotas": True})
    yield cluster.gemini
    cluster.gemini.control({"clear_queue": True, "down": False, "error_rate_500": 0, "error_rate_503": 0,
                            "latency_ms": 0, "rpm": None, "tpm": None, "rpd": None, "reset_quotas": True})

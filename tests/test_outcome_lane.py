"""The picture lane and the outcome sinks on real workers (embedded broker, docling, the local server).

- The same picture in two DOCX files under different captions, submitted together: one call, and no
  text of one document in the other's output (issue 14: the cache once served one document's caption,
  echoed by the model, to the other).
- A worker with ``VISION_PROVIDER=openai`` (the local server's chat-completions endpoint) and
  ``DOCSIGHT_OUTPUT_DIR``: pictures described over the OpenAI protocol, every outcome on the topics and
  in the folder, as ``docsight submit --output`` writes it.
"""

from __future__ import annotations

import asyncio
import io
import json
import os

import pytest
from PIL import Image

from cluster_helpers import submit_and_wait, unique_id
from conftest import TEST_WORKER_ENV
from docsight.client import document_event, ensure_topics
from docsight.commands.status import write_enriched
from docsight.local_cluster import LOCAL_API_KEY, LocalCluster

pytestmark = pytest.mark.cluster

FALCON = "Figure 1: Confidential: Project Falcon acquisition structure"
PICNIC = "Figure 1: Public: the summer picnic at the lake"


def fresh_png() -> bytes:
    """A picture no other test sent (noise), so the description cache does not already hold it."""
    buffer = io.BytesIO()
    Image.frombytes("RGB", (64, 48), os.urandom(64 * 48 * 3)).resize((320, 240)).save(buffer, "PNG")
    return buffer.getvalue()


def captioned_docx(folder, name: str, picture: bytes, caption: str, text: str) -> str:
    from docx import Document
    from docx.shared import Inches

    document = Document()
    document.add_heading(name, level=1)
    document.add_paragraph(text)
    document.add_picture(io.BytesIO(picture), width=Inches(3))
    document.add_paragraph(caption, style="Caption")
    document.save(folder / f"{name}.docx")
    return f"{name}.docx"


def test_the_same_picture_under_two_captions_never_carries_one_documents_text_to_the_other(cluster, gemini):
    picture = fresh_png()
    falcon = document_event(unique_id("falcon"), "legal", captioned_docx(
        cluster.document_root, unique_id("falcon"), picture, FALCON, "The board approved the acquisition."))
    picnic = document_event(unique_id("picnic"), "staff", captioned_docx(
        cluster.document_root, unique_id("picnic"), picture, PICNIC, "Bring sandwiches and a hat."))
    calls_before = gemini.stats()["calls_ok"]

    outcomes = submit_and_wait(cluster, [falcon, picnic])  # together: both requests meet on one partition

    falcon_out, picnic_out = outcomes[falcon["document_id"]].value, outcomes[picnic["document_id"]].value
    [falcon_picture], [picnic_picture] = falcon_out["pictures"], picnic_out["pictures"]
    # the setup holds: one picture, found with its own caption in each document
    assert falcon_picture["sha256"] == picnic_picture["sha256"]
    assert (falcon_picture["caption"], picnic_picture["caption"]) == (FALCON, PICNIC)
    assert falcon_picture["status"] == picnic_picture["status"] == "described"
    # one call for both: the description depends on the picture alone
    assert gemini.stats()["calls_ok"] - calls_before == 1
    assert sorted([falcon_picture["cached"], picnic_picture["cached"]]) == [False, True]
    for output, other_words in ((falcon_out, ("picnic", "sandwiches")), (picnic_out, ("Falcon", "acquisition"))):
        description = output["pictures"][0]["description"]
        for word in ("Falcon", "acquisition", "picnic", "sandwiches", "caption"):
            assert word not in description  # the local server echoes any caption it is sent
        for word in other_words:
            assert word not in output["markdown"]
        assert output["pictures"][0]["caption"] in output["markdown"]  # its own caption stays in its text


@pytest.fixture(scope="module")
def openai_worker_cluster(tmp_path_factory):
    """A worker that describes through the OpenAI-compatible endpoint and also writes outcomes to a folder."""
    workdir = tmp_path_factory.mktemp("openai-folder")
    with LocalCluster(workdir, env=TEST_WORKER_ENV) as cluster:
        asyncio.run(ensure_topics(cluster.broker_url, partitions=6))
        cluster.start_worker("worker1", VISION_PROVIDER="openai",
                             OPENAI_BASE_URL=f"{cluster.gemini_base_url}/v1beta/openai",
                             OPENAI_API_KEY=LOCAL_API_KEY, OPENAI_MODEL="gemini-2.5-flash",
                             DOCSIGHT_OUTPUT_DIR=str(workdir / "outcomes"))
        yield cluster, workdir / "outcomes"


def test_a_worker_describes_through_an_openai_compatible_server_and_writes_a_folder(openai_worker_cluster, tmp_path):
    cluster, outcomes_dir = openai_worker_cluster
    picture = fresh_png()
    good = document_event(unique_id("openai"), "tester", captioned_docx(
        cluster.document_root, unique_id("openai"), picture, "Figure 1: A test pattern", "Some text."))
    broken_name = f"{unique_id('broken')}.docx"
    (cluster.document_root / broken_name).write_bytes(b"PK\x03\x04 not really a docx")
    broken = document_event(unique_id("broken"), "tester", broken_name)

    outcomes = submit_and_wait(cluster, [good, broken])

    enriched = outcomes[good["document_id"]].value
    [described] = enriched["pictures"]
    assert described["status"] == "described" and "320x240" in described["description"]
    assert described["input_tokens"] >= 258 and described["cost_usd"] > 0
    by_endpoint = cluster.gemini.stats()["by_endpoint"]
    assert by_endpoint.get("openai.chat.completions") == 1 and set(by_endpoint) == {"openai.chat.completions"}

    # the folder holds what `docsight submit --output` would write for the same outcome
    write_enriched(tmp_path, good["document_id"], enriched, cluster.store_dir)
    for suffix in (".md", ".json"):
        assert (outcomes_dir / f"{good['document_id']}{suffix}").read_text() == \
            (tmp_path / f"{good['document_id']}{suffix}").read_text()
    failure = outcomes[broken["document_id"]].value
    written = json.loads((outcomes_dir / f"{broken['document_id']}.failed.json").read_text())
    assert written == {key: failure[key] for key in written} and written["reason"] == failure["reason"]

"""``docsight submit``, ``status`` and ``results`` as a person runs them: subprocesses against the real cluster."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from docsight.broker import free_port

from cluster_helpers import submit_and_wait, unique_markdown_document, wait_for_status
from conftest import SAMPLES, TEST_WORKER_ENV

pytestmark = pytest.mark.cluster

SUBMITTED = re.compile(r"^submitted (\S+) as (\S+)$", re.MULTILINE)


def clean_environment(**settings: str) -> dict[str, str]:
    """The caller's environment without docsight settings, plus ``settings``."""
    env = {key: value for key, value in os.environ.items()
           if not key.startswith(("DOCSIGHT_", "VISION_", "GEMINI_", "GOOGLE_GEMINI_"))}
    env.update(settings)
    return env


def cluster_environment(cluster, **settings: str) -> dict[str, str]:
    return clean_environment(**{"DOCSIGHT_BROKER_URL": cluster.broker_url,
                                "DOCSIGHT_DOCUMENT_ROOT": str(cluster.document_root),
                                "DOCSIGHT_WEB_PORT": str(cluster.workers["worker1"].web_port), **settings})


def docsight(*args: str, env: dict[str, str], cwd: Path, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "docsight", *map(str, args)], env=env, cwd=cwd,
                          capture_output=True, text=True, timeout=timeout)


def submitted_ids(stdout: str) -> dict[str, str]:
    """File name -> document id, from the ``submitted NAME as ID`` lines."""
    return {name: document_id for name, document_id in SUBMITTED.findall(stdout)}


def outcome_event(cluster, document_id: str) -> dict:
    outcomes = submit_and_wait(cluster, expect={document_id}, timeout=20)
    return outcomes[document_id].value


def assert_one_line_error(result: subprocess.CompletedProcess, command: str, *fragments: str) -> None:
    assert result.returncode == 2, result
    assert "Traceback" not in result.stderr, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"docsight {command}: "), result.stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


def test_submit_wait_shows_progress_and_writes_markdown_and_json(cluster, gemini, tmp_path):
    # one call of three hangs for 2 s, so the progress shows a document part-way through
    gemini.control({"enqueue": [{"kind": "hang", "seconds": 2}]})
    in_root = cluster.document_root / unique_markdown_document(cluster.document_root, pictures=3)
    outside = tmp_path / "brief.docx"
    outside.write_bytes((SAMPLES / "product_brief.docx").read_bytes())

    result = docsight("submit", in_root, outside, "--wait", "--output", tmp_path / "out",
                      env=cluster_environment(cluster), cwd=tmp_path)

    assert result.returncode == 0, result.stdout + result.stderr
    ids = submitted_ids(result.stdout)
    assert set(ids) == {"doc.md", "brief.docx"}
    # a file outside the root is copied below it; one inside is referenced where it is
    assert (cluster.document_root / "submitted" / ids["brief.docx"] / "brief.docx").read_bytes() == outside.read_bytes()
    assert not (cluster.document_root / "submitted" / ids["doc.md"]).exists()
    # not a terminal: plain progress lines, one per change
    assert "\x1b[" not in result.stdout
    progress_block, summary = result.stdout.split("\n\n", 1)
    progress = [line for line in progress_block.splitlines() if line.startswith(f"doc.md ({ids['doc.md']}): ")]
    assert progress[0].endswith("queued: waiting for a worker to read it")
    assert any(re.search(r": describing: [0-2]/3 pictures described$", line) for line in progress), progress
    assert re.search(r": enriched: 3/3 pictures described, \d+ input tokens, \$0\.\d{6}$", progress[-1]), progress
    assert "2 submitted, 2 enriched, 0 failed or unfinished" in summary

    for name, document_id in ids.items():
        event = outcome_event(cluster, document_id)
        markdown = (tmp_path / "out" / f"{name}.md").read_text()
        details = json.loads((tmp_path / "out" / f"{name}.json").read_text())
        assert markdown == event["markdown"]
        assert details == {key: value for key, value in event.items() if key != "markdown"}
        assert details["pictures"], name
        for picture in details["pictures"]:
            assert {"index", "location", "caption", "description", "input_tokens", "output_tokens",
                    "cost_usd", "status"} <= set(picture)
            assert picture["status"] == "described" and picture["description"] in markdown


def test_submit_wait_exits_non_zero_when_a_document_fails(cluster, gemini, tmp_path):
    broken = tmp_path / "broken.pdf"
    broken.write_bytes(b"%PDF-1.7\nthis is not really a PDF\n")
    good = cluster.document_root / unique_markdown_document(cluster.document_root, pictures=1)

    no_worker = f"http://127.0.0.1:{free_port()}"

    # no worker at --worker-url: no progress figures, but the outcomes still come from the broker
    result = docsight("submit", broken, good, "--wait", "--output", tmp_path / "out", "--worker-url", no_worker,
                      env=cluster_environment(cluster), cwd=tmp_path)

    assert result.returncode == 1, result.stdout + result.stderr
    assert f"no progress to show: cannot reach a docsight worker at {no_worker}" in result.stdout
    ids = submitted_ids(result.stdout)
    assert re.search(rf"^broken\.pdf \({ids['broken.pdf']}\): FAILED, extraction failed: corrupt \(.+\)$",
                     result.stdout, re.MULTILINE), result.stdout
    assert "2 submitted, 1 enriched, 1 failed or unfinished" in result.stdout
    assert (tmp_path / "out" / "doc.md.md").exists() and not (tmp_path / "out" / "broken.pdf.md").exists()

    results = docsight("results", ids["broken.pdf"], env=cluster_environment(cluster), cwd=tmp_path)
    assert results.returncode == 1
    assert f"{ids['broken.pdf']}: extraction failed: corrupt" in results.stdout


def test_submit_then_status_and_results(cluster, gemini, tmp_path):
    env = cluster_environment(cluster)
    document = cluster.document_root / unique_markdown_document(cluster.document_root, pictures=2)

    submitted = docsight("submit", document, "--user", "alice", env=env, cwd=tmp_path)

    assert submitted.returncode == 0, submitted.stderr
    document_id = submitted_ids(submitted.stdout)["doc.md"]
    assert "docsight status ID" in submitted.stdout
    wait_for_status(cluster.workers["worker1"], document_id, "enriched")

    status = docsight("status", document_id, env=env, cwd=tmp_path)
    assert status.returncode == 0, status.stderr
    fields = dict(line.split(None, 1) for line in status.stdout.strip().splitlines())
    assert fields["document"] == document_id and fields["status"] == "enriched"
    assert fields["pictures"] == "2 of 2 described"
    as_json = json.loads(docsight("status", document_id, "--json", env=env, cwd=tmp_path).stdout)
    assert as_json["user_id"] == "alice" and as_json["pictures"]["expected"] == 2

    results = docsight("results", document_id, "--output", tmp_path / "results", env=env, cwd=tmp_path)
    assert results.returncode == 0, results.stderr
    assert f"{document_id}: enriched, 2 of 2 pictures described" in results.stdout
    event = outcome_event(cluster, document_id)
    assert (tmp_path / "results" / "doc.md.md").read_text() == event["markdown"]
    assert json.loads((tmp_path / "results" / "doc.md.json").read_text())["pictures"] == event["pictures"]


def test_unknown_ids_and_unreachable_parts_are_one_clear_line(cluster, tmp_path):
    env = cluster_environment(cluster)
    closed_port = free_port()

    unknown = docsight("status", "no-such-document", env=env, cwd=tmp_path)
    assert unknown.returncode == 1 and "Traceback" not in unknown.stderr
    assert "unknown document 'no-such-document'" in unknown.stderr

    no_worker = docsight("status", "anything", "--worker-url", f"http://127.0.0.1:{closed_port}", env=env, cwd=tmp_path)
    assert_one_line_error(no_worker, "status", f"http://127.0.0.1:{closed_port}", "DOCSIGHT_WEB_PORT")

    none = docsight("results", "no-such-document", env=env, cwd=tmp_path)
    assert none.returncode == 1 and "no outcome for 'no-such-document'" in none.stderr

    broker_url = f"kafka://127.0.0.1:{closed_port}"
    closed = cluster_environment(cluster, DOCSIGHT_BROKER_URL=broker_url)
    for result, command in [(docsight("submit", SAMPLES / "team_update.md", env=closed, cwd=tmp_path), "submit"),
                            (docsight("submit", SAMPLES / "team_update.md", "--wait", env=closed, cwd=tmp_path),
                             "submit"),
                            (docsight("results", "anything", env=closed, cwd=tmp_path), "results")]:
        assert_one_line_error(result, command, broker_url, "DOCSIGHT_BROKER_URL")

    missing = docsight("submit", tmp_path / "nowhere.pdf", SAMPLES / "team_update.md", env=env, cwd=tmp_path)
    assert_one_line_error(missing, "submit", f"no such file: {tmp_path / 'nowhere.pdf'}")
    folder = docsight("submit", tmp_path, env=env, cwd=tmp_path)
    assert_one_line_error(folder, "submit", "is a folder")

    bad_setting = docsight("status", "anything", env={**env, "DOCSIGHT_WEB_PORT": "not-a-port"}, cwd=tmp_path)
    assert bad_setting.returncode == 2 and "DOCSIGHT_WEB_PORT" in bad_setting.stderr
    assert "Traceback" not in bad_setting.stderr


def test_help_says_what_each_command_does_with_an_example(tmp_path):
    env = clean_environment()
    overview = docsight("--help", env=env, cwd=tmp_path)
    for command in ("submit", "status", "results"):
        assert re.search(rf"^\s+{command}\s+\S", overview.stdout, re.MULTILINE), overview.stdout
        text = docsight(command, "--help", env=env, cwd=tmp_path).stdout
        assert re.search(rf"^examples?:\n\s+(\S+=\S+ )*docsight {command} ", text, re.MULTILINE), text


def test_without_a_broker_the_documents_go_through_a_temporary_cluster(tmp_path):
    root = tmp_path / "documents"
    document = tmp_path / "brief.docx"
    document.write_bytes((SAMPLES / "product_brief.docx").read_bytes())
    env = clean_environment(DOCSIGHT_DOCUMENT_ROOT=str(root), **TEST_WORKER_ENV)

    result = docsight("submit", document, "--output", tmp_path / "out", env=env, cwd=tmp_path, timeout=150)

    assert result.returncode == 0, result.stdout + result.stderr
    assert "No broker configured (DOCSIGHT_BROKER_URL is unset)" in result.stdout
    assert "temporary local cluster" in result.stdout and "local Gemini server" in result.stdout
    assert re.search(r": enriched: 4/4 pictures described", result.stdout), result.stdout
    details = json.loads((tmp_path / "out" / "brief.docx.json").read_text())
    assert [p["status"] for p in details["pictures"]] == ["described"] * 4
    assert (tmp_path / "out" / "brief.docx.md").read_text().count("**Picture") == 4
    # the copy was for the temporary worker only
    assert not any((root / "submitted").iterdir())

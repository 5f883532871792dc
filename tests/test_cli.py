"""The docsight command itself: help, settings, estimate, structured logs (no broker)."""

import json
import logging
import subprocess
import sys

from conftest import SAMPLES


def docsight(*args, env=None):
    import os

    return subprocess.run([sys.executable, "-m", "docsight", *args], capture_output=True, text=True,
                          env={**os.environ, "HF_HUB_OFFLINE": "1", **(env or {})}, timeout=120)


def test_help_lists_every_command_with_an_example():
    result = docsight("--help")
    assert result.returncode == 0
    for command in ("worker", "demo", "gemini-server", "settings", "estimate"):
        assert command in result.stdout
    assert "example" in docsight("estimate", "--help").stdout


def test_estimate_reproduces_the_design_notes_figure_and_the_savings():
    result = docsight("estimate", "--documents-per-day", "1000", "--images-per-document", "20",
                      "--dedupe-ratio", "0.3")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    as_is = next(line for line in lines if line.startswith("pictures as they are"))
    assert "20.79" in as_is  # 1,000 documents x 20 pictures of 1600x1200 on gemini-2.5-flash
    assert "13.05" in next(line for line in lines if line.startswith("downscaled"))
    assert "9.13" in next(line for line in lines if "repeated pictures" in line)


def test_estimate_from_real_files_shows_each_saving():
    result = docsight("estimate", "--sample", str(SAMPLES),
                      env={"VISION_ENABLED_FORMATS": "pdf,docx,pptx,xlsx,html,md"})
    assert result.returncode == 0, result.stderr
    calls = {}
    for line in result.stdout.splitlines():
        label, _, rest = line.partition("  ")
        if rest.split():
            calls[label] = rest.split()[0]
    # 23 pictures in the samples; the repeated logo and shared pictures leave 9 distinct ones
    assert calls["all pictures as-is"] == "23"
    assert calls["after dedupe (unique sha256)"] == "9"


def test_a_bad_setting_is_one_clear_line():
    result = docsight("estimate", env={"VISION_RATE_LIMIT_PER_MINUTE": "lots"})
    assert result.returncode == 2
    assert "VISION_RATE_LIMIT_PER_MINUTE" in result.stderr and "Traceback" not in result.stderr


def test_json_logs_carry_the_document_and_mask_the_key():
    from docsight.log_format import JsonFormatter

    record = logging.LogRecord("docsight.agents.ingest", logging.INFO, __file__, 1,
                               "document %s extracted with key secret-key-123456", ("d1",), None)
    record.document_id, record.stage = "d1", "extracted"
    entry = json.loads(JsonFormatter(secret="secret-key-123456").format(record))
    assert entry["document_id"] == "d1" and entry["stage"] == "extracted" and entry["level"] == "info"
    assert "secret-key-123456" not in json.dumps(entry) and "***" in entry["message"]

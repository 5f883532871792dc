"""The Grafana dashboard in deploy/grafana: well formed, and every panel's query answers from a real Prometheus.

Prometheus scrapes the test cluster's worker while a little traffic goes through it (new pictures,
a repeated picture, a picture too small to send, a document that fails), then each query must return
series with a number in them.
"""

from __future__ import annotations

import io
import json
import math
import uuid
from pathlib import Path

import pytest
import yaml

from cluster_helpers import submit_and_wait, unique_markdown_document
from docsight.client import document_event
from prometheus_helpers import PROMETHEUS, SKIP_REASON, start_prometheus

DEPLOY = Path(__file__).resolve().parents[1] / "deploy"
DASHBOARD = DEPLOY / "grafana" / "dashboards" / "docsight.json"


def panels() -> list[dict]:
    return [panel for panel in json.loads(DASHBOARD.read_text())["panels"] if panel["type"] != "row"]


def queries() -> list[tuple[str, str]]:
    return [(f"{panel['title']} / {target['refId']}", target["expr"]) for panel in panels()
            for target in panel["targets"]]


def test_the_dashboard_is_well_formed_and_uses_the_provisioned_datasource():
    dashboard = json.loads(DASHBOARD.read_text())
    datasource = yaml.safe_load((DEPLOY / "grafana/provisioning/datasources/prometheus.yml").read_text())
    uid = datasource["datasources"][0]["uid"]
    assert dashboard["uid"] and dashboard["title"]
    ids = [panel["id"] for panel in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    for panel in panels():
        assert panel["datasource"]["uid"] == uid, panel["title"]
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            assert target["datasource"]["uid"] == uid and target["expr"].strip(), panel["title"]
            assert "$" not in target["expr"], "Grafana variables would not evaluate in Prometheus: " + target["expr"]
        grid = panel["gridPos"]
        assert 0 <= grid["x"] and grid["x"] + grid["w"] <= 24, panel["title"]
    provider = yaml.safe_load((DEPLOY / "grafana/provisioning/dashboards/docsight.yml").read_text())
    assert provider["providers"][0]["options"]["path"] == "/var/lib/grafana/dashboards"


def tiny_picture_document(document_root: Path) -> str:
    """A markdown file whose only picture is below the decorative-size filter: skipped with a reason."""
    from PIL import Image

    folder = document_root / f"tiny-{uuid.uuid4().hex[:8]}"
    folder.mkdir()
    buffer = io.BytesIO()
    Image.new("RGB", (8, 8), "green").save(buffer, "PNG")
    (folder / "dot.png").write_bytes(buffer.getvalue())
    (folder / "doc.md").write_text("# A bullet\n\n![dot](dot.png)\n\nText after it.\n")
    return f"{folder.name}/doc.md"


@pytest.mark.cluster
@pytest.mark.skipif(PROMETHEUS is None, reason=SKIP_REASON)
def test_every_panel_query_returns_series_from_a_real_prometheus(cluster, gemini, tmp_path):
    worker = cluster.workers["worker1"]
    target = f"127.0.0.1:{worker.web_port}"
    with start_prometheus([target], tmp_path / "prometheus") as prometheus:
        prometheus.wait_for_value("up", 1.0, instance=target)
        # traffic after the first scrape, so that rates and quantiles have something to measure
        shared = io.BytesIO()
        from PIL import Image

        Image.effect_noise((200, 150), 60).convert("RGB").save(shared, "PNG")
        run = uuid.uuid4().hex[:8]
        events = [
            document_event(f"dash-{run}-1", "tester", unique_markdown_document(cluster.document_root, 2,
                                                                                shared=shared.getvalue())),
            document_event(f"dash-{run}-2", "tester", unique_markdown_document(cluster.document_root, 1,
                                                                                shared=shared.getvalue())),
            document_event(f"dash-{run}-3", "tester", tiny_picture_document(cluster.document_root)),
            document_event(f"dash-{run}-4", "tester", "no-such-folder/missing.pdf"),
        ]
        outcomes = submit_and_wait(cluster, events[:1], timeout=120)  # the shared picture described first
        outcomes |= submit_and_wait(cluster, events[1:], timeout=120)
        assert {o.topic for o in outcomes.values()} == {"document-enriched", "document-failed"}

        missing = {}
        for name, expr in queries():
            try:
                prometheus.wait_for(expr, has_a_number, timeout=45)
            except AssertionError as error:
                missing[name] = f"{expr}: {str(error).splitlines()[0]}"
        assert not missing, "queries without series:\n" + "\n".join(missing.values())


def has_a_number(result: list[dict]) -> bool:
    values = [float(series["value"][1]) for series in result]
    return bool(values) and any(not math.isnan(value) for value in values)

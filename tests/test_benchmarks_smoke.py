"""The pure parts of ``docsight bench``: figure arithmetic, targets, table rendering, /proc reading, the CLI.

Nothing here starts a broker, a server or docling, and nothing is timed.
"""

from __future__ import annotations

import os

import pytest

from docsight.benchmarks import SCENARIOS, Figure, ScenarioResult, Target, render
from docsight.benchmarks.figures import QuotaPlan, Spread, per_minute, percentile, saturated_rate
from docsight.benchmarks.procmem import cpu_seconds, descendants, parent_of, read_pss_kib, read_status_kib
from docsight.benchmarks.report import format_number
from docsight.cli import build_parser


def test_percentile_interpolates_between_ranks():
    assert percentile([], 50) is None
    assert percentile([7.0], 95) == 7.0
    assert percentile([1, 2, 3, 4], 50) == 2.5
    assert percentile([10, 0, 20], 100) == 20
    assert percentile(range(101), 95) == pytest.approx(95)
    with pytest.raises(ValueError):
        percentile([1], 101)


def test_rates_and_spreads():
    assert per_minute(57, 30) == 114
    assert per_minute(5, 0) is None
    spread = Spread.of([1.0, 2.0, 3.0, 4.0, 5.0])
    assert (spread.count, spread.p50, spread.max) == (5, 3.0, 5.0)
    assert Spread.of([]).p95 is None


def test_saturated_rate_counts_only_while_work_waits_beyond_what_is_in_flight():
    # 10 requests at t=0, one finishes every second: more than 2 wait until the 8th finish
    requested = [0.0] * 10
    finished = [float(n) for n in range(1, 11)]
    rate, busy = saturated_rate(requested, finished, waiting_above=2)
    assert busy == pytest.approx(8.0)
    assert rate == pytest.approx(1.0)
    assert saturated_rate([], [], 5) == (0.0, 0.0)


def test_a_scaled_quota_keeps_the_rate_per_minute():
    quick = QuotaPlan(10, 5.0, tokens_per_window=5_000)
    assert quick.per_minute == 120 and quick.tokens_per_minute == 60_000
    assert quick.worker_env() == {"VISION_RATE_LIMIT_PER_MINUTE": "120", "VISION_QUOTA_WINDOW_SECONDS": "5",
                                  "VISION_TOKENS_PER_MINUTE": "60000"}
    assert quick.server_config() == {"rpm": 10, "tpm": 5_000, "window_seconds": 5.0}
    assert "VISION_TOKENS_PER_MINUTE" not in QuotaPlan(60).worker_env()


def test_targets_judge_the_ratio_or_the_value():
    window = Figure("busiest window", 114, "calls", 120, Target("<=", 1.0))
    assert window.ratio == pytest.approx(0.95) and window.met is True
    assert Figure("busiest window", 121, "calls", 120, Target("<=", 1.0)).met is False
    assert Figure("used", 100, "/min", 120, Target(">=", 0.9)).met is False
    assert Figure("429s", 0, "", None, Target("==", 0, of="value")).met is True
    assert Figure("429s", 3, "", None, Target("==", 0, of="value")).met is False
    assert Figure("no measurement", None, "", 10, Target("<=", 1.0)).met is None
    assert Figure("no limit", 5, "", None).ratio is None
    assert str(Target("<=", 1.3)) == "≤ 1.30x" and str(Target("==", 0, of="value")) == "= 0"
    with pytest.raises(ValueError):
        Target("<", 1.0)


def test_numbers_are_formatted_for_reading():
    assert format_number(None) == "-"
    assert format_number(12_345) == "12,345"
    assert format_number(0) == "0"
    assert format_number(114.4) == "114"
    assert format_number(2.5) == "2.50"
    assert format_number(0.00123) == "0.00123"


def sample_result() -> ScenarioResult:
    result = ScenarioResult("budget", "Cluster budget")
    table = result.table("1 worker (150 s)")
    table.add("busiest 60 s window, calls", 114, "calls", 120, Target("<=", 1.0))
    table.add("429 answers", 2, "", None, Target("==", 0, of="value"))
    table.add("p95 picture latency", 3.25, "s")
    result.notes.append("figures from a shared 2-core machine")
    return result


def test_a_result_renders_as_text_and_markdown_with_its_verdicts():
    result = sample_result()
    assert result.targets() == (1, 1)
    text = render(result)
    assert "== Cluster budget ==" in text
    assert "busiest 60 s window, calls" in text and "0.95x" in text and "MISSED" in text and "met" in text
    assert "targets: 1 met, 1 missed" in text and "figures from a shared 2-core machine" in text
    markdown = render(result, markdown=True)
    assert markdown.startswith("### Cluster budget")
    assert "| busiest 60 s window, calls | 114 calls | 120 calls | 0.95x | ≤ 1.00x | met |" in markdown
    data = result.as_dict()
    assert data["tables"][0]["figures"][0]["ratio"] == pytest.approx(0.95)
    assert data["tables"][0]["figures"][1]["met"] is False


def test_proc_readers_see_this_process():
    pid = os.getpid()
    assert read_status_kib(pid) > 0
    assert read_status_kib(pid, "VmHWM") >= read_status_kib(pid)
    assert read_pss_kib(pid) is None or read_pss_kib(pid) > 0
    assert cpu_seconds(pid) >= 0
    assert read_status_kib(2 ** 22 + 1) is None  # beyond pid_max: no such process
    assert isinstance(descendants(pid), list)
    # a command name with spaces and parentheses does not shift the fields
    assert parent_of("123 (a (b) c) S 42 123 123 0 -1") == 42


def test_the_bench_command_is_registered():
    args = build_parser().parse_args(["bench", "budget", "--quick"])
    assert args.scenario == "budget" and args.quick
    assert build_parser().parse_args(["bench", "all"]).scenario == "all"
    assert set(SCENARIOS) == {"budget", "quota", "extraction", "framework", "latency", "memory", "cost",
                              "fidelity"}

"""Cost estimates: the design notes' ~$20/day and the savings, step by step on real pictures."""

from types import SimpleNamespace

import pytest

from docsight.cost.__main__ import main
from docsight.cost.estimator import (
    SampledPicture,
    design_note_scenarios,
    estimate_daily_cost,
    estimate_from_pictures,
    render_scenarios,
)
from docsight.cost.prices import load_price_table


def test_the_design_notes_20_dollars_a_day():
    # 1000 documents x 20 pictures; 1600x1200 sent as-is = 6 tiles = 1,548 tokens,
    # + 250 prompt tokens at $0.30/M, + 200 output tokens at $2.50/M
    estimate = estimate_daily_cost(1000, 20, "gemini-2.5-flash", max_side=None)
    assert estimate.image_tokens == 1548 and estimate.input_tokens_per_call == 1798
    assert estimate.cost_per_call == 0.0010394
    assert estimate.pictures_per_day == estimate.calls_per_day == 20_000
    assert estimate.daily_cost == 20.788
    assert estimate.monthly_cost == 623.64


def test_downscaling_and_dedupe():
    downscaled = estimate_daily_cost(1000, 20, "gemini-2.5-flash")
    assert (downscaled.picture_width, downscaled.picture_height, downscaled.image_tokens) == (768, 576, 258)
    assert downscaled.cost_per_call == 0.0006524
    assert downscaled.daily_cost == 13.048 and downscaled.monthly_cost == 391.44
    assert downscaled.output_share == pytest.approx(0.7664, abs=1e-4)  # output now dominates
    deduped = estimate_daily_cost(1000, 20, "gemini-2.5-flash", dedupe_ratio=0.3)
    assert deduped.calls_per_day == 14_000 and deduped.daily_cost == 9.1336


def test_other_models_batch_thinking_and_media_resolution():
    assert estimate_daily_cost(1000, 20, "gemini-2.5-flash-lite").daily_cost == 2.616  # 20,000 x $0.0001308
    assert estimate_daily_cost(1000, 20, "gemini-2.5-flash", batch=True).daily_cost == 6.524
    thinking = estimate_daily_cost(1000, 20, "gemini-2.5-flash", thinking_tokens=100)
    assert thinking.cost_per_call == 0.0009024  # 508 x 0.30 + 300 x 2.50, per million
    low = estimate_daily_cost(1000, 20, "gemini-2.5-flash", media_resolution="LOW", max_side=None)
    assert low.image_tokens == 64


def test_price_overrides_reach_the_estimate():
    prices = load_price_table('{"gemini-2.5-flash": {"output": 0}}')
    estimate = estimate_daily_cost(1000, 20, "gemini-2.5-flash", prices)
    assert estimate.daily_cost == 3.048  # 20,000 x 508 x $0.30/M


def test_bad_estimate_inputs():
    with pytest.raises(ValueError, match="dedupe_ratio"):
        estimate_daily_cost(1000, 20, dedupe_ratio=1.5)


def test_estimate_renders_a_table():
    text = estimate_daily_cost(1000, 20, "gemini-2.5-flash", max_side=None).render()
    assert "$20.79" in text and "$623.64" in text and "1,548" in text and "1600x1200" in text


def test_design_note_scenarios_go_down_step_by_step():
    scenarios = design_note_scenarios()
    daily = [round(estimate.daily_cost, 4) for _, estimate in scenarios]
    assert daily == [20.788, 13.048, 9.1336, 4.5668, 1.8312]
    table = render_scenarios(scenarios)
    assert "20.79" in table and "1.83" in table and "gemini-2.5-flash-lite" in table


def test_the_command_line_prints_the_table(capsys):
    main(["--documents-per-day", "500", "--model", "gemini-2.5-flash"])
    output = capsys.readouterr().out
    assert "10.39" in output  # half the design notes' 20.79
    assert "cost per day" in output


def pictures_of_three_documents():
    def pic(document, document_format, index, width, height, sha256, size_bytes=100_000):
        return SampledPicture(index, width, height, size_bytes, sha256, document, document_format)

    return [
        pic("a.pdf", "pdf", 0, 1600, 1200, "photo"),
        pic("a.pdf", "pdf", 1, 1600, 1200, "photo"),  # the same picture again
        pic("a.pdf", "pdf", 2, 20, 20, "icon"),  # too small
        pic("a.pdf", "pdf", 3, 800, 600, "huge", size_bytes=6 * 1024 * 1024),  # too large
        pic("a.pdf", "pdf", 4, 300, 200, "chart"),
        pic("b.pptx", "pptx", 0, 1000, 1000, "slide"),  # vision off for pptx
        pic("c.docx", "docx", 0, 1600, 1200, "photo"),  # the same picture in another document
    ]


def test_savings_step_by_step_on_real_pictures():
    report = estimate_from_pictures(pictures_of_three_documents(), "gemini-2.5-flash")
    rows = [(step.calls, step.input_tokens, step.output_tokens, step.cost) for step in report.steps]
    assert rows == [
        (7, 6708 + 7 * 250, 1400, 0.0060374),  # 3 x 1,548 + 2 x 258 + 516 + 1,032 image tokens
        (4, 5902, 800, 0.0037706),  # 3 x 1,548 + 258 + 4 x 250
        (2, 2306, 400, 0.0016918),  # 1,548 + 258 + 2 x 250
        (2, 1016, 400, 0.0013048),  # 258 + 258 + 2 x 250
    ]
    assert [step.label for step in report.steps] == [
        "all pictures as-is", "after filters", "after dedupe (unique sha256)", "after downscaling to 768 px"]
    assert report.skipped == {"too_small": 1, "image_too_large": 1, "vision_disabled_for_type": 1}
    assert (report.documents, report.pictures) == (3, 7)
    text = report.render()
    assert "0.0060" in text and "0.0013" in text and "78%" in text and "too_small 1" in text


def test_from_extracted_pictures():
    extracted = SimpleNamespace(index=3, width=640, height=480, size_bytes=1234, sha256="f" * 64)
    picture = SampledPicture.from_extracted(extracted, "doc-1", "docx")
    assert picture == SampledPicture(3, 640, 480, 1234, "f" * 64, "doc-1", "docx")


def test_repeated_indexes_in_one_document_are_refused():
    pictures = [SampledPicture(0, 100, 100, 1, "a", "d"), SampledPicture(0, 100, 100, 1, "b", "d")]
    with pytest.raises(ValueError, match="repeated picture indexes"):
        estimate_from_pictures(pictures)

"""Price table: exact arithmetic per model, batch prices, overrides, unknown models."""

import json
from decimal import Decimal

import pytest

from docsight.cost.prices import (
    DEFAULT_PRICES,
    PriceTableError,
    UnknownModelError,
    call_cost,
    load_price_table,
)


@pytest.mark.parametrize("model, input_price, output_price, batch_input, batch_output", [
    ("gemini-2.5-flash", 0.30, 2.50, 0.15, 1.25),
    ("gemini-2.5-flash-lite", 0.10, 0.40, 0.05, 0.20),
])
def test_a_million_tokens_cost_exactly_the_list_price(model, input_price, output_price, batch_input, batch_output):
    assert call_cost(model, 1_000_000, 0, 0) == input_price
    assert call_cost(model, 0, 1_000_000, 0) == output_price
    assert call_cost(model, 1_000_000, 0, 0, batch=True) == batch_input
    assert call_cost(model, 0, 1_000_000, 0, batch=True) == batch_output


def test_a_typical_flash_call():
    # 516 image + 5 text input tokens, 19 output, 100 thinking (billed as output)
    assert call_cost("gemini-2.5-flash", 521, 19, 100) == 0.0004538  # 521*0.30e-6 + 119*2.50e-6
    assert DEFAULT_PRICES.cost("gemini-2.5-flash", 521, 19, 100) == Decimal("0.0004538")
    assert call_cost("gemini-2.5-flash", 521, 19, 100, batch=True) == 0.0002269


def test_a_typical_flash_lite_call():
    assert call_cost("gemini-2.5-flash-lite", 508, 200, 0) == 0.0001308  # 508*0.10e-6 + 200*0.40e-6
    assert call_cost("gemini-2.5-flash-lite", 508, 150, 50) == 0.0001308  # thinking is output
    assert call_cost("gemini-2.5-flash-lite", 508, 200, 0, batch=True) == 0.0000654


def test_thinking_tokens_are_billed_as_output():
    assert call_cost("gemini-2.5-flash", 0, 0, 1_000_000) == 2.50
    assert call_cost("gemini-2.5-flash", 1000, 300, 700) == call_cost("gemini-2.5-flash", 1000, 1000, 0)


def test_the_api_spelling_of_a_model_name_is_accepted():
    assert call_cost("models/gemini-2.5-flash", 1_000_000, 0) == 0.30


def test_an_unknown_model_names_the_known_ones():
    with pytest.raises(UnknownModelError) as error:
        call_cost("gemini-9-ultra", 1, 1, 0)
    message = str(error.value)
    assert "gemini-9-ultra" in message
    assert "gemini-2.5-flash" in message and "gemini-2.5-flash-lite" in message


def test_negative_token_counts_are_refused():
    with pytest.raises(ValueError, match="output_tokens"):
        call_cost("gemini-2.5-flash", 1, -1, 0)


def test_no_override_gives_the_defaults():
    assert load_price_table(None) is DEFAULT_PRICES
    assert load_price_table("  ") is DEFAULT_PRICES


def test_json_override_changes_one_field_and_adds_a_model():
    prices = load_price_table(json.dumps({
        "gemini-2.5-flash": {"output": 3.0},
        "gemini-3-flash": {"input": "0.50", "output": 3},
    }))
    flash = prices.price("gemini-2.5-flash")
    assert (flash.input, flash.output, flash.batch_input) == (Decimal("0.30"), Decimal("3.0"), Decimal("0.15"))
    assert call_cost("gemini-2.5-flash", 0, 1_000_000, 0, prices=prices) == 3.0
    # a new model's batch prices default to half
    assert call_cost("gemini-3-flash", 1_000_000, 1_000_000, 0, prices=prices) == 3.50
    assert call_cost("gemini-3-flash", 1_000_000, 1_000_000, 0, batch=True, prices=prices) == 1.75
    assert "gemini-2.5-flash-lite" in prices  # untouched models stay
    assert call_cost("gemini-2.5-flash", 0, 1_000_000, 0) == 2.50  # defaults not modified


def test_override_from_a_file(tmp_path):
    path = tmp_path / "prices.json"
    path.write_text('{"gemini-2.5-flash-lite": {"input": 0.2, "batch_input": 0.1}}')
    prices = load_price_table(str(path))
    assert call_cost("gemini-2.5-flash-lite", 1_000_000, 0, 0, prices=prices) == 0.2
    assert call_cost("gemini-2.5-flash-lite", 1_000_000, 0, 0, batch=True, prices=prices) == 0.1


@pytest.mark.parametrize("override, complaint", [
    ("{not json", "not valid JSON"),
    ("[1, 2]", "JSON object"),
    ('{"gemini-2.5-flash": 0.3}', "expected an object"),
    ('{"gemini-2.5-flash": {"inptu": 0.3}}', "unknown field"),
    ('{"gemini-2.5-flash": {"input": -1}}', "non-negative"),
    ('{"gemini-2.5-flash": {"input": "cheap"}}', "must be a number"),
    ('{"gemini-2.5-flash": {"input": true}}', "must be a number"),
    ('{"new-model": {"input": 1}}', "needs output"),
    ("/no/such/prices.json", "neither a JSON object nor a readable file"),
])
def test_malformed_overrides_say_what_is_wrong(override, complaint):
    with pytest.raises(PriceTableError, match=complaint):
        load_price_table(override)

"""What a Gemini call costs: per-model prices in USD per 1M tokens, overridable.

Defaults are Google's list prices from the shared notes (gemini-api.md). Thinking
tokens are billed at the output price. Arithmetic is done in ``Decimal`` so that
1,000,000 tokens at $0.30 is exactly $0.30, not 0.30000000000000004.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, fields, replace
from decimal import Decimal, InvalidOperation
from pathlib import Path
from types import MappingProxyType
from typing import Mapping

TOKENS_PER_PRICE_UNIT = Decimal(1_000_000)
# The Batch API costs half the interactive price (notes: "50% of the price");
# an override that names no batch price gets this.
BATCH_DISCOUNT = Decimal("0.5")


class PriceTableError(ValueError):
    """A price override is malformed; the message says where and why."""


class UnknownModelError(KeyError):
    """No price is known for a model; the message lists the known ones."""

    def __init__(self, model: str, known: list[str]):
        super().__init__(model)
        self.model = model
        self.known = known

    def __str__(self) -> str:
        return (f"no price known for model {self.model!r}; known models: {', '.join(self.known)}. "
                "Add it with the price override (GEMINI_PRICES).")


@dataclass(frozen=True)
class ModelPrice:
    """USD per 1M tokens."""

    input: Decimal
    output: Decimal  # thinking tokens are billed at this price too
    batch_input: Decimal
    batch_output: Decimal


DEFAULT_MODEL_PRICES: Mapping[str, ModelPrice] = MappingProxyType({
    "gemini-2.5-flash": ModelPrice(
        input=Decimal("0.30"), output=Decimal("2.50"),
        batch_input=Decimal("0.15"), batch_output=Decimal("1.25")),
    "gemini-2.5-flash-lite": ModelPrice(
        input=Decimal("0.10"), output=Decimal("0.40"),
        batch_input=Decimal("0.05"), batch_output=Decimal("0.20")),
})


class PriceTable:
    """Model name -> ModelPrice; ``price(model)`` raises UnknownModelError for others."""

    def __init__(self, prices: Mapping[str, ModelPrice]):
        self._prices = dict(prices)

    @property
    def models(self) -> list[str]:
        return sorted(self._prices)

    def price(self, model: str) -> ModelPrice:
        try:
            return self._prices[_model_name(model)]
        except KeyError:
            raise UnknownModelError(model, self.models) from None

    def __contains__(self, model: object) -> bool:
        return isinstance(model, str) and _model_name(model) in self._prices

    def __repr__(self) -> str:
        return f"PriceTable({self._prices!r})"

    def cost(self, model: str, input_tokens: int, output_tokens: int, thinking_tokens: int = 0,
             batch: bool = False) -> Decimal:
        """Exact cost in USD."""
        for name, count in (("input_tokens", input_tokens), ("output_tokens", output_tokens),
                            ("thinking_tokens", thinking_tokens)):
            if count < 0:
                raise ValueError(f"{name} must not be negative, got {count}")
        price = self.price(model)
        input_price, output_price = ((price.batch_input, price.batch_output) if batch
                                     else (price.input, price.output))
        return (Decimal(input_tokens) * input_price
                + Decimal(output_tokens + thinking_tokens) * output_price) / TOKENS_PER_PRICE_UNIT


DEFAULT_PRICES = PriceTable(DEFAULT_MODEL_PRICES)


def call_cost(model: str, input_tokens: int, output_tokens: int, thinking_tokens: int = 0,
              batch: bool = False, prices: PriceTable = DEFAULT_PRICES) -> float:
    """USD one call costs; thinking tokens are billed as output."""
    return float(prices.cost(model, input_tokens, output_tokens, thinking_tokens, batch))


def load_price_table(override: str | None = None) -> PriceTable:
    """The default prices, with ``override`` (a JSON object or the path of a JSON file) on top.

    Format: ``{"gemini-2.5-flash": {"input": 0.30, "output": 2.50, "batch_input": 0.15,
    "batch_output": 1.25}, ...}``. For a model already known, any subset of the fields may be
    given; a new model needs ``input`` and ``output`` (batch prices default to half of them).
    """
    if override is None or not override.strip():
        return DEFAULT_PRICES
    text = override.strip()
    source = "price override"
    if not text.startswith("{"):
        path = Path(text).expanduser()
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as error:
            raise PriceTableError(
                f"price override is neither a JSON object nor a readable file: {override!r} ({error})"
            ) from None
        source = f"price file {path}"
    try:
        # Decimal keeps "0.30" exact instead of going through a binary float.
        document = json.loads(text, parse_float=Decimal, parse_int=Decimal)
    except json.JSONDecodeError as error:
        raise PriceTableError(f"{source} is not valid JSON: {error}") from None
    if not isinstance(document, dict):
        raise PriceTableError(f"{source} must be a JSON object of model -> prices")

    prices = dict(DEFAULT_MODEL_PRICES)
    for model, entry in document.items():
        prices[_model_name(model)] = _parse_entry(source, model, entry, prices.get(_model_name(model)))
    return PriceTable(prices)


_FIELDS = tuple(field.name for field in fields(ModelPrice))


def _parse_entry(source: str, model: str, entry: object, known: ModelPrice | None) -> ModelPrice:
    where = f"{source}, model {model!r}"
    if not isinstance(entry, dict):
        raise PriceTableError(f"{where}: expected an object with {', '.join(_FIELDS)}")
    unknown = set(entry) - set(_FIELDS)
    if unknown:
        raise PriceTableError(f"{where}: unknown field(s) {', '.join(sorted(unknown))}; "
                              f"allowed: {', '.join(_FIELDS)}")
    values = {name: _price(where, name, value) for name, value in entry.items()}
    if known is not None:
        return replace(known, **values)
    missing = {"input", "output"} - set(values)
    if missing:
        raise PriceTableError(f"{where}: a new model needs {', '.join(sorted(missing))}")
    values.setdefault("batch_input", values["input"] * BATCH_DISCOUNT)
    values.setdefault("batch_output", values["output"] * BATCH_DISCOUNT)
    return ModelPrice(**values)


def _price(where: str, name: str, value: object) -> Decimal:
    if isinstance(value, bool) or not isinstance(value, (Decimal, str)):
        raise PriceTableError(f"{where}: {name} must be a number, got {value!r}")
    try:
        price = Decimal(value)
    except InvalidOperation:
        raise PriceTableError(f"{where}: {name} must be a number, got {value!r}") from None
    if not price.is_finite() or price < 0:
        raise PriceTableError(f"{where}: {name} must be a non-negative number, got {value!r}")
    return price


def _model_name(model: str) -> str:
    # The API names models "models/gemini-2.5-flash"; the SDK accepts both spellings.
    return model.strip().removeprefix("models/")


class PriceTablePricing:
    """One model's calls priced from the table: the most a call can cost (every output token used, the
    whole thinking budget) before it goes, and what it cost after (the budget's ``CallPricing``)."""

    def __init__(self, prices: PriceTable, model: str, max_output_tokens: int, thinking_budget: int | None) -> None:
        self._prices = prices
        self._model = model
        self._max_output_tokens = max_output_tokens
        self._thinking_budget = thinking_budget or 0

    def max_cost(self, estimated_input_tokens: int) -> float:
        return float(self._prices.cost(self._model, estimated_input_tokens, self._max_output_tokens,
                                       self._thinking_budget))

    def cost(self, input_tokens: int, output_tokens: int, thinking_tokens: int) -> float:
        return float(self._prices.cost(self._model, input_tokens, output_tokens, thinking_tokens))

"""What describing pictures costs per day and month, and what each saving is worth.

The design notes put 1000 documents a day with 20 pictures each at about $20/day.
``design_note_scenarios()`` shows where that comes from: gemini-2.5-flash, pictures
sent as extracted (1600x1200: 6 tiles, 1,548 image tokens) plus ~250 prompt tokens
and ~200 output tokens is $0.00104 a picture, 20,000 pictures = $20.79/day. Downscaled
to 768 px (1 tile) it is $13.05/day, and output then dominates the bill (77%), so the
next savings are duplicates, a cheaper model, the Batch API and shorter answers.
Run ``python -m docsight.cost`` for the table.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Iterable, Sequence

from docsight.cost.downscale import DEFAULT_MAX_SIDE, fit_within
from docsight.cost.filters import FilterPolicy, PictureFacts, SkipReason, select_pictures
from docsight.cost.prices import DEFAULT_PRICES, PriceTable
from docsight.cost.tokens import image_tokens

DAYS_PER_MONTH = 30
# System instruction (~80 tokens) plus the request with caption and ~600 characters of
# nearby text (docsight.vision.prompt, ExtractionLimits.context_chars).
DEFAULT_PROMPT_TOKENS = 250
# Two to four sentences plus the labels and numbers read out of a chart.
DEFAULT_OUTPUT_TOKENS = 200
# The design notes' example: a page-sized scan or photo as docling extracts it.
DESIGN_NOTE_PICTURE_SIZE = (1600, 1200)
# An assumption for the scenario table (repeated logos, headers, stamps), not a measurement:
# measure it on real documents with estimate_from_pictures.
EXAMPLE_DEDUPE_RATIO = 0.3


@dataclass(frozen=True)
class Estimate:
    model: str
    batch: bool
    documents_per_day: float
    images_per_document: float
    picture_width: int  # as sent, after downscaling
    picture_height: int
    image_tokens: int  # per picture
    prompt_tokens: int
    output_tokens: int
    thinking_tokens: int
    dedupe_ratio: float
    pictures_per_day: float
    calls_per_day: float
    input_cost_per_call: float
    output_cost_per_call: float  # thinking included
    cost_per_call: float
    daily_cost: float
    monthly_cost: float

    @property
    def input_tokens_per_call(self) -> int:
        return self.image_tokens + self.prompt_tokens

    @property
    def output_share(self) -> float:
        return self.output_cost_per_call / self.cost_per_call if self.cost_per_call else 0.0

    def render(self) -> str:
        mode = " (Batch API)" if self.batch else ""
        rows = [
            ("model", f"{self.model}{mode}"),
            ("documents per day", f"{self.documents_per_day:,.0f}"),
            ("pictures per document", f"{self.images_per_document:,.1f}"),
            ("pictures per day", f"{self.pictures_per_day:,.0f}"),
            ("duplicates removed", f"{self.dedupe_ratio:.0%}"),
            ("Gemini calls per day", f"{self.calls_per_day:,.0f}"),
            ("picture size sent", f"{self.picture_width}x{self.picture_height}"),
            ("image tokens per picture", f"{self.image_tokens:,}"),
            ("input tokens per call", f"{self.input_tokens_per_call:,} (image + {self.prompt_tokens:,} prompt)"),
            ("output tokens per call", f"{self.output_tokens + self.thinking_tokens:,}"
                                       f" ({self.thinking_tokens:,} thinking)"),
            ("cost per call", f"${self.cost_per_call:.6f} ({self.output_share:.0%} output)"),
            ("cost per day", f"${self.daily_cost:,.2f}"),
            (f"cost per month ({DAYS_PER_MONTH} days)", f"${self.monthly_cost:,.2f}"),
        ]
        width = max(len(label) for label, _ in rows)
        return "\n".join(f"{label:<{width}}  {value}" for label, value in rows)


def estimate_daily_cost(documents_per_day: float, images_per_document: float,
                        model: str = "gemini-2.5-flash", prices: PriceTable = DEFAULT_PRICES, *,
                        avg_width: int = DESIGN_NOTE_PICTURE_SIZE[0],
                        avg_height: int = DESIGN_NOTE_PICTURE_SIZE[1],
                        prompt_tokens: int = DEFAULT_PROMPT_TOKENS,
                        output_tokens: int = DEFAULT_OUTPUT_TOKENS,
                        thinking_tokens: int = 0,
                        max_side: int | None = DEFAULT_MAX_SIDE,
                        dedupe_ratio: float = 0.0,
                        media_resolution: str | None = None,
                        batch: bool = False) -> Estimate:
    """``max_side=None``: pictures sent as extracted. ``dedupe_ratio``: share of pictures
    already described (same content hash), which cost no call."""
    if not 0.0 <= dedupe_ratio <= 1.0:
        raise ValueError(f"dedupe_ratio must be between 0 and 1, got {dedupe_ratio}")
    if documents_per_day < 0 or images_per_document < 0:
        raise ValueError("documents_per_day and images_per_document must not be negative")
    width, height = fit_within(avg_width, avg_height, max_side)
    tokens = image_tokens(width, height, media_resolution)
    input_cost = prices.cost(model, tokens + prompt_tokens, 0, batch=batch)
    output_cost = prices.cost(model, 0, output_tokens, thinking_tokens, batch=batch)
    pictures_per_day = _decimal(documents_per_day) * _decimal(images_per_document)
    calls_per_day = pictures_per_day * (1 - _decimal(dedupe_ratio))
    daily = (input_cost + output_cost) * calls_per_day
    return Estimate(
        model=model, batch=batch, documents_per_day=documents_per_day,
        images_per_document=images_per_document, picture_width=width, picture_height=height,
        image_tokens=tokens, prompt_tokens=prompt_tokens, output_tokens=output_tokens,
        thinking_tokens=thinking_tokens, dedupe_ratio=dedupe_ratio,
        pictures_per_day=float(pictures_per_day), calls_per_day=float(calls_per_day),
        input_cost_per_call=float(input_cost), output_cost_per_call=float(output_cost),
        cost_per_call=float(input_cost + output_cost),
        daily_cost=float(daily), monthly_cost=float(daily * DAYS_PER_MONTH))


def design_note_scenarios(documents_per_day: float = 1000, images_per_document: float = 20,
                          prices: PriceTable = DEFAULT_PRICES,
                          dedupe_ratio: float = EXAMPLE_DEDUPE_RATIO) -> list[tuple[str, Estimate]]:
    """The design notes' ~$20/day, then each saving on top of the previous one."""
    common = dict(documents_per_day=documents_per_day, images_per_document=images_per_document,
                  prices=prices)
    return [
        ("1600x1200 as extracted (design notes)", estimate_daily_cost(**common, max_side=None)),
        (f"downscaled to {DEFAULT_MAX_SIDE} px", estimate_daily_cost(**common)),
        (f"+ {dedupe_ratio:.0%} duplicates not re-described",
         estimate_daily_cost(**common, dedupe_ratio=dedupe_ratio)),
        ("+ Batch API (50%)", estimate_daily_cost(**common, dedupe_ratio=dedupe_ratio, batch=True)),
        ("or gemini-2.5-flash-lite instead",
         estimate_daily_cost(**common, dedupe_ratio=dedupe_ratio, model="gemini-2.5-flash-lite")),
    ]


def render_scenarios(scenarios: Sequence[tuple[str, Estimate]]) -> str:
    header = ("scenario", "model", "image tok", "in tok/call", "out tok/call", "$/call",
              "calls/day", "$/day", "$/month")
    rows = [(label, e.model + (" batch" if e.batch else ""), f"{e.image_tokens:,}",
             f"{e.input_tokens_per_call:,}", f"{e.output_tokens + e.thinking_tokens:,}",
             f"{e.cost_per_call:.6f}", f"{e.calls_per_day:,.0f}", f"{e.daily_cost:,.2f}",
             f"{e.monthly_cost:,.2f}") for label, e in scenarios]
    return _table(header, rows)


# --- Measured on real pictures ------------------------------------------------------


@dataclass(frozen=True)
class SampledPicture(PictureFacts):
    """An extracted picture with what dedupe and the per-document filters need."""

    sha256: str
    document: str = ""  # pictures are grouped by it for the per-document rules
    document_format: str = "pdf"

    @classmethod
    def from_extracted(cls, picture, document: str, document_format: str) -> "SampledPicture":
        """From a docsight.extraction ExtractedPicture (or anything with the same fields)."""
        return cls(index=picture.index, width=picture.width, height=picture.height,
                   size_bytes=picture.size_bytes, sha256=picture.sha256,
                   document=document, document_format=document_format)


@dataclass(frozen=True)
class Step:
    label: str
    calls: int
    input_tokens: int
    output_tokens: int  # thinking included
    cost: float


@dataclass(frozen=True)
class SavingsReport:
    model: str
    batch: bool
    documents: int
    pictures: int
    steps: list[Step]
    skipped: dict[str, int] = field(default_factory=dict)  # reason code -> pictures

    def step(self, label_prefix: str) -> Step:
        return next(step for step in self.steps if step.label.startswith(label_prefix))

    def render(self) -> str:
        baseline = self.steps[0].cost
        header = ("step", "calls", "input tokens", "output tokens", "cost USD", "saved")
        rows = [(step.label, f"{step.calls:,}", f"{step.input_tokens:,}", f"{step.output_tokens:,}",
                 f"{step.cost:.4f}", f"{1 - step.cost / baseline:.0%}" if baseline else "-")
                for step in self.steps]
        mode = " (Batch API)" if self.batch else ""
        lines = [f"{self.pictures:,} pictures in {self.documents:,} documents, {self.model}{mode}",
                 _table(header, rows)]
        if self.skipped:
            lines.append("skipped: " + ", ".join(f"{reason} {count:,}"
                                                 for reason, count in sorted(self.skipped.items())))
        return "\n".join(lines)


def estimate_from_pictures(pictures: Iterable[SampledPicture], model: str = "gemini-2.5-flash",
                           prices: PriceTable = DEFAULT_PRICES, *,
                           policy: FilterPolicy = FilterPolicy(),
                           prompt_tokens: int = DEFAULT_PROMPT_TOKENS,
                           output_tokens: int = DEFAULT_OUTPUT_TOKENS,
                           thinking_tokens: int = 0,
                           max_side: int | None = DEFAULT_MAX_SIDE,
                           media_resolution: str | None = None,
                           batch: bool = False) -> SavingsReport:
    """Each saving in turn on real pictures: as-is -> filters -> dedupe -> downscaling."""
    pictures = list(pictures)
    documents: dict[str, list[SampledPicture]] = {}
    for picture in pictures:
        documents.setdefault(picture.document, []).append(picture)

    kept: list[SampledPicture] = []
    skipped: Counter[str] = Counter()
    for document_pictures in documents.values():
        by_index = {picture.index: picture for picture in document_pictures}
        if len(by_index) != len(document_pictures):
            raise ValueError(f"document {document_pictures[0].document!r} has repeated picture indexes")
        for decision in select_pictures(document_pictures, document_pictures[0].document_format, policy):
            if decision.describe:
                kept.append(by_index[decision.index])
            else:
                skipped[SkipReason(decision.reason).value] += 1

    unique: list[SampledPicture] = []
    seen: set[str] = set()
    for picture in kept:  # the first of equal pictures is described, the rest reuse it
        if picture.sha256 not in seen:
            seen.add(picture.sha256)
            unique.append(picture)

    def step(label: str, selected: Sequence[SampledPicture], side: int | None) -> Step:
        image_total = sum(image_tokens(*fit_within(p.width, p.height, side), media_resolution)
                          for p in selected)
        input_total = image_total + prompt_tokens * len(selected)
        output_total = (output_tokens + thinking_tokens) * len(selected)
        cost = prices.cost(model, input_total, output_total, batch=batch)
        return Step(label, len(selected), input_total, output_total, float(cost))

    steps = [
        step("all pictures as-is", pictures, None),
        step("after filters", kept, None),
        step("after dedupe (unique sha256)", unique, None),
        step(f"after downscaling to {max_side} px" if max_side else "no downscaling", unique, max_side),
    ]
    return SavingsReport(model=model, batch=batch, documents=len(documents), pictures=len(pictures),
                         steps=steps, skipped=dict(skipped))


def _decimal(value: float) -> Decimal:
    # str() first: Decimal(0.3) would carry the binary float's error into the total.
    return Decimal(str(value))


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    widths = [max(len(row[column]) for row in [header, *rows]) for column in range(len(header))]

    def line(row: Sequence[str]) -> str:
        first, *rest = row
        return "  ".join([first.ljust(widths[0])] + [cell.rjust(w) for cell, w in zip(rest, widths[1:])])

    return "\n".join([line(header), "  ".join("-" * w for w in widths), *map(line, rows)])

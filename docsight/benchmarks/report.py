"""Figures measured against their limits, and the tables that show them.

Every scenario returns a ``ScenarioResult``: tables of ``Figure`` rows (the
figure, the limit it is held against, their ratio, the target and whether it
was met) plus notes that say what the figures mean. Pure data and text: the
smoke test renders them without running anything.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any, Sequence

_SYMBOLS = {"<=": "≤", ">=": "≥", "==": "="}


@dataclass(frozen=True)
class Target:
    """A bound on a figure's ratio to its limit (``of="ratio"``) or on the figure itself."""
    op: str  # "<=", ">=" or "=="
    bound: float
    of: str = "ratio"

    def __post_init__(self) -> None:
        if self.op not in _SYMBOLS:
            raise ValueError(f"op must be one of {sorted(_SYMBOLS)}, got {self.op!r}")
        if self.of not in ("ratio", "value"):
            raise ValueError(f"of must be 'ratio' or 'value', got {self.of!r}")

    def met(self, value: float | None, ratio: float | None) -> bool | None:
        subject = ratio if self.of == "ratio" else value
        if subject is None or (isinstance(subject, float) and math.isnan(subject)):
            return None
        if self.op == "<=":
            return subject <= self.bound + 1e-9
        if self.op == ">=":
            return subject >= self.bound - 1e-9
        return abs(subject - self.bound) <= 1e-9

    def __str__(self) -> str:
        bound = format_number(self.bound)
        return f"{_SYMBOLS[self.op]} {bound}x" if self.of == "ratio" else f"{_SYMBOLS[self.op]} {bound}"


@dataclass(frozen=True)
class Figure:
    name: str
    value: float | None
    unit: str = ""
    limit: float | None = None
    target: Target | None = None

    @property
    def ratio(self) -> float | None:
        if self.value is None or self.limit is None or self.limit == 0:
            return None
        return self.value / self.limit

    @property
    def met(self) -> bool | None:
        return self.target.met(self.value, self.ratio) if self.target else None

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["target"] = str(self.target) if self.target else None
        data["ratio"] = self.ratio
        data["met"] = self.met
        return data


@dataclass
class Table:
    title: str
    figures: list[Figure] = field(default_factory=list)

    def add(self, name: str, value: float | None, unit: str = "", limit: float | None = None,
            target: Target | None = None) -> Figure:
        figure = Figure(name, value, unit, limit, target)
        self.figures.append(figure)
        return figure


@dataclass
class ScenarioResult:
    name: str
    title: str
    tables: list[Table] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    data: dict[str, Any] = field(default_factory=dict)  # raw measurements, for the JSON file
    seconds: float = 0.0

    def table(self, title: str) -> Table:
        table = Table(title)
        self.tables.append(table)
        return table

    def targets(self) -> tuple[int, int]:
        """(met, missed) over every figure with a target."""
        verdicts = [f.met for table in self.tables for f in table.figures if f.met is not None]
        return sum(verdicts), len(verdicts) - sum(verdicts)

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "title": self.title, "seconds": round(self.seconds, 1),
                "tables": [{"title": t.title, "figures": [f.as_dict() for f in t.figures]} for t in self.tables],
                "notes": self.notes, "data": self.data}


def format_number(value: float | None) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int) or float(value).is_integer() and abs(value) >= 1000:
        return f"{int(value):,}"
    magnitude = abs(value)
    if magnitude >= 100:
        return f"{value:,.0f}"
    if magnitude >= 10:
        return f"{value:.1f}"
    if magnitude >= 1 or magnitude == 0:
        return f"{value:.2f}"
    return f"{value:.3g}"  # small amounts (dollars, seconds) keep three significant digits


def _with_unit(value: float | None, unit: str) -> str:
    text = format_number(value)
    return f"{text} {unit}" if unit and text != "-" else text


def _verdict(met: bool | None) -> str:
    return "" if met is None else ("met" if met else "MISSED")


def figure_row(figure: Figure) -> tuple[str, ...]:
    return (figure.name, _with_unit(figure.value, figure.unit), _with_unit(figure.limit, figure.unit),
            f"{figure.ratio:.2f}x" if figure.ratio is not None else "-",
            str(figure.target) if figure.target else "", _verdict(figure.met))


HEADER = ("figure", "value", "limit", "ratio", "target", "")


def text_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]

    def line(row: Sequence[str]) -> str:
        first, *rest = row
        return "  ".join([first.ljust(widths[0])] + [cell.rjust(w) for cell, w in zip(rest, widths[1:])]).rstrip()

    return "\n".join([line(header), "  ".join("-" * w for w in widths), *map(line, rows)])


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    def line(row: Sequence[str]) -> str:
        return "| " + " | ".join(cell.replace("|", "\\|") for cell in row) + " |"

    align = ["---"] + ["---:"] * (len(header) - 1)
    return "\n".join([line(header), "| " + " | ".join(align) + " |", *map(line, rows)])


def render(result: ScenarioResult, markdown: bool = False) -> str:
    table_of = markdown_table if markdown else text_table
    heading = f"### {result.title}" if markdown else f"== {result.title} =="
    parts = [heading]
    for table in result.tables:
        parts.append(f"**{table.title}**" if markdown else table.title)
        parts.append(table_of(HEADER, [figure_row(f) for f in table.figures]))
    met, missed = result.targets()
    if met or missed:
        parts.append(f"targets: {met} met, {missed} missed ({result.seconds:.0f} s)")
    for note in result.notes:
        parts.append(f"- {note}" if markdown else f"  * {note}")
    return "\n\n".join(parts) if markdown else "\n".join(parts)

"""The one exception extraction raises, with a short machine-readable reason."""

from __future__ import annotations

REASONS = frozenset(
    {
        "not_found",
        "not_a_file",
        "empty",
        "too_large",
        "unsupported_type",
        "wrong_extension",
        "corrupt",
        "encrypted",
        "outside_root",
        "decompression_bomb",
        "conversion_failed",
        "extraction_timeout",  # past its deadline: its extraction process was killed
        "extraction_crashed",  # its extraction process died converting it (killed, out of memory, segfault)
    }
)


class ExtractionError(Exception):
    """A document could not be extracted.

    ``reason`` is one of :data:`REASONS`; ``str(error)`` is a message for people.
    The error crosses a process boundary (it is raised in a pool worker), hence
    ``__reduce__``: the default pickling would call ``ExtractionError(message)``.
    """

    def __init__(self, reason: str, message: str) -> None:
        if reason not in REASONS:
            raise ValueError(f"unknown extraction error reason: {reason!r}")
        super().__init__(message)
        self.reason = reason
        self.message = message

    def __reduce__(self):
        return (type(self), (self.reason, self.message))

    def __repr__(self) -> str:
        return f"ExtractionError({self.reason!r}, {self.message!r})"

"""What docsight asks a vision model about a picture: the picture alone, no text of its document.

Context-free by design: a description depends on the picture's pixels, the model and this wording
only, so one picture has one description wherever it appears (the cache serves it to every document
that holds the picture) and no text of one document can reach another's output. The caption and
the text around the picture stay next to the description in the enriched markdown; the provider
never receives them. The README's "description cache" paragraph has the figures behind the choice.

Bump PROMPT_VERSION whenever the wording changes: cached descriptions are keyed by it (and by a
digest of the prompt itself), so a new prompt describes pictures again.
"""

from __future__ import annotations

# v1 carried the caption and nearby text; its cached descriptions may hold another document's text
PROMPT_VERSION = "v2"

SYSTEM_INSTRUCTION = (
    "You describe pictures taken from business documents for people who cannot see them "
    "and for search. Be factual and concise: say what the picture shows, read out any text, "
    "numbers, labels and trends that matter, and do not speculate beyond what is visible."
)

PROMPT = "Describe this picture from a document in two to four sentences."

TEMPERATURE = 0.2


def build_prompt() -> str:
    """The user prompt sent with every picture (the same for all: see the module's docstring)."""
    return PROMPT

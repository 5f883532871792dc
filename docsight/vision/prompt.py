"""What docsight asks Gemini about a picture (the seed's ``describe_image(image, context)``).

Bump PROMPT_VERSION whenever the wording changes: cached descriptions are
keyed by it, so a new prompt describes pictures again.
"""

from __future__ import annotations

PROMPT_VERSION = "v1"

SYSTEM_INSTRUCTION = (
    "You describe pictures taken from business documents for people who cannot see them "
    "and for search. Be factual and concise: say what the picture shows, read out any text, "
    "numbers, labels and trends that matter, and do not speculate beyond what is visible."
)

MAX_CAPTION_CHARS = 300
MAX_CONTEXT_CHARS = 1200


def build_prompt(caption: str = "", context: str = "", location: str | None = None) -> str:
    lines = ["Describe this picture from a document in two to four sentences."]
    if location:
        lines.append(f"Position: {location}")
    if caption:
        lines.append(f"Caption: {caption[:MAX_CAPTION_CHARS]}")
    if context:
        lines.append(f"Nearby text: {context[:MAX_CONTEXT_CHARS]}")
    return "\n".join(lines)

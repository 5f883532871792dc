"""Turns generateContent and OpenAI chat bodies into one GenerateCall.

The SDK mixes camelCase and snake_case keys and sends URL-safe base64, so
every key is looked up in both styles and both base64 alphabets decode.
"""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass, field
from typing import Any

from . import google_errors

SUPPORTED_IMAGE_TYPES = {"image/png", "image/jpeg", "image/jpg", "image/webp", "image/heic", "image/heif", "image/gif", "image/bmp"}
# reasoning_effort of the OpenAI endpoint, mapped to a Gemini thinking budget.
REASONING_EFFORT_BUDGETS = {"none": 0, "minimal": 0, "low": 1024, "medium": 8192, "high": 24576}


@dataclass
class InlineImage:
    data: bytes
    mime_type: str
    media_resolution: str | None = None  # per-part override


@dataclass
class GenerateCall:
    model: str
    images: list[InlineImage] = field(default_factory=list)
    texts: list[str] = field(default_factory=list)
    system_texts: list[str] = field(default_factory=list)
    max_output_tokens: int | None = None
    media_resolution: str | None = None
    thinking_budget: int | None = None

    @property
    def prompt(self) -> str:
        return "\n".join(self.texts)


def _get(obj: Any, camel: str, default: Any = None) -> Any:
    """obj[camel] or obj[snake_case(camel)]."""
    if not isinstance(obj, dict):
        return default
    if camel in obj:
        return obj[camel]
    snake = re.sub(r"(?<!^)([A-Z])", r"_\1", camel).lower()
    return obj.get(snake, default)


def decode_base64(value: Any, field_path: str) -> bytes:
    """Standard or URL-safe base64, padding optional."""
    if not isinstance(value, str):
        raise google_errors.bad_field(field_path, f"Invalid value at '{field_path}' (TYPE_BYTES), expected a string")
    text = re.sub(r"\s+", "", value).replace("-", "+").replace("_", "/")
    text += "=" * (-len(text) % 4)
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        shown = value if len(value) <= 40 else value[:40] + "..."
        raise google_errors.bad_field(
            field_path, f'Invalid value at \'{field_path}\' (TYPE_BYTES), Base64 decoding failed for "{shown}"'
        ) from None


def _int_or_none(value: Any, field_path: str) -> int | None:
    if value is None:
        return None
    try:
        return int(value)
    except (TypeError, ValueError):
        raise google_errors.bad_field(
            field_path, f"Invalid value at '{field_path}' (TYPE_INT32), \"{value}\""
        ) from None


def _check_image_type(mime_type: str) -> None:
    if mime_type.lower() not in SUPPORTED_IMAGE_TYPES:
        raise google_errors.invalid_argument(f"Unsupported MIME type: {mime_type}")


def _collect_parts(content: Any, index: int, into: GenerateCall, texts: list[str], allow_images: bool) -> None:
    parts = _get(content, "parts")
    if not isinstance(parts, list):
        raise google_errors.invalid_argument(f"* GenerateContentRequest.contents[{index}].parts: contents.parts must not be empty.\n")
    for part_index, part in enumerate(parts):
        text = _get(part, "text")
        if isinstance(text, str):
            texts.append(text)
        inline = _get(part, "inlineData")
        if inline is not None and allow_images:
            path = f"contents[{index}].parts[{part_index}].inline_data"
            mime_type = _get(inline, "mimeType") or ""
            _check_image_type(mime_type)
            data = decode_base64(_get(inline, "data"), path + ".data")
            part_resolution = _get(part, "mediaResolution")
            level = _get(part_resolution, "level") if isinstance(part_resolution, dict) else part_resolution
            into.images.append(InlineImage(data, mime_type, level))
        if _get(part, "fileData") is not None:
            raise google_errors.invalid_argument("File data is not supported by this local server; send inlineData.")


def parse_generate_content(model: str, body: Any) -> GenerateCall:
    if not isinstance(body, dict):
        raise google_errors.invalid_argument("Invalid JSON payload received. Expected an object.")
    call = GenerateCall(model=model)
    contents = _get(body, "contents")
    if isinstance(contents, dict):
        contents = [contents]
    if not contents:
        raise google_errors.invalid_argument("* GenerateContentRequest.contents: contents is not specified\n")
    for index, content in enumerate(contents):
        _collect_parts(content, index, call, call.texts, allow_images=True)
    system = _get(body, "systemInstruction")
    if system is not None:
        _collect_parts(system, 0, call, call.system_texts, allow_images=False)
    config = _get(body, "generationConfig") or {}
    call.max_output_tokens = _int_or_none(_get(config, "maxOutputTokens"), "generation_config.max_output_tokens")
    call.media_resolution = _get(config, "mediaResolution")
    thinking = _get(config, "thinkingConfig") or {}
    call.thinking_budget = _int_or_none(_get(thinking, "thinkingBudget"), "generation_config.thinking_config.thinking_budget")
    return call


def parse_count_tokens(model: str, body: Any) -> GenerateCall:
    """countTokens takes ``contents`` or a whole ``generateContentRequest``."""
    inner = _get(body, "generateContentRequest")
    if isinstance(inner, dict):
        return parse_generate_content(model, inner)
    return parse_generate_content(model, body)


_DATA_URL = re.compile(r"^data:(?P<mime>[\w.+-]+/[\w.+-]+)?(?:;[^,;]*)*?;base64,(?P<data>.*)$", re.DOTALL)


def parse_openai_chat(body: Any) -> GenerateCall:
    if not isinstance(body, dict) or not isinstance(body.get("model"), str):
        raise google_errors.invalid_argument("Invalid JSON payload: 'model' is required.")
    call = GenerateCall(model=body["model"].removeprefix("models/"))
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise google_errors.invalid_argument("Invalid JSON payload: 'messages' must be a non-empty list.")
    for m_index, message in enumerate(messages):
        if not isinstance(message, dict):
            raise google_errors.invalid_argument(f"Invalid message at index {m_index}.")
        target = call.system_texts if message.get("role") in ("system", "developer") else call.texts
        content = message.get("content")
        if isinstance(content, str):
            target.append(content)
            continue
        for p_index, part in enumerate(content or []):
            kind = part.get("type") if isinstance(part, dict) else None
            if kind == "text":
                target.append(str(part.get("text", "")))
            elif kind == "image_url":
                image_url = part.get("image_url")
                url = image_url.get("url") if isinstance(image_url, dict) else image_url
                match = _DATA_URL.match(url or "")
                if not match:
                    raise google_errors.invalid_argument("Only base64 data: URLs are supported for image_url.")
                mime_type = match.group("mime") or "image/jpeg"
                _check_image_type(mime_type)
                data = decode_base64(match.group("data"), f"messages[{m_index}].content[{p_index}].image_url.url")
                call.images.append(InlineImage(data, mime_type))
            else:
                raise google_errors.invalid_argument(f"Unsupported content part type: {kind!r}")
    limit = body.get("max_completion_tokens", body.get("max_tokens"))
    call.max_output_tokens = _int_or_none(limit, "max_tokens")
    effort = body.get("reasoning_effort")
    if effort is not None:
        if effort not in REASONING_EFFORT_BUDGETS:
            raise google_errors.invalid_argument(f"Invalid reasoning_effort: {effort!r}")
        call.thinking_budget = REASONING_EFFORT_BUDGETS[effort]
    return call

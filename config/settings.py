"""Every docsight setting: typed, documented here, read once from the environment.

Names follow the seed's environment variables where they exist (``GEMINI_*``,
``VISION_*``); the rest are ``DOCSIGHT_*``. A bad value stops the program with
a message that names the variable and what it accepts.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, ValidationError, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class SettingsError(ValueError):
    """A setting is missing or malformed; the message says which and why."""


def _env(name: str, default, description: str, **constraints):
    return Field(default, validation_alias=name, description=description, **constraints)


class Settings(BaseSettings):
    model_config = SettingsConfigDict(populate_by_name=True, extra="ignore", frozen=True)

    # --- Cluster -----------------------------------------------------------
    broker_url: str | None = _env(
        "DOCSIGHT_BROKER_URL", None,
        "Kafka bootstrap servers, e.g. kafka://host:9092. Unset: docsight starts the embedded Tansu broker.")
    embedded_broker: bool = _env(
        "DOCSIGHT_EMBEDDED_BROKER", False,
        "The broker is the embedded Tansu: apply its workarounds. Set by docsight when it starts Tansu itself.")
    app_id: str = _env("DOCSIGHT_APP_ID", "docsight", "Faust app id: consumer group and internal topic prefix.")
    role: Literal["all", "ingest", "vision"] = _env(
        "DOCSIGHT_ROLE", "all",
        "What this worker runs: ingest (validation, extraction, aggregation), vision (picture description) or "
        "all. Each role is its own consumer group, so vision workers scale apart from ingest workers.")
    processing_guarantee: Literal["at_least_once", "exactly_once"] = _env(
        "DOCSIGHT_PROCESSING_GUARANTEE", "at_least_once",
        "Faust processing guarantee. exactly_once needs Kafka transactions (not on the embedded broker).")
    document_partitions: int = _env(
        "DOCSIGHT_DOCUMENT_PARTITIONS", 6, "Partitions of document-received and the per-document topics.", ge=1)
    picture_partitions: int = _env(
        "DOCSIGHT_PICTURE_PARTITIONS", 6, "Partitions of the internal picture-request topic.", ge=1)

    # --- Worker ------------------------------------------------------------
    data_dir: Path = _env("DOCSIGHT_DATA_DIR", Path("var"), "Worker state: RocksDB tables, logs.")
    store_dir: Path | None = _env(
        "DOCSIGHT_STORE_DIR", None,
        "Content-addressed store for picture bytes and markdown, shared by all workers. Default: DATA_DIR/store.")
    document_root: Path = _env(
        "DOCSIGHT_DOCUMENT_ROOT", Path("var/documents"),
        "Documents are read only from below this folder; events name files relative to it.")
    log_format: Literal["text", "json"] = _env(
        "DOCSIGHT_LOG_FORMAT", "text", "Worker logs: text, or json (one object per line with document_id and stage).")
    web_host: str = _env("DOCSIGHT_WEB_HOST", "127.0.0.1", "Address the worker's web server binds to.")
    web_port: int = _env("DOCSIGHT_WEB_PORT", 6066, "Port of the worker's web views and /metrics.", ge=1, le=65535)
    extraction_processes: int = _env(
        "DOCSIGHT_EXTRACTION_PROCESSES", 2, "Processes converting documents with docling.", ge=1)
    max_document_mb: float = _env(
        "DOCSIGHT_MAX_DOCUMENT_MB", 50.0, "Documents larger than this fail with reason too_large.", gt=0)
    max_event_bytes: int = _env(
        "DOCSIGHT_MAX_EVENT_BYTES", 64 * 1024, "document-received events larger than this are rejected.", gt=0)

    # --- Gemini ------------------------------------------------------------
    gemini_api_key: str = _env("GEMINI_API_KEY", "", "Gemini API key. Never logged or exposed.", repr=False)
    gemini_model: str = _env("GEMINI_MODEL", "gemini-2.5-flash", "Model that describes pictures.")
    gemini_base_url: str | None = _env(
        "GOOGLE_GEMINI_BASE_URL", None, "Gemini endpoint. Unset: Google's. The demo points it at the local server.")

    # --- Vision: pacing and retries ------------------------------------------
    vision_max_concurrent_per_consumer: int = _env(
        "VISION_MAX_CONCURRENT_PER_CONSUMER", 5, "Gemini calls in flight per worker.", ge=1)
    vision_rate_limit_per_minute: float = _env(
        "VISION_RATE_LIMIT_PER_MINUTE", 30, "Gemini requests per minute for the whole cluster.", gt=0)
    vision_tokens_per_minute: float | None = _env(
        "VISION_TOKENS_PER_MINUTE", None, "Gemini input tokens per minute for the whole cluster. Unset: no limit.", gt=0)
    vision_requests_per_day: int | None = _env(
        "VISION_REQUESTS_PER_DAY", None, "Gemini requests per day (midnight Pacific) for the whole cluster.", gt=0)
    vision_budget_safety_factor: float = _env(
        "VISION_BUDGET_SAFETY_FACTOR", 0.95, "Fraction of the quota the cluster plans to use (headroom).", gt=0, le=1)
    vision_on_api_unavailable: Literal["fail_over", "wait"] = _env(
        "VISION_ON_API_UNAVAILABLE", "fail_over",
        "When the API stays down: fail_over completes pictures as 'description unavailable'; wait keeps retrying.")
    vision_fail_over_after_seconds: float = _env(
        "VISION_FAIL_OVER_AFTER_SECONDS", 120.0, "How long the API may be unavailable before fail-over.", gt=0)
    vision_breaker_failures: int = _env(
        "VISION_BREAKER_FAILURES", 5, "Consecutive transient failures that open the circuit breaker.", ge=1)
    vision_breaker_open_seconds: float = _env(
        "VISION_BREAKER_OPEN_SECONDS", 30.0, "How long the breaker stays open before a probe call.", gt=0)
    vision_enable_batch_processing: bool = _env(
        "VISION_ENABLE_BATCH_PROCESSING", False, "Take pictures in batches and describe each batch concurrently.")
    vision_batch_size: int = _env("VISION_BATCH_SIZE", 10, "Pictures per batch in batch processing.", ge=1)
    vision_max_concurrent_batches: int = _env(
        "VISION_MAX_CONCURRENT_BATCHES", 2, "Batches described at once per worker (inside the budget).", ge=1)
    vision_burst_size: int = _env(
        "VISION_BURST_SIZE", 1, "Calls the pacer lets through at once; keep small against windowed quotas.", ge=1)
    vision_request_timeout_seconds: float = _env(
        "VISION_REQUEST_TIMEOUT_SECONDS", 60.0, "Timeout of one Gemini call.", gt=0)
    vision_retry_deadline_seconds: float = _env(
        "VISION_RETRY_DEADLINE_SECONDS", 300.0, "How long one picture is retried before it is marked failed.", gt=0)
    vision_max_output_tokens: int = _env(
        "VISION_MAX_OUTPUT_TOKENS", 512, "Upper bound of a description's length in tokens.", ge=16)
    vision_thinking_budget: int = _env(
        "VISION_THINKING_BUDGET", 0, "Gemini thinking tokens per call (0 turns thinking off, the cheapest).", ge=0)
    vision_media_resolution: Literal["", "LOW", "MEDIUM", "HIGH"] = _env(
        "VISION_MEDIA_RESOLUTION", "", "Gemini mediaResolution for pictures (LOW caps a picture at 64 tokens).")

    # --- Vision: cost controls -------------------------------------------------
    vision_max_images_per_document: int = _env(
        "VISION_MAX_IMAGES_PER_DOCUMENT", 50, "Only the first N pictures of a document are described (0: no cap).",
        ge=0)
    vision_skip_if_too_many_images: int = _env(
        "VISION_SKIP_IF_TOO_MANY_IMAGES", 100, "Skip a document's vision step above this many pictures (0: never).",
        ge=0)
    vision_skip_large_images: bool = _env(
        "VISION_SKIP_LARGE_IMAGES", True, "Skip pictures larger than VISION_MAX_IMAGE_SIZE_MB.")
    vision_max_image_size_mb: float = _env("VISION_MAX_IMAGE_SIZE_MB", 5.0, "Size cap of a picture (MiB).", gt=0)
    vision_enabled_formats: str = _env(
        "VISION_ENABLED_FORMATS", "pdf,docx", "Document formats whose pictures are described (comma list).")
    vision_min_image_side_px: int = _env(
        "VISION_MIN_IMAGE_SIDE_PX", 32, "Pictures with both sides below this are decorative: skipped.", ge=0)
    vision_min_image_area_px: int = _env(
        "VISION_MIN_IMAGE_AREA_PX", 2500, "Pictures with fewer pixels than this are decorative: skipped.", ge=0)
    vision_max_image_side_px: int = _env(
        "VISION_MAX_IMAGE_SIDE_PX", 768, "Pictures are downscaled to this longest side before sending (one tile).",
        ge=1)
    vision_max_image_pixels: int = _env(
        "VISION_MAX_IMAGE_PIXELS", 50_000_000, "Pictures above this pixel count are refused (decompression bombs).",
        ge=1)
    vision_daily_budget_usd: float | None = _env(
        "VISION_DAILY_BUDGET_USD", None, "Stop calling Gemini when the day's spend reaches this. Unset: no cap.", gt=0)
    gemini_prices: str | None = _env(
        "GEMINI_PRICES", None, "Price table override: JSON object or file path (USD per 1M tokens per model).")

    @model_validator(mode="after")
    def _store_defaults_to_data_dir(self) -> "Settings":
        if self.store_dir is None:
            object.__setattr__(self, "store_dir", self.data_dir / "store")
        return self

    @property
    def consumer_group(self) -> str:
        """The Faust app id: one consumer group per role; topic names keep the plain app id."""
        return self.app_id if self.role == "all" else f"{self.app_id}-{self.role}"

    @model_validator(mode="after")
    def _exactly_once_needs_kafka(self) -> "Settings":
        if self.embedded_broker and self.processing_guarantee == "exactly_once":
            raise ValueError("DOCSIGHT_PROCESSING_GUARANTEE=exactly_once needs a real Kafka; "
                             "the embedded broker has no transactions")
        return self


def env_names() -> dict[str, str]:
    """Environment variable name -> field name, for docs and error messages."""
    return {field.validation_alias: name for name, field in Settings.model_fields.items()}


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process's settings, read from the environment once."""
    return load_settings()


def load_settings(**overrides) -> Settings:
    try:
        return Settings(**overrides)
    except ValidationError as error:
        raise SettingsError(_describe(error)) from None


def _describe(error: ValidationError) -> str:
    lines = ["invalid docsight settings:"]
    for problem in error.errors():
        name = ".".join(str(part) for part in problem["loc"])
        lines.append(f"  {name}={problem.get('input')!r}: {problem['msg']}")
    return "\n".join(lines)


def settings_table() -> str:
    """The README's configuration table, generated from the fields above."""
    rows = ["| Variable | Default | Meaning |", "| --- | --- | --- |"]
    for field in Settings.model_fields.values():
        default = "unset" if field.default is None else f"`{field.default}`"
        if field.default == "":
            default = "empty"
        rows.append(f"| `{field.validation_alias}` | {default} | {field.description} |")
    return "\n".join(rows)

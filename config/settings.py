"""Every docsight setting: typed, documented here, read once from the environment.

Names follow the seed's environment variables where they exist (``GEMINI_*``,
``VISION_*``); the rest are ``DOCSIGHT_*``. A bad value stops the program with
a message that names the variable and what it accepts.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, ValidationError, field_validator, model_validator
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
        "Faust processing guarantee. exactly_once commits each partition's output and offsets in a Kafka "
        "transaction: a real Kafka with transactions (the embedded broker has none).")
    document_partitions: int = _env(
        "DOCSIGHT_DOCUMENT_PARTITIONS", 6, "Partitions of document-received and the per-document topics.", ge=1)
    picture_partitions: int = _env(
        "DOCSIGHT_PICTURE_PARTITIONS", 6, "Partitions of the internal picture-request topic.", ge=1)

    # --- Real Kafka: client tuning and security (never applied to the embedded broker) ---
    kafka_linger_seconds: float = _env(
        "DOCSIGHT_KAFKA_LINGER_SECONDS", 0.0,
        "Real Kafka: how long the producer waits to fill a batch (Faust's default).", ge=0)
    kafka_max_batch_bytes: int = _env(
        "DOCSIGHT_KAFKA_MAX_BATCH_BYTES", 16384, "Real Kafka: largest producer batch per partition (Faust's default).",
        ge=1)
    kafka_session_timeout_seconds: float = _env(
        "DOCSIGHT_KAFKA_SESSION_TIMEOUT_SECONDS", 60.0,
        "Real Kafka: a worker silent this long leaves the consumer group (Faust's default).", gt=0)
    kafka_heartbeat_interval_seconds: float = _env(
        "DOCSIGHT_KAFKA_HEARTBEAT_INTERVAL_SECONDS", 3.0,
        "Real Kafka: consumer heartbeat interval, below the session timeout (Faust's default).", gt=0)
    kafka_rebalance_timeout_seconds: float = _env(
        "DOCSIGHT_KAFKA_REBALANCE_TIMEOUT_SECONDS", 60.0,
        "Real Kafka: how long a rebalance waits for every member to rejoin (Faust's default).", gt=0)
    kafka_request_timeout_seconds: float = _env(
        "DOCSIGHT_KAFKA_REQUEST_TIMEOUT_SECONDS", 90.0,
        "Real Kafka: timeout of one broker request, above the rebalance timeout (Faust's default).", gt=0)
    kafka_security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = _env(
        "DOCSIGHT_KAFKA_SECURITY_PROTOCOL", "PLAINTEXT",
        "Real Kafka: PLAINTEXT, SSL (TLS, optionally with a client certificate), SASL_PLAINTEXT or SASL_SSL.")
    kafka_sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] = _env(
        "DOCSIGHT_KAFKA_SASL_MECHANISM", "PLAIN", "Real Kafka: SASL mechanism for SASL_PLAINTEXT and SASL_SSL.")
    kafka_sasl_username: str = _env("DOCSIGHT_KAFKA_SASL_USERNAME", "", "Real Kafka: SASL user name.")
    kafka_sasl_password: str = _env(
        "DOCSIGHT_KAFKA_SASL_PASSWORD", "", "Real Kafka: SASL password. Never logged or exposed.", repr=False)
    kafka_ssl_cafile: Path | None = _env(
        "DOCSIGHT_KAFKA_SSL_CAFILE", None,
        "Real Kafka: CA bundle (PEM) that signed the brokers' certificates. Unset: the system's CAs.")
    kafka_ssl_certfile: Path | None = _env(
        "DOCSIGHT_KAFKA_SSL_CERTFILE", None, "Real Kafka: client certificate (PEM) for mutual TLS.")
    kafka_ssl_keyfile: Path | None = _env(
        "DOCSIGHT_KAFKA_SSL_KEYFILE", None, "Real Kafka: the client certificate's private key (PEM).")
    kafka_ssl_check_hostname: bool = _env(
        "DOCSIGHT_KAFKA_SSL_CHECK_HOSTNAME", True, "Real Kafka: check that a broker's certificate names its host.")

    # --- Worker ------------------------------------------------------------
    data_dir: Path = _env("DOCSIGHT_DATA_DIR", Path("var"), "Worker state: RocksDB tables, logs.")
    store_dir: Path | None = _env(
        "DOCSIGHT_STORE_DIR", None,
        "Content-addressed store for picture bytes and markdown, shared by all workers. Default: DATA_DIR/store.")
    store_url: str | None = _env(
        "DOCSIGHT_STORE_URL", None,
        "The store as a URL: file:///path, s3://bucket/prefix (AWS or any S3-compatible server) or "
        "gs://bucket/prefix. Unset: the folder DOCSIGHT_STORE_DIR.")
    store_endpoint: str | None = _env(
        "DOCSIGHT_STORE_ENDPOINT", None,
        "Endpoint of an S3-compatible server (MinIO, Ceph, R2, ...) or a GCS base URL; http:// allowed. "
        "Unset: the cloud's own.")
    store_region: str | None = _env(
        "DOCSIGHT_STORE_REGION", None, "S3 region. Unset: AWS_REGION from the environment, else us-east-1.")
    store_access_key_id: str = _env(
        "DOCSIGHT_STORE_ACCESS_KEY_ID", "",
        "S3 access key. Empty: the standard AWS chain (AWS_* variables, web identity, instance role); GCS uses "
        "GOOGLE_APPLICATION_CREDENTIALS or the workload's identity.")
    store_secret_access_key: str = _env(
        "DOCSIGHT_STORE_SECRET_ACCESS_KEY", "", "S3 secret key. Never logged or exposed.", repr=False)
    document_root: Path = _env(
        "DOCSIGHT_DOCUMENT_ROOT", Path("var/documents"),
        "Documents are read only from below this folder; events name files relative to it.")
    output_dir: Path | None = _env(
        "DOCSIGHT_OUTPUT_DIR", None,
        "Also write each outcome to this folder, as docsight submit --output does: NAME.md and NAME.json for an "
        "enriched document, NAME.failed.json for a failed one (NAME: the document id). The output topics are "
        "written either way. Unset: topics only.")
    log_format: Literal["text", "json"] = _env(
        "DOCSIGHT_LOG_FORMAT", "text", "Worker logs: text, or json (one object per line with document_id and stage).")
    web_host: str = _env("DOCSIGHT_WEB_HOST", "127.0.0.1", "Address the worker's web server binds to.")
    web_port: int = _env("DOCSIGHT_WEB_PORT", 6066, "Port of the worker's web views and /metrics.", ge=1, le=65535)
    web_advertised_url: str | None = _env(
        "DOCSIGHT_WEB_ADVERTISED_URL", None,
        "Where the other workers reach this one's web views (they route /documents/{id} to its owner there). "
        "Unset: http://DOCSIGHT_WEB_HOST:DOCSIGHT_WEB_PORT; set it when binding 0.0.0.0, e.g. in a container.")
    extraction_processes: int = _env(
        "DOCSIGHT_EXTRACTION_PROCESSES", 2, "Processes converting documents with docling.", ge=1)
    extraction_timeout_seconds: float = _env(
        "DOCSIGHT_EXTRACTION_TIMEOUT_SECONDS", 300.0,
        "Longest conversion of one document; past it its process is killed and the document fails with reason "
        "extraction_timeout.", gt=0)
    extraction_memory_mb: int = _env(
        "DOCSIGHT_EXTRACTION_MEMORY_MB", 4096,
        "Address space of each extraction process (RLIMIT_AS, MiB; a warm one takes about 500); a document that "
        "needs more fails with reason extraction_crashed.", ge=1024)
    max_document_mb: float = _env(
        "DOCSIGHT_MAX_DOCUMENT_MB", 50.0, "Documents larger than this fail with reason too_large.", gt=0)
    max_archive_mb: float = _env(
        "DOCSIGHT_MAX_ARCHIVE_MB", 1024.0,
        "All parts of a DOCX, PPTX or XLSX together, decompressed (MiB); above it the document fails with reason "
        "decompression_bomb.", gt=0)
    max_event_bytes: int = _env(
        "DOCSIGHT_MAX_EVENT_BYTES", 64 * 1024, "document-received events larger than this are rejected.", gt=0)
    libreoffice: str = _env(
        "DOCSIGHT_LIBREOFFICE", "soffice",
        "LibreOffice (a command on PATH or a path) that renders EMF/WMF/SVG pictures, charts and drawings to PNG. "
        "Not found: those pictures are listed as skipped with a reason.")
    remote_pictures: bool = _env(
        "DOCSIGHT_REMOTE_PICTURES", False,
        "Fetch pictures that documents link from the web (HTML img, DOCX/PPTX links) from the allowed hosts. "
        "Off: they are listed as skipped with reason remote_picture.")
    remote_picture_hosts: str = _env(
        "DOCSIGHT_REMOTE_PICTURE_HOSTS", "",
        "Hosts remote pictures may come from (comma list; .example.org for a domain and below, * for any). "
        "Loopback, private and link-local addresses are always refused.")
    remote_picture_max_mb: float = _env(
        "DOCSIGHT_REMOTE_PICTURE_MAX_MB", 5.0, "Largest remote picture fetched (MiB).", gt=0)
    remote_picture_timeout_seconds: float = _env(
        "DOCSIGHT_REMOTE_PICTURE_TIMEOUT_SECONDS", 10.0, "Time allowed to fetch one remote picture.", gt=0)
    pdf_pipeline: Literal["auto", "standard", "native"] = _env(
        "DOCSIGHT_PDF_PIPELINE", "auto",
        "PDF conversion: standard (docling's layout model), native (model-free: docsight finds figures and "
        "headings), auto (standard when its model files are in DOCSIGHT_PDF_ARTIFACTS_PATH, else native).")
    pdf_artifacts_path: Path | None = _env(
        "DOCSIGHT_PDF_ARTIFACTS_PATH", None,
        "Folder of docling's model files (docling-tools models download layout -o DIR) for the standard pipeline.")

    # --- Gemini ------------------------------------------------------------
    gemini_api_key: str = _env("GEMINI_API_KEY", "", "Gemini API key. Never logged or exposed.", repr=False)
    gemini_model: str = _env("GEMINI_MODEL", "gemini-2.5-flash", "Model that describes pictures.")
    gemini_base_url: str | None = _env(
        "GOOGLE_GEMINI_BASE_URL", None, "Gemini endpoint. Unset: Google's. The demo points it at the local server.")

    # --- Vision provider -----------------------------------------------------
    vision_provider: Literal["gemini", "openai"] = _env(
        "VISION_PROVIDER", "gemini",
        "Who describes pictures: gemini (google-genai, GEMINI_*) or openai (any OpenAI-compatible "
        "chat-completions server: vLLM, Ollama, LiteLLM; OPENAI_*).")
    openai_base_url: str | None = _env(
        "OPENAI_BASE_URL", None,
        "VISION_PROVIDER=openai: the API's base URL, the part before /chat/completions, e.g. "
        "http://localhost:11434/v1 (Ollama) or http://vllm:8000/v1.")
    openai_api_key: str = _env(
        "OPENAI_API_KEY", "", "VISION_PROVIDER=openai: bearer token (empty: none sent). Never logged or exposed.",
        repr=False)
    openai_model: str | None = _env(
        "OPENAI_MODEL", None,
        "VISION_PROVIDER=openai: the model the server serves; it needs a price (GEMINI_PRICES, e.g. "
        "{\"llava\": {\"input\": 0, \"output\": 0}} for a local model).")

    # --- Vision: pacing and retries ------------------------------------------
    vision_max_concurrent_per_consumer: int = _env(
        "VISION_MAX_CONCURRENT_PER_CONSUMER", 5, "Gemini calls in flight per worker.", ge=1)
    vision_rate_limit_per_minute: float = _env(
        "VISION_RATE_LIMIT_PER_MINUTE", 30, "Gemini requests per minute for the whole cluster.", gt=0)
    vision_tokens_per_minute: float | None = _env(
        "VISION_TOKENS_PER_MINUTE", None, "Gemini input tokens per minute for the whole cluster. Unset: no limit.", gt=0)
    vision_requests_per_day: int | None = _env(
        "VISION_REQUESTS_PER_DAY", None,
        "Gemini requests per day (midnight Pacific) for the whole cluster, counted in the budget ledger across "
        "restarts.", gt=0)
    vision_quota_window_seconds: float = _env(
        "VISION_QUOTA_WINDOW_SECONDS", 60.0,
        "The window the per-minute quotas are counted over (Gemini: 60). Shorter only against the local server, "
        "whose --window-seconds it must match.", gt=0)
    vision_budget_safety_factor: float = _env(
        "VISION_BUDGET_SAFETY_FACTOR", 1.0,
        "Fraction of each quota the cluster plans to use: headroom for other clients of the same Google Cloud "
        "project (the budget's own arithmetic never goes over).", gt=0, le=1)
    vision_on_api_unavailable: Literal["fail_over", "wait"] = _env(
        "VISION_ON_API_UNAVAILABLE", "fail_over",
        "When the API cannot be used: fail_over completes pictures as 'description unavailable' (after "
        "VISION_FAIL_OVER_AFTER_SECONDS for an outage, at once for an invalid key, an unknown model or a spent "
        "day); wait holds them until it can: docsight control resume, a restart, or midnight Pacific.")
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
        "VISION_DAILY_BUDGET_USD", None,
        "Stop calling Gemini when the cluster's spend today (midnight Pacific) would pass this, counted in the "
        "budget ledger across restarts. Unset: no cap.", gt=0)
    gemini_prices: str | None = _env(
        "GEMINI_PRICES", None, "Price table override: JSON object or file path (USD per 1M tokens per model).")

    @model_validator(mode="after")
    def _store_defaults_to_data_dir(self) -> "Settings":
        if self.store_dir is None:
            object.__setattr__(self, "store_dir", self.data_dir / "store")
        if self.store_url:
            from docsight.storage.location import parse_store_url

            scheme, folder, _ = parse_store_url(self.store_url)
            if scheme == "file":  # one folder, whichever of the two settings names it
                object.__setattr__(self, "store_dir", Path(folder))
        return self

    @field_validator("store_url")
    @classmethod
    def _store_url_is_supported(cls, url: str | None) -> str | None:
        from docsight.storage.location import parse_store_url

        if url:
            parse_store_url(url)  # ValueError says what is wrong and what is accepted
        return url or None

    @property
    def store_location(self):
        """Where the content store is (``docsight.storage.open_store`` opens it)."""
        from docsight.storage.location import StoreLocation

        return StoreLocation.from_settings(self)

    @model_validator(mode="after")
    def _kafka_options_agree(self) -> "Settings":
        if self.kafka_heartbeat_interval_seconds >= self.kafka_session_timeout_seconds:
            raise ValueError("DOCSIGHT_KAFKA_HEARTBEAT_INTERVAL_SECONDS must be below "
                             "DOCSIGHT_KAFKA_SESSION_TIMEOUT_SECONDS")
        if self.kafka_request_timeout_seconds <= self.kafka_rebalance_timeout_seconds:
            # a JoinGroup waits up to the rebalance timeout: a shorter request timeout loops on timeouts
            raise ValueError("DOCSIGHT_KAFKA_REQUEST_TIMEOUT_SECONDS must be above "
                             "DOCSIGHT_KAFKA_REBALANCE_TIMEOUT_SECONDS")
        sasl = self.kafka_security_protocol.startswith("SASL_")
        if sasl and not (self.kafka_sasl_username and self.kafka_sasl_password):
            raise ValueError(f"DOCSIGHT_KAFKA_SECURITY_PROTOCOL={self.kafka_security_protocol} needs "
                             "DOCSIGHT_KAFKA_SASL_USERNAME and DOCSIGHT_KAFKA_SASL_PASSWORD")
        tls_files = [name for name, value in (("DOCSIGHT_KAFKA_SSL_CAFILE", self.kafka_ssl_cafile),
                                              ("DOCSIGHT_KAFKA_SSL_CERTFILE", self.kafka_ssl_certfile),
                                              ("DOCSIGHT_KAFKA_SSL_KEYFILE", self.kafka_ssl_keyfile)) if value]
        if tls_files and not self.kafka_security_protocol.endswith("SSL"):
            raise ValueError(f"{', '.join(tls_files)} set, but DOCSIGHT_KAFKA_SECURITY_PROTOCOL="
                             f"{self.kafka_security_protocol} does not use TLS (SSL or SASL_SSL)")
        if self.kafka_ssl_keyfile and not self.kafka_ssl_certfile:
            raise ValueError("DOCSIGHT_KAFKA_SSL_KEYFILE needs DOCSIGHT_KAFKA_SSL_CERTFILE")
        if self.embedded_broker and self.kafka_security_protocol != "PLAINTEXT":
            raise ValueError("DOCSIGHT_KAFKA_SECURITY_PROTOCOL applies to a real Kafka; the embedded broker "
                             "speaks PLAINTEXT only")
        return self

    @model_validator(mode="after")
    def _openai_provider_is_complete(self) -> "Settings":
        if self.vision_provider == "openai" and not (self.openai_base_url and self.openai_model):
            raise ValueError("VISION_PROVIDER=openai needs OPENAI_BASE_URL and OPENAI_MODEL")
        return self

    @property
    def vision_model(self) -> str:
        """The model that describes pictures, whichever provider serves it."""
        return self.openai_model if self.vision_provider == "openai" else self.gemini_model

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

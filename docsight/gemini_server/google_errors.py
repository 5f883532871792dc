"""Error bodies shaped like the real Gemini API's (google.rpc.Status JSON)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .quota import QuotaViolation, quota_names, retry_delay_seconds

INVALID_IMAGE_MESSAGE = (
    "Unable to process input image. Please retry or report in "
    "https://developers.generativeai.google/guide/troubleshooting"
)
INTERNAL_MESSAGE = (
    "An internal error has occurred. Please retry or report in "
    "https://developers.generativeai.google/guide/troubleshooting"
)
OVERLOADED_MESSAGE = "The model is overloaded. Please try again later."
API_KEY_INVALID_MESSAGE = "API key not valid. Please pass a valid API key."
UNREGISTERED_CALLER_MESSAGE = (
    "Method doesn't allow unregistered callers (callers without established identity). "
    "Please use API Key or other form of API consumer identity to call this API."
)
RATE_LIMITS_URL = "https://ai.google.dev/gemini-api/docs/rate-limits"
MAX_REQUEST_BYTES = 20 * 1024 * 1024  # inline-data request limit

_TYPE = "type.googleapis.com/google.rpc."


@dataclass
class ApiError(Exception):
    """An error answer; ``body()`` renders the real JSON shape."""

    code: int
    status: str
    message: str
    details: list[dict[str, Any]] = field(default_factory=list)

    def body(self) -> dict[str, Any]:
        error: dict[str, Any] = {"code": self.code, "message": self.message, "status": self.status}
        if self.details:
            error["details"] = self.details
        return {"error": error}

    def __str__(self) -> str:
        return f"{self.code} {self.status}: {self.message}"


def invalid_argument(message: str, details: list[dict[str, Any]] | None = None) -> ApiError:
    return ApiError(400, "INVALID_ARGUMENT", message, details or [])


def invalid_image() -> ApiError:
    return invalid_argument(INVALID_IMAGE_MESSAGE)


def bad_field(field_path: str, description: str) -> ApiError:
    return invalid_argument(
        description,
        [{"@type": _TYPE + "BadRequest", "fieldViolations": [{"field": field_path, "description": description}]}],
    )


def api_key_invalid() -> ApiError:
    return invalid_argument(
        API_KEY_INVALID_MESSAGE,
        [
            {
                "@type": _TYPE + "ErrorInfo",
                "reason": "API_KEY_INVALID",
                "domain": "googleapis.com",
                "metadata": {"service": "generativelanguage.googleapis.com"},
            },
            {"@type": _TYPE + "LocalizedMessage", "locale": "en-US", "message": API_KEY_INVALID_MESSAGE},
        ],
    )


def missing_api_key() -> ApiError:
    # What the real API answers when no key is sent at all.
    return ApiError(403, "PERMISSION_DENIED", UNREGISTERED_CALLER_MESSAGE)


def internal() -> ApiError:
    return ApiError(500, "INTERNAL", INTERNAL_MESSAGE)


def overloaded() -> ApiError:
    return ApiError(503, "UNAVAILABLE", OVERLOADED_MESSAGE)


def model_not_found(model: str, method: str) -> ApiError:
    return ApiError(
        404,
        "NOT_FOUND",
        f"models/{model} is not found for API version v1beta, or is not supported for {method}. "
        "Call ListModels to see the list of available models and their supported methods.",
    )


def resource_exhausted(
    violations: list[QuotaViolation], model: str, tier: str = "free", retry_delay: float | None = None
) -> ApiError:
    """429 with QuotaFailure, Help and RetryInfo, as the real API sends it.

    ``retry_delay`` overrides the delay computed from the violations; a
    negative value leaves RetryInfo out (some real 429s have none).
    """
    wait = max(v.wait_seconds for v in violations) if retry_delay is None else retry_delay
    lines = []
    quota_violations = []
    for violation in violations:
        metric, quota_id = quota_names(violation.kind, tier)
        lines.append(f"* Quota exceeded for metric: {metric}, limit: {violation.limit}, model: {model}")
        quota_violations.append(
            {
                "quotaMetric": metric,
                "quotaId": quota_id,
                "quotaDimensions": {"location": "global", "model": model},
                "quotaValue": str(violation.limit),
            }
        )
    message = (
        "You exceeded your current quota, please check your plan and billing details. "
        f"For more information on this error, head to: {RATE_LIMITS_URL}. "
        "To monitor your current usage, head to: https://ai.dev/usage?tab=rate-limit. \n"
        + "\n".join(lines)
    )
    details: list[dict[str, Any]] = [
        {"@type": _TYPE + "QuotaFailure", "violations": quota_violations},
        {"@type": _TYPE + "Help", "links": [{"description": "Learn more about Gemini API quotas", "url": RATE_LIMITS_URL}]},
    ]
    if wait >= 0:
        message += f"\nPlease retry in {max(wait, 0.001):.6f}s."
        details.append({"@type": _TYPE + "RetryInfo", "retryDelay": f"{retry_delay_seconds(wait)}s"})
    return ApiError(429, "RESOURCE_EXHAUSTED", message, details)

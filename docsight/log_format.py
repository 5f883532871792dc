"""Structured logs on request (``DOCSIGHT_LOG_FORMAT=json``): one JSON object per line.

Stage lines carry ``document_id`` and ``stage`` as fields (``extra=``), so a
log pipeline can follow a document without parsing messages. The API key is
never logged; as a second guard, the formatter masks it if a message holds it.
"""

from __future__ import annotations

import json
import logging
from datetime import datetime, timezone

FIELDS = ("document_id", "stage", "reason", "pictures", "format")


class JsonFormatter(logging.Formatter):
    def __init__(self, secret: str = "") -> None:
        super().__init__()
        self._secret = secret

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": datetime.fromtimestamp(record.created, timezone.utc).isoformat(),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        entry.update({field: getattr(record, field) for field in FIELDS if hasattr(record, field)})
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        line = json.dumps(entry, default=str)
        if self._secret and len(self._secret) >= 8:
            line = line.replace(self._secret, "***")
        return line


def json_logging_config(level: str, secret: str = "") -> dict:
    """A logging.dictConfig for mode/Faust's Worker(logging_config=...)."""
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"json": {"()": JsonFormatter, "secret": secret}},
        "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "json"}},
        "root": {"level": level.upper(), "handlers": ["console"]},
    }

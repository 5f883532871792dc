"""Run one docsight worker: the Faust app with every agent, table and view."""

from __future__ import annotations

import os

from docsight.broker import EmbeddedBroker


def run_worker(loglevel: str = "info") -> None:
    """Start a worker; with no broker configured, start the embedded one first.

    Settings are read at import of :mod:`docsight.app`, so the broker URL is
    put into the environment before that import.
    """
    broker = None
    if not os.environ.get("DOCSIGHT_BROKER_URL"):
        broker = EmbeddedBroker().start()
        os.environ["DOCSIGHT_BROKER_URL"] = broker.url
        os.environ["DOCSIGHT_EMBEDDED_BROKER"] = "true"
    try:
        from faust.worker import Worker

        import docsight.agents  # noqa: F401  (registers agents, tables, views)
        from docsight.app import app, settings
        from docsight.log_format import json_logging_config

        logging_config = (json_logging_config(loglevel, settings.gemini_api_key)
                          if settings.log_format == "json" else None)
        Worker(app, loglevel=loglevel, logging_config=logging_config).execute_from_commandline()
    finally:
        if broker:
            broker.stop()

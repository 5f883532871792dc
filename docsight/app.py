"""The Faust app: one per worker process, configured from the settings read at import.

Agents, tables and web views register themselves on ``app`` when
``docsight.agents`` is imported; ``docsight worker`` does that and runs it.
The broker URL must be known before import: the CLI starts the embedded
broker first when none is configured.
"""

from __future__ import annotations

import faust

from docsight.broker import KafkaClientOptions, faust_broker_options, faust_transport
from docsight.config import get_settings

settings = get_settings()

app = faust.App(
    settings.consumer_group,
    broker=settings.broker_url or "kafka://localhost:9092",
    store="rocksdb://",
    datadir=str(settings.data_dir / "faust"),
    processing_guarantee=settings.processing_guarantee,
    topic_partitions=settings.document_partitions,
    web_bind=settings.web_host,
    web_port=settings.web_port,
    canonical_url=settings.web_advertised_url or f"http://{settings.web_host}:{settings.web_port}",
    origin="docsight",
    # the embedded Tansu's workarounds, or a real Kafka's DOCSIGHT_KAFKA_* options: never both
    **faust_broker_options(embedded=settings.embedded_broker, kafka=KafkaClientOptions.from_settings(settings)),
)
# Faust's transport, except that a partition with no committed offset rewinds to its start (see the module)
faust_transport.install(app)

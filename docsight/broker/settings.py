"""Faust and Kafka client settings that depend on which broker docsight talks to.

Two sets that never mix:
- the embedded Tansu's workarounds (``EMBEDDED_WORKAROUNDS``), for the demo and the tests;
- a real Kafka's own batching, timeouts and security (``KafkaClientOptions``, from the
  ``DOCSIGHT_KAFKA_*`` settings), whose defaults are Faust's.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass, field
from pathlib import Path

# Tansu needs three workarounds, measured in shared/notes/embedded-broker.md;
# none of them may be applied to a real Kafka:
# - JoinGroup waits the whole rebalance timeout, so keep it short (and the
#   request timeout above it, or joining loops on RequestTimedOutError);
# - ListOffsets(latest) is wrong for multi-record batches, which breaks table
#   recovery: one record per batch keeps end offsets right;
# - no transactions, so at-least-once only (enforced by the settings).
EMBEDDED_WORKAROUNDS = {
    "broker_rebalance_timeout": 5.0,
    "broker_session_timeout": 10.0,
    "broker_heartbeat_interval": 1.0,
    "broker_request_timeout": 30.0,
    "producer_max_batch_size": 1,
}


@dataclass(frozen=True)
class KafkaClientOptions:
    """A real Kafka's client options; the defaults are Faust's own."""

    linger_seconds: float = 0.0
    max_batch_bytes: int = 16384
    session_timeout_seconds: float = 60.0
    heartbeat_interval_seconds: float = 3.0
    rebalance_timeout_seconds: float = 60.0
    request_timeout_seconds: float = 90.0
    security_protocol: str = "PLAINTEXT"  # PLAINTEXT | SSL | SASL_PLAINTEXT | SASL_SSL
    sasl_mechanism: str = "PLAIN"         # PLAIN | SCRAM-SHA-256 | SCRAM-SHA-512
    sasl_username: str = ""
    sasl_password: str = field(default="", repr=False)
    ssl_cafile: Path | None = None
    ssl_certfile: Path | None = None
    ssl_keyfile: Path | None = None
    ssl_check_hostname: bool = True

    @classmethod
    def from_settings(cls, settings) -> "KafkaClientOptions":
        return cls(
            linger_seconds=settings.kafka_linger_seconds,
            max_batch_bytes=settings.kafka_max_batch_bytes,
            session_timeout_seconds=settings.kafka_session_timeout_seconds,
            heartbeat_interval_seconds=settings.kafka_heartbeat_interval_seconds,
            rebalance_timeout_seconds=settings.kafka_rebalance_timeout_seconds,
            request_timeout_seconds=settings.kafka_request_timeout_seconds,
            security_protocol=settings.kafka_security_protocol,
            sasl_mechanism=settings.kafka_sasl_mechanism,
            sasl_username=settings.kafka_sasl_username,
            sasl_password=settings.kafka_sasl_password,
            ssl_cafile=settings.kafka_ssl_cafile,
            ssl_certfile=settings.kafka_ssl_certfile,
            ssl_keyfile=settings.kafka_ssl_keyfile,
            ssl_check_hostname=settings.kafka_ssl_check_hostname,
        )

    @property
    def uses_tls(self) -> bool:
        return self.security_protocol in ("SSL", "SASL_SSL")

    @property
    def uses_sasl(self) -> bool:
        return self.security_protocol in ("SASL_PLAINTEXT", "SASL_SSL")


def kafka_ssl_context(kafka: KafkaClientOptions) -> ssl.SSLContext | None:
    """The TLS context for SSL and SASL_SSL: the brokers' CA (or the system's), and a client certificate."""
    if not kafka.uses_tls:
        return None
    context = ssl.create_default_context(
        ssl.Purpose.SERVER_AUTH, cafile=str(kafka.ssl_cafile) if kafka.ssl_cafile else None)
    context.check_hostname = kafka.ssl_check_hostname
    if kafka.ssl_certfile:
        context.load_cert_chain(str(kafka.ssl_certfile), str(kafka.ssl_keyfile) if kafka.ssl_keyfile else None)
    return context


def faust_credentials(kafka: KafkaClientOptions):
    """Faust's ``broker_credentials`` for the security protocol, or None for PLAINTEXT."""
    import faust

    context = kafka_ssl_context(kafka)
    if kafka.uses_sasl:
        # Faust picks SASL_SSL when a context is given, SASL_PLAINTEXT when not
        return faust.SASLCredentials(username=kafka.sasl_username, password=kafka.sasl_password,
                                     mechanism=kafka.sasl_mechanism, ssl_context=context)
    if context is not None:
        return faust.SSLCredentials(context)
    return None


def aiokafka_security_options(kafka: KafkaClientOptions) -> dict:
    """The same security as keyword arguments of aiokafka's own clients (producers, consumers, admin)."""
    options: dict = {"security_protocol": kafka.security_protocol}
    context = kafka_ssl_context(kafka)
    if context is not None:
        options["ssl_context"] = context
    if kafka.uses_sasl:
        options.update(sasl_mechanism=kafka.sasl_mechanism, sasl_plain_username=kafka.sasl_username,
                       sasl_plain_password=kafka.sasl_password)
    return options


def faust_broker_options(embedded: bool, kafka: KafkaClientOptions | None = None) -> dict:
    """Options for ``faust.App``: the embedded Tansu's workarounds, or a real Kafka's ``kafka`` options.

    ``kafka`` is ignored for the embedded broker; without it a real Kafka gets Faust's defaults.
    """
    if embedded:
        return dict(EMBEDDED_WORKAROUNDS)
    kafka = kafka or KafkaClientOptions()
    options = {
        "producer_linger": kafka.linger_seconds,
        "producer_max_batch_size": kafka.max_batch_bytes,
        "broker_session_timeout": kafka.session_timeout_seconds,
        "broker_heartbeat_interval": kafka.heartbeat_interval_seconds,
        "broker_rebalance_timeout": kafka.rebalance_timeout_seconds,
        "broker_request_timeout": kafka.request_timeout_seconds,
    }
    credentials = faust_credentials(kafka)
    if credentials is not None:
        options["broker_credentials"] = credentials
    return options


def kafka_security() -> dict:
    """aiokafka security arguments for docsight's own clients (ledger, control, CLI, audit), from the settings.

    PLAINTEXT unless ``DOCSIGHT_KAFKA_SECURITY_PROTOCOL`` says otherwise; the same as the Faust app's.
    """
    from docsight.config import get_settings

    return aiokafka_security_options(KafkaClientOptions.from_settings(get_settings()))


def bootstrap_servers(broker_url: str) -> str:
    """``kafka://host:port;kafka://host2:port`` → ``host:port,host2:port`` (what aiokafka clients take)."""
    hosts = [part.strip().removeprefix("kafka://") for part in broker_url.replace(";", ",").split(",")]
    return ",".join(host for host in hosts if host)

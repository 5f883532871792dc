"""The Kafka broker: the embedded Tansu for demos and tests, and the client settings each broker needs."""

from .embedded import EmbeddedBroker, free_port
from .settings import faust_broker_options

__all__ = ["EmbeddedBroker", "faust_broker_options", "free_port"]

"""The Kafka broker: the embedded Tansu for demos and tests, and the client settings each broker needs."""

from .embedded import EmbeddedBroker, free_port
from .settings import (KafkaClientOptions, aiokafka_security_options, bootstrap_servers, faust_broker_options,
                       kafka_security)

__all__ = ["EmbeddedBroker", "KafkaClientOptions", "aiokafka_security_options", "bootstrap_servers",
           "faust_broker_options", "free_port", "kafka_security"]

"""Real Kafka settings stay apart from the embedded broker's workarounds; SASL and TLS map to Faust and aiokafka.

Faust itself is the oracle: its own defaults (a bare ``faust.App``) and its own translation of
``broker_credentials`` into aiokafka arguments. The TLS context is checked in a real handshake.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import ssl
import subprocess
import sys
import threading
import time
from pathlib import Path

import faust
import pytest
from faust.transport.drivers.aiokafka import credentials_to_aiokafka_auth

from docsight.broker.settings import (EMBEDDED_WORKAROUNDS, KafkaClientOptions, aiokafka_security_options,
                                      faust_broker_options, kafka_ssl_context)
from docsight.config import SettingsError, load_settings

TUNED = ("producer_linger", "producer_max_batch_size", "broker_session_timeout", "broker_heartbeat_interval",
         "broker_rebalance_timeout", "broker_request_timeout")


def conf_of(**options) -> dict:
    app = faust.App("kafka-settings-test", broker="kafka://kafka-1:9092", **options)
    return {name: getattr(app.conf, name) for name in TUNED}


def test_a_real_kafka_gets_fausts_own_defaults_and_no_workaround():
    options = faust_broker_options(embedded=False, kafka=KafkaClientOptions())
    assert conf_of(**options) == conf_of()  # a bare faust.App: Faust's defaults
    for name, workaround in EMBEDDED_WORKAROUNDS.items():
        assert options.get(name) != workaround, name
    assert "broker_credentials" not in options


def test_the_embedded_broker_gets_its_workarounds_and_nothing_of_the_kafka_settings():
    kafka = KafkaClientOptions(linger_seconds=0.5, max_batch_bytes=65536, rebalance_timeout_seconds=120,
                               request_timeout_seconds=150, security_protocol="SASL_PLAINTEXT",
                               sasl_username="u", sasl_password="p")
    assert faust_broker_options(embedded=True, kafka=kafka) == EMBEDDED_WORKAROUNDS
    assert conf_of(**faust_broker_options(embedded=True))["producer_max_batch_size"] == 1


def test_kafka_batching_and_timeouts_reach_the_faust_app():
    kafka = KafkaClientOptions(linger_seconds=0.05, max_batch_bytes=262144, session_timeout_seconds=45,
                               heartbeat_interval_seconds=5, rebalance_timeout_seconds=120,
                               request_timeout_seconds=150)
    assert conf_of(**faust_broker_options(embedded=False, kafka=kafka)) == {
        "producer_linger": 0.05, "producer_max_batch_size": 262144, "broker_session_timeout": 45,
        "broker_heartbeat_interval": 5, "broker_rebalance_timeout": 120, "broker_request_timeout": 150}


def app_conf_in_a_process(env: dict[str, str]) -> dict:
    """docsight.app as ``docsight worker`` builds it, from these environment variables only."""
    clean = {key: value for key, value in os.environ.items()
             if not key.startswith(("DOCSIGHT_", "VISION_", "GEMINI_"))}
    script = ("import json; from docsight.app import app; c = app.conf; "
              f"print(json.dumps({{n: getattr(c, n) for n in {list(TUNED)!r}}} | "
              "{'credentials': type(c.broker_credentials).__name__, 'guarantee': c.processing_guarantee.value}))")
    done = subprocess.run([sys.executable, "-c", script], env=clean | env, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_the_worker_app_follows_the_broker_it_is_given(tmp_path):
    real = app_conf_in_a_process({"DOCSIGHT_BROKER_URL": "kafka://kafka-1:9092", "DOCSIGHT_DATA_DIR": str(tmp_path),
                                  "DOCSIGHT_PROCESSING_GUARANTEE": "exactly_once",
                                  "DOCSIGHT_KAFKA_LINGER_SECONDS": "0.02",
                                  "DOCSIGHT_KAFKA_SECURITY_PROTOCOL": "SASL_PLAINTEXT",
                                  "DOCSIGHT_KAFKA_SASL_MECHANISM": "SCRAM-SHA-256",
                                  "DOCSIGHT_KAFKA_SASL_USERNAME": "docsight",
                                  "DOCSIGHT_KAFKA_SASL_PASSWORD": "secret"})
    defaults = conf_of()
    assert real["producer_linger"] == 0.02
    assert {name: real[name] for name in TUNED if name != "producer_linger"} == {
        name: defaults[name] for name in TUNED if name != "producer_linger"}
    assert real["credentials"] == "SASLCredentials" and real["guarantee"] == "exactly_once"

    embedded = app_conf_in_a_process({"DOCSIGHT_BROKER_URL": "kafka://127.0.0.1:9092",
                                      "DOCSIGHT_EMBEDDED_BROKER": "true", "DOCSIGHT_DATA_DIR": str(tmp_path),
                                      "DOCSIGHT_KAFKA_LINGER_SECONDS": "0.02"})
    assert {name: embedded[name] for name in EMBEDDED_WORKAROUNDS} == EMBEDDED_WORKAROUNDS
    assert embedded["producer_linger"] == defaults["producer_linger"]  # the Kafka setting stayed out
    assert embedded["credentials"] == "NoneType"


# ---- SASL and TLS ----------------------------------------------------------------------------------------

def test_sasl_plaintext_maps_to_fausts_credentials_and_to_aiokafka():
    kafka = KafkaClientOptions(security_protocol="SASL_PLAINTEXT", sasl_mechanism="SCRAM-SHA-512",
                               sasl_username="docsight", sasl_password="secret")
    credentials = faust_broker_options(embedded=False, kafka=kafka)["broker_credentials"]
    assert isinstance(credentials, faust.SASLCredentials)
    through_faust = credentials_to_aiokafka_auth(credentials)
    assert through_faust == {"security_protocol": "SASL_PLAINTEXT", "sasl_mechanism": "SCRAM-SHA-512",
                             "sasl_plain_username": "docsight", "sasl_plain_password": "secret",
                             "ssl_context": None}
    assert aiokafka_security_options(kafka) == {k: v for k, v in through_faust.items() if k != "ssl_context"}


def test_sasl_ssl_and_ssl_carry_a_verifying_tls_context(certificates):
    kafka = KafkaClientOptions(security_protocol="SASL_SSL", sasl_username="u", sasl_password="p",
                               ssl_cafile=certificates / "ca.pem")
    through_faust = credentials_to_aiokafka_auth(faust_broker_options(False, kafka)["broker_credentials"])
    assert through_faust["security_protocol"] == "SASL_SSL" and through_faust["sasl_mechanism"] == "PLAIN"
    context = through_faust["ssl_context"]
    assert context.verify_mode == ssl.CERT_REQUIRED and context.check_hostname

    mutual = KafkaClientOptions(security_protocol="SSL", ssl_cafile=certificates / "ca.pem",
                                ssl_certfile=certificates / "client.pem", ssl_keyfile=certificates / "client.key")
    credentials = faust_broker_options(False, mutual)["broker_credentials"]
    assert isinstance(credentials, faust.SSLCredentials)
    assert credentials_to_aiokafka_auth(credentials)["security_protocol"] == "SSL"
    assert aiokafka_security_options(mutual)["security_protocol"] == "SSL"
    assert plaintext_options() == {"security_protocol": "PLAINTEXT"}


def plaintext_options() -> dict:
    return aiokafka_security_options(KafkaClientOptions())


def test_the_tls_context_verifies_a_real_broker_certificate_and_presents_the_client_one(certificates):
    """A TLS server that requires a client certificate: the context from the settings gets through it."""
    mutual = KafkaClientOptions(security_protocol="SSL", ssl_cafile=certificates / "ca.pem",
                                ssl_certfile=certificates / "client.pem", ssl_keyfile=certificates / "client.key")
    with tls_server(certificates) as port:
        assert handshake(kafka_ssl_context(mutual), port, "localhost") == "docsight-client"
        # no client certificate: the server refuses the handshake
        one_way = KafkaClientOptions(security_protocol="SSL", ssl_cafile=certificates / "ca.pem")
        with pytest.raises((ssl.SSLError, ConnectionError, OSError)):
            handshake(kafka_ssl_context(one_way), port, "localhost", expect_reply=True)
        # a name the broker's certificate does not carry
        with pytest.raises(ssl.SSLCertVerificationError):
            handshake(kafka_ssl_context(mutual), port, "kafka.elsewhere")
        # the system's CAs do not know our CA
        system = KafkaClientOptions(security_protocol="SSL")
        with pytest.raises(ssl.SSLCertVerificationError):
            handshake(kafka_ssl_context(system), port, "localhost")


def test_docsights_own_kafka_clients_use_the_same_tls_and_client_certificate(certificates, tmp_path):
    """``docsight audit`` (aiokafka directly, not Faust) opens its broker connection with the settings' TLS."""
    server = tls_server(certificates)
    with server as port:
        env = {key: value for key, value in os.environ.items() if not key.startswith("DOCSIGHT_")} | {
            "DOCSIGHT_DATA_DIR": str(tmp_path),
            "DOCSIGHT_KAFKA_SECURITY_PROTOCOL": "SSL",
            "DOCSIGHT_KAFKA_SSL_CAFILE": str(certificates / "ca.pem"),
            "DOCSIGHT_KAFKA_SSL_CERTFILE": str(certificates / "client.pem"),
            "DOCSIGHT_KAFKA_SSL_KEYFILE": str(certificates / "client.key")}
        process = subprocess.Popen([sys.executable, "-m", "docsight", "audit", "--broker-url",
                                    f"kafka://localhost:{port}"], env=env, stdout=subprocess.DEVNULL,
                                   stderr=subprocess.DEVNULL)
        try:
            deadline = time.monotonic() + 60
            while not server.clients and time.monotonic() < deadline and process.poll() is None:
                time.sleep(0.2)
        finally:
            process.kill()
            process.wait()
    # the TLS handshake went through with the client certificate (what follows is no Kafka: it fails)
    assert "docsight-client" in server.clients


def handshake(context: ssl.SSLContext, port: int, server_hostname: str, expect_reply: bool = True) -> str:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as raw:
        with context.wrap_socket(raw, server_hostname=server_hostname) as tls:
            tls.sendall(b"hello")
            reply = tls.recv(100)
            if expect_reply and not reply:
                raise ConnectionError("the server closed the connection")
            return reply.decode()


class tls_server:  # noqa: N801 - used as a context manager
    """Accepts TLS connections on loopback, requires a client certificate, answers with its common name."""

    def __init__(self, certificates: Path) -> None:
        self.context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cafile=str(certificates / "ca.pem"))
        self.context.load_cert_chain(str(certificates / "server.pem"), str(certificates / "server.key"))
        self.context.verify_mode = ssl.CERT_REQUIRED
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.listener.settimeout(10)
        self.stopping = threading.Event()
        self.clients: list[str] = []  # the common name of every client certificate that got through
        self.thread = threading.Thread(target=self.serve, daemon=True)

    def serve(self) -> None:
        while not self.stopping.is_set():
            try:
                raw, _ = self.listener.accept()
            except OSError:
                return
            try:
                with self.context.wrap_socket(raw, server_side=True) as tls:
                    subject = dict(item[0] for item in tls.getpeercert()["subject"])
                    self.clients.append(subject["commonName"])
                    tls.recv(100)
                    tls.sendall(subject["commonName"].encode())
            except (ssl.SSLError, OSError):
                raw.close()

    def __enter__(self) -> int:
        self.thread.start()
        return self.listener.getsockname()[1]

    @property
    def port(self) -> int:
        return self.listener.getsockname()[1]

    def __exit__(self, *exc) -> None:
        self.stopping.set()
        self.listener.close()
        self.thread.join(timeout=5)


@pytest.fixture(scope="module")
def certificates(tmp_path_factory) -> Path:
    """A CA, a broker certificate for localhost and a client certificate, made with the openssl command."""
    if shutil.which("openssl") is None:
        pytest.skip("the openssl command is not installed (Debian: openssl)")
    folder = tmp_path_factory.mktemp("tls")

    def openssl(*args: str) -> None:
        subprocess.run(["openssl", *args], cwd=folder, check=True, capture_output=True, timeout=60)

    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=docsight-test-ca",
            "-keyout", "ca.key", "-out", "ca.pem")
    for name, extension in (("server", "subjectAltName=DNS:localhost,IP:127.0.0.1"),
                            ("client", "extendedKeyUsage=clientAuth")):
        openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", f"/CN=docsight-{name}",
                "-keyout", f"{name}.key", "-out", f"{name}.csr")
        (folder / f"{name}.ext").write_text(extension + "\n")
        openssl("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
                "-days", "2", "-extfile", f"{name}.ext", "-out", f"{name}.pem")
    return folder


# ---- what the settings refuse ----------------------------------------------------------------------------

@pytest.mark.parametrize("overrides, message", [
    ({"kafka_security_protocol": "SASL_SSL"}, "DOCSIGHT_KAFKA_SASL_USERNAME"),
    ({"kafka_ssl_cafile": "/etc/ssl/ca.pem"}, "does not use TLS"),
    ({"kafka_security_protocol": "SSL", "kafka_ssl_keyfile": "/k.pem"}, "needs DOCSIGHT_KAFKA_SSL_CERTFILE"),
    ({"kafka_heartbeat_interval_seconds": 60}, "HEARTBEAT_INTERVAL_SECONDS must be below"),
    ({"kafka_request_timeout_seconds": 30}, "REQUEST_TIMEOUT_SECONDS must be above"),
    ({"embedded_broker": True, "kafka_security_protocol": "SSL"}, "embedded broker"),
    ({"embedded_broker": True, "processing_guarantee": "exactly_once"}, "no transactions"),
])
def test_settings_that_cannot_work_stop_with_the_variable_named(overrides, message):
    with pytest.raises(SettingsError, match=message):
        load_settings(**overrides)


def test_the_sasl_password_is_never_shown():
    settings = load_settings(kafka_security_protocol="SASL_SSL", kafka_sasl_username="docsight",
                             kafka_sasl_password="hunter2-secret")
    options = KafkaClientOptions.from_settings(settings)
    assert options.sasl_password == "hunter2-secret"
    assert "hunter2-secret" not in repr(settings) + repr(options)

"""TLS on SSL listeners: real handshakes with Python's ssl client, client certificates and
the principal taken from them, certificate reload for new connections only."""

from __future__ import annotations

import os
import shutil
import signal
import ssl
import subprocess
import sys
import time
import warnings
from pathlib import Path
from typing import Any

import pytest

import streamcore
from broker.wire_client import (
    ConnectionClosed,
    WireClient,
    batch,
    create_topic,
    fetch_request,
    fetched_partition,
    produce,
    records_of,
)
from streamcore import Broker
from streamcore.broker.security.tls import format_subject, principal_from_certificate
from streamcore.errors import ConfigError
from streamcore.protocol import messages as m

from .certs import Pki, authenticated, client_context, make_pki, tls_wire_client

PACKAGE_PARENT = os.path.dirname(os.path.dirname(os.path.abspath(streamcore.__file__)))
PROCESS_TIMEOUT_S = 60


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki"))


def ssl_broker(pki: Pki, **settings: Any) -> Broker:
    return Broker(
        listeners="SSL://127.0.0.1:0",
        ssl_certfile=str(pki.server_cert),
        ssl_keyfile=str(pki.server_key),
        **settings,
    )


def principals(broker: Broker) -> list[str]:
    return sorted(conn.principal for conn in broker.runtime._server.connections)


def test_a_tls_client_produces_and_fetches_over_an_ssl_listener(pki: Pki) -> None:
    with ssl_broker(pki) as broker:
        assert broker.runtime.listeners[0].ssl_context.minimum_version == ssl.TLSVersion.TLSv1_2
        with tls_wire_client(broker.bootstrap_servers, client_context(pki.ca_file)) as c:
            assert c.sock.version() in ("TLSv1.2", "TLSv1.3")
            md = c.request(m.MetadataRequest(topics=[]), 12)
            assert (md.brokers[0].host, md.brokers[0].port) == ("127.0.0.1", broker.port)
            create_topic(c, "tls-topic")
            assert produce(c, "tls-topic", 0, batch([b"a", b"b"])).error_code == 0
            part = fetched_partition(c.request(fetch_request("tls-topic", 0, 0), 12), "tls-topic", 0)
            assert [v for _, _, v in records_of(part.records)] == [b"a", b"b"]
            assert principals(broker) == ["User:ANONYMOUS"]


def test_tls_below_1_2_and_plaintext_clients_are_refused(pki: Pki) -> None:
    with ssl_broker(pki) as broker:
        old = client_context(pki.ca_file)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # TLS 1.1 is what is being refused
            old.minimum_version = ssl.TLSVersion.MINIMUM_SUPPORTED
            old.maximum_version = ssl.TLSVersion.TLSv1_1
        with pytest.raises((ssl.SSLError, ConnectionError)):
            tls_wire_client(broker.bootstrap_servers, old)
        with WireClient(broker.bootstrap_servers) as c:
            # A Kafka request is not a TLS ClientHello: the broker gives up on the connection.
            c.send(m.MetadataRequest(topics=[]), 1)
            assert c.is_closed_by_peer()
        # The broker keeps serving TLS clients.
        with tls_wire_client(broker.bootstrap_servers, client_context(pki.ca_file)) as c:
            assert c.request(m.MetadataRequest(topics=[]), 1).brokers


def test_a_client_trusting_another_ca_does_not_accept_the_broker(pki: Pki, tmp_path: Path) -> None:
    other = make_pki(tmp_path / "other")
    with ssl_broker(pki) as broker, pytest.raises(ssl.SSLCertVerificationError):
        tls_wire_client(broker.bootstrap_servers, client_context(other.ca_file))


def test_required_client_certificates_name_the_principal(pki: Pki) -> None:
    cert, key = pki.client("app", C="DE", O="Acme, Inc", OU="ops", CN="app-1")
    with ssl_broker(pki, ssl_cafile=str(pki.ca_file), ssl_client_auth="required") as broker:
        with tls_wire_client(broker.bootstrap_servers, client_context(pki.ca_file, cert, key)) as c:
            assert c.request(m.MetadataRequest(topics=[]), 1).brokers
            assert principals(broker) == ["User:CN=app-1,OU=ops,O=Acme\\, Inc,C=DE"]
        # No certificate: the handshake (TLS 1.3: the first read after it) fails.
        with pytest.raises((ssl.SSLError, ConnectionError, ConnectionClosed)):
            with tls_wire_client(broker.bootstrap_servers, client_context(pki.ca_file)) as c:
                c.request(m.MetadataRequest(topics=[]), 1)
                pytest.fail("served without a client certificate")


def test_requested_client_certificates_are_optional(pki: Pki) -> None:
    cert, key = pki.client("req", CN="requested")
    with ssl_broker(pki, ssl_cafile=str(pki.ca_file), ssl_client_auth="requested") as broker:
        with tls_wire_client(broker.bootstrap_servers, client_context(pki.ca_file)) as anonymous:
            assert anonymous.request(m.MetadataRequest(topics=[]), 1).brokers
            with tls_wire_client(broker.bootstrap_servers, client_context(pki.ca_file, cert, key)) as named:
                assert named.request(m.MetadataRequest(topics=[]), 1).brokers
                assert principals(broker) == ["User:ANONYMOUS", "User:CN=requested"]


def test_an_encrypted_key_is_read_with_its_password(pki: Pki) -> None:
    cert, key = pki.server("locked", key_password=b"k3y")
    with Broker(
        listeners="SSL://127.0.0.1:0", ssl_certfile=str(cert), ssl_keyfile=str(key), ssl_key_password="k3y"
    ) as broker:
        with tls_wire_client(broker.bootstrap_servers, client_context(pki.ca_file)) as c:
            assert c.request(m.MetadataRequest(topics=[]), 1).brokers
    with pytest.raises(
        ConfigError, match=r"^ssl\.certfile .*locked\.crt / ssl\.keyfile .*locked\.key: cannot load"
    ):
        wrong = Broker(
            listeners="SSL://127.0.0.1:0", ssl_certfile=str(cert), ssl_keyfile=str(key), ssl_key_password="no"
        )
        try:
            wrong.start()
        finally:
            wrong.stop()


def test_a_missing_certificate_file_stops_the_start_in_one_line(tmp_path: Path) -> None:
    broker = Broker(listeners="SSL://127.0.0.1:0", ssl_certfile=str(tmp_path / "missing.pem"))
    with pytest.raises(
        ConfigError, match=r"^ssl\.certfile .*missing\.pem: cannot load the certificate and key: No such file"
    ):
        broker.start()
    broker.stop()


def _install(pki: Pki, target: Path) -> tuple[Path, Path]:
    cert, key = target / "broker.crt", target / "broker.key"
    shutil.copyfile(pki.server_cert, target / "broker.crt.new")
    shutil.copyfile(pki.server_key, target / "broker.key.new")
    os.replace(target / "broker.crt.new", cert)
    os.replace(target / "broker.key.new", key)
    return cert, key


def test_reloaded_certificates_serve_new_connections_and_keep_open_ones(pki: Pki, tmp_path: Path) -> None:
    second = make_pki(tmp_path / "second", name="second CA")
    cert, key = _install(pki, tmp_path)
    with Broker(listeners="SSL://127.0.0.1:0", ssl_certfile=str(cert), ssl_keyfile=str(key)) as broker:
        with tls_wire_client(broker.bootstrap_servers, client_context(pki.ca_file)) as before:
            assert before.request(m.MetadataRequest(topics=[]), 1).brokers
            _install(second, tmp_path)
            assert broker.reload_certificates() == 1
            # The open connection was not dropped and still works...
            assert before.request(m.MetadataRequest(topics=[]), 1).brokers
            # ...while new connections get the new certificate.
            with tls_wire_client(broker.bootstrap_servers, client_context(second.ca_file)) as after:
                assert after.request(m.MetadataRequest(topics=[]), 1).brokers
            with pytest.raises(ssl.SSLCertVerificationError):
                tls_wire_client(broker.bootstrap_servers, client_context(pki.ca_file))
            # A file that cannot be used keeps the certificates in use.
            cert.write_text("not a certificate")
            with pytest.raises(ConfigError, match="cannot load the certificate"):
                broker.reload_certificates()
            with tls_wire_client(broker.bootstrap_servers, client_context(second.ca_file)) as after:
                assert after.request(m.MetadataRequest(topics=[]), 1).brokers
            assert before.request(m.MetadataRequest(topics=[]), 1).brokers


def test_sighup_reloads_the_certificates_of_the_standalone_broker(pki: Pki, tmp_path: Path) -> None:
    second = make_pki(tmp_path / "second", name="second CA")
    cert, key = _install(pki, tmp_path)
    users_file = tmp_path / "plain-users"
    users_file.write_text("dave:old-pw\n")
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [PACKAGE_PARENT, env.get("PYTHONPATH")]))
    proc = subprocess.Popen(
        [sys.executable, "-m", "streamcore.cli", "broker", "--data-dir", str(tmp_path / "d"), "--log-level", "info",
         "--listener", "SSL://127.0.0.1:0", "--listener", "SASL_PLAINTEXT://127.0.0.1:0",
         "--ssl-certfile", str(cert), "--ssl-keyfile", str(key), "--sasl-plain-users-file", str(users_file)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline().strip()
        assert line.startswith("listening on 127.0.0.1:"), line
        bootstrap = line.removeprefix("listening on ")
        sasl_line = proc.stdout.readline().strip()
        assert sasl_line.startswith("listener SASL_PLAINTEXT on 127.0.0.1:"), sasl_line
        sasl_bootstrap = sasl_line.removeprefix("listener SASL_PLAINTEXT on ")
        with authenticated(sasl_bootstrap, "PLAIN", "dave", "old-pw"):
            pass
        with tls_wire_client(bootstrap, client_context(pki.ca_file)) as before:
            assert before.request(m.MetadataRequest(topics=[]), 1).brokers
            _install(second, tmp_path)
            users_file.write_text("dave:new-pw\n")
            proc.send_signal(signal.SIGHUP)
            # Bounded: the reload happens on the broker's loop soon after the signal.
            for _ in range(200):
                try:
                    with tls_wire_client(bootstrap, client_context(second.ca_file)) as after:
                        assert after.request(m.MetadataRequest(topics=[]), 1).brokers
                    break
                except ssl.SSLCertVerificationError:
                    time.sleep(0.05)
            else:
                pytest.fail("the broker did not serve the new certificate after SIGHUP")
            assert before.request(m.MetadataRequest(topics=[]), 1).brokers
        with authenticated(sasl_bootstrap, "PLAIN", "dave", "new-pw"):
            pass
    finally:
        proc.terminate()
        _, err = proc.communicate(timeout=PROCESS_TIMEOUT_S)
    assert proc.returncode == 0, err
    assert "SIGHUP: reloaded the certificates of 1 TLS listener(s)" in err
    assert "SIGHUP: reloaded 1 PLAIN user(s)" in err


def test_subjects_are_written_as_kafka_writes_them() -> None:
    subject = (
        (("countryName", "DE"),),
        (("organizationName", "Acme, Inc"),),
        (("organizationalUnitName", "ops"), ("organizationalUnitName", "db")),
        (("commonName", " app+1 "),),
        (("emailAddress", "a@b.c"),),
    )
    assert format_subject(subject) == (
        "1.2.840.113549.1.9.1=#16056140622e63,CN=\\ app\\+1\\ ,OU=ops+OU=db,O=Acme\\, Inc,C=DE"
    )
    assert principal_from_certificate({"subject": ((("commonName", "x"),),)}) == "User:CN=x"
    assert principal_from_certificate({}) == "User:ANONYMOUS"
    assert principal_from_certificate(None) == "User:ANONYMOUS"

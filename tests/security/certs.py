"""Test certificates made at test time with ``cryptography`` (nothing is committed), and the
small wire helpers the security tests share.

:func:`make_pki` writes a CA, a server certificate for ``localhost``/``127.0.0.1`` and,
on demand, client certificates, all as PEM files in a directory; :func:`client_context`
gives a Python TLS client context trusting that CA.
"""

from __future__ import annotations

import datetime
import ipaddress
import ssl
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from broker.wire_client import ConnectionClosed, WireClient

x509 = pytest.importorskip("cryptography.x509", reason="the security tests need the `cryptography` package")
from cryptography.hazmat.primitives import hashes, serialization  # noqa: E402
from cryptography.hazmat.primitives.asymmetric import ec  # noqa: E402
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID  # noqa: E402

_DAY = datetime.timedelta(days=1)


def _key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _write_key(key: ec.EllipticCurvePrivateKey, path: Path, password: bytes | None = None) -> Path:
    encryption: serialization.KeySerializationEncryption = (
        serialization.BestAvailableEncryption(password) if password else serialization.NoEncryption()
    )
    # PKCS#8: the one PEM key form every client reads (the Java client's PEM keystore too).
    path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption)
    )
    return path


def _write_cert(cert: x509.Certificate, path: Path) -> Path:
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return path


def _name(**attrs: str) -> x509.Name:
    oids = {
        "C": NameOID.COUNTRY_NAME,
        "O": NameOID.ORGANIZATION_NAME,
        "OU": NameOID.ORGANIZATIONAL_UNIT_NAME,
        "CN": NameOID.COMMON_NAME,
    }
    return x509.Name([x509.NameAttribute(oids[k], v) for k, v in attrs.items()])


@dataclass
class Pki:
    """A CA and certificates it signed, as PEM files under ``directory``."""

    directory: Path
    ca_key: ec.EllipticCurvePrivateKey
    ca_cert: x509.Certificate
    ca_file: Path
    server_cert: Path = field(init=False)
    server_key: Path = field(init=False)

    def issue(
        self,
        stem: str,
        subject: x509.Name,
        *,
        server: bool,
        hosts: tuple[str, ...] = (),
        key_password: bytes | None = None,
        not_after: datetime.datetime | None = None,
    ) -> tuple[Path, Path]:
        """Sign a certificate for ``subject``; returns (certificate file, key file)."""
        key = _key()
        now = datetime.datetime.now(datetime.timezone.utc)
        builder = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(self.ca_cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - _DAY)
            .not_valid_after(not_after or now + 30 * _DAY)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(
                x509.ExtendedKeyUsage(
                    [ExtendedKeyUsageOID.SERVER_AUTH if server else ExtendedKeyUsageOID.CLIENT_AUTH]
                ),
                critical=False,
            )
        )
        if hosts:
            names: list[x509.GeneralName] = []
            for host in hosts:
                try:
                    names.append(x509.IPAddress(ipaddress.ip_address(host)))
                except ValueError:
                    names.append(x509.DNSName(host))
            builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
        cert = builder.sign(self.ca_key, hashes.SHA256())
        return (
            _write_cert(cert, self.directory / f"{stem}.crt"),
            _write_key(key, self.directory / f"{stem}.key", key_password),
        )

    def server(self, stem: str, *, key_password: bytes | None = None) -> tuple[Path, Path]:
        """Another server certificate for localhost/127.0.0.1 (its key encrypted with ``key_password``)."""
        return self.issue(
            stem, _name(CN=stem), server=True, hosts=("localhost", "127.0.0.1"), key_password=key_password
        )

    def client(self, stem: str, **subject: str) -> tuple[Path, Path]:
        """A client certificate for ``subject`` (``CN="app", O="Acme"``, in that order)."""
        return self.issue(stem, _name(**subject), server=False)

    def combined(self, cert: Path, key: Path) -> Path:
        """One PEM file holding ``cert`` and ``key`` (what some clients want)."""
        path = cert.with_suffix(".pem")
        path.write_bytes(cert.read_bytes() + key.read_bytes())
        return path


def make_pki(
    directory: Path, *, name: str = "streamcore test CA", hosts: tuple[str, ...] = ("localhost", "127.0.0.1")
) -> Pki:
    """A fresh CA in ``directory`` and a server certificate for ``hosts`` signed by it."""
    directory.mkdir(parents=True, exist_ok=True)
    ca_key = _key()
    now = datetime.datetime.now(datetime.timezone.utc)
    ca_name = _name(O="streamcore tests", CN=name)
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - _DAY)
        .not_valid_after(now + 30 * _DAY)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True, content_commitment=False, key_encipherment=False, data_encipherment=False,
                key_agreement=False, key_cert_sign=True, crl_sign=True, encipher_only=False, decipher_only=False,
            ),
            critical=True,
        )
        .sign(ca_key, hashes.SHA256())
    )  # fmt: skip
    pki = Pki(directory, ca_key, ca_cert, _write_cert(ca_cert, directory / "ca.crt"))
    pki.server_cert, pki.server_key = pki.issue("server", _name(CN="localhost"), server=True, hosts=hosts)
    return pki


def client_context(
    ca_file: Path, cert: Path | None = None, key: Path | None = None, *, check_hostname: bool = True
) -> ssl.SSLContext:
    """A Python TLS client context trusting ``ca_file`` (with a client certificate if given)."""
    ctx = ssl.create_default_context(cafile=str(ca_file))
    ctx.check_hostname = check_hostname
    if cert is not None:
        ctx.load_cert_chain(str(cert), str(key) if key else None)
    return ctx


def tls_wire_client(bootstrap: str, ctx: ssl.SSLContext, server_hostname: str = "localhost") -> WireClient:
    """A WireClient whose socket speaks TLS (the handshake is done on return)."""
    c = WireClient(bootstrap)
    try:
        c.sock = ctx.wrap_socket(c.sock, server_hostname=server_hostname)
    except BaseException:
        c.close()
        raise
    return c


# -- SASL over the wire ----------------------------------------------------------------------
# The client side of the exchanges is streamcore's client code (streamcore.client.security),
# written apart from the broker's: the two check each other.


def sasl_client(mechanism: str, user: str, password: str) -> Any:
    """streamcore's client side of ``mechanism``; for OAUTHBEARER ``password`` is the token."""
    from streamcore.client.security import OAuthBearerClient, PlainClient, ScramClient

    if mechanism == "OAUTHBEARER":
        return OAuthBearerClient(password)
    return PlainClient(user, password) if mechanism == "PLAIN" else ScramClient(mechanism, user, password)


def unsecured_jwt(
    sub: str | None, exp: float | None, *, iat: float | None = None, alg: str = "none", signature: str = ""
) -> str:
    """An unsigned JWS (RFC 7515 compact form with base64url parts), as Kafka's and
    librdkafka's unsecured token makers produce."""
    import base64
    import json

    def part(obj: dict[str, object]) -> str:
        return base64.urlsafe_b64encode(json.dumps(obj).encode()).decode().rstrip("=")

    claims: dict[str, object] = {}
    if sub is not None:
        claims["sub"] = sub
    if exp is not None:
        claims["exp"] = exp
    if iat is not None:
        claims["iat"] = iat
    return f"{part({'alg': alg})}.{part(claims)}.{signature}"


def sasl_login(
    c: WireClient, mechanism: str, user: str, password: str, *, authenticate_version: int = 2
) -> Any:
    """SaslHandshake v1 then SaslAuthenticate until the exchange ends; returns the last
    SaslAuthenticate response (its error code is the outcome)."""
    from streamcore.protocol import messages as m

    hs = c.request(m.SaslHandshakeRequest(mechanism=mechanism), 1)
    assert hs.error_code == 0, hs
    client = sasl_client(mechanism, user, password)
    token: bytes | None = client.initial()
    response = None
    while token is not None:
        response = c.request(m.SaslAuthenticateRequest(auth_bytes=token), authenticate_version)
        if response.error_code:
            return response
        token = client.evaluate(response.auth_bytes)
    return response


def sasl_login_raw(c: WireClient, mechanism: str, user: str, password: str) -> bytes | None:
    """SaslHandshake v0 then raw size-prefixed tokens (the pre-KIP-152 framing); returns
    the last server token, or None when the broker closed the connection."""
    from streamcore.protocol import messages as m

    hs = c.request(m.SaslHandshakeRequest(mechanism=mechanism), 0)
    assert hs.error_code == 0, hs
    client = sasl_client(mechanism, user, password)
    token: bytes | None = client.initial()
    answer = b""
    while token is not None:
        c.send_raw(len(token).to_bytes(4, "big") + token)
        try:
            answer = c.recv_frame()
        except ConnectionClosed:
            return None
        token = client.evaluate(answer)
    return answer


def authenticated(
    bootstrap: str, mechanism: str, user: str, password: str, ctx: ssl.SSLContext | None = None
) -> WireClient:
    """A WireClient (over TLS with ``ctx``) that has authenticated as ``user``."""
    c = tls_wire_client(bootstrap, ctx) if ctx is not None else WireClient(bootstrap)
    try:
        response = sasl_login(c, mechanism, user, password)
        assert response is not None and response.error_code == 0, response
    except BaseException:
        c.close()
        raise
    return c

"""Test certificates made at test time with ``cryptography``: a CA, a broker certificate
for 127.0.0.1/localhost and client certificates, as PEM files (nothing is committed).

The client-security tests use this until the broker side's tests/security/certs.py
exists; EC P-256 keys keep generation fast. Broker keys are unencrypted PKCS#8, which
Apache Kafka's PEM key store reads without ``ssl.key.password``.
"""

from __future__ import annotations

import datetime
import ipaddress
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID


@dataclass(frozen=True)
class CertFiles:
    """PEM files of one certificate: ``cert`` (leaf then CA), ``key``, and ``both``
    (key followed by the chain, the layout of a Kafka PEM key store)."""

    cert: Path
    key: Path
    both: Path
    key_password: str | None = None


def _name(cn: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "streamcore tests"),
            x509.NameAttribute(NameOID.COMMON_NAME, cn),
        ]
    )


class TestCA:
    """A self-signed CA in ``directory`` (``ca.pem``) that issues leaf certificates."""

    __test__ = False  # not a pytest class

    def __init__(self, directory: Path, cn: str = "streamcore test CA") -> None:
        self.directory = directory
        directory.mkdir(parents=True, exist_ok=True)
        self.key = ec.generate_private_key(ec.SECP256R1())
        now = datetime.datetime.now(datetime.timezone.utc)
        self.cert = (
            x509.CertificateBuilder()
            .subject_name(_name(cn))
            .issuer_name(_name(cn))
            .public_key(self.key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=2))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=True,
                    crl_sign=True,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(self.key.public_key()), critical=False)
            .sign(self.key, hashes.SHA256())
        )
        self.ca_file = directory / "ca.pem"
        self.ca_file.write_bytes(self.cert.public_bytes(serialization.Encoding.PEM))

    def issue(
        self,
        name: str,
        cn: str,
        *,
        server: bool,
        hosts: tuple[str, ...] = ("127.0.0.1", "localhost"),
        key_password: str | None = None,
    ) -> CertFiles:
        """A leaf certificate ``name``.pem / ``name``-key.pem for ``cn``; a server one names
        ``hosts`` in its subjectAltName. ``key_password`` encrypts the key file."""
        key = ec.generate_private_key(ec.SECP256R1())
        now = datetime.datetime.now(datetime.timezone.utc)
        builder = (
            x509.CertificateBuilder()
            .subject_name(_name(cn))
            .issuer_name(self.cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(
                x509.ExtendedKeyUsage(
                    [ExtendedKeyUsageOID.SERVER_AUTH if server else ExtendedKeyUsageOID.CLIENT_AUTH]
                ),
                critical=False,
            )
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(self.key.public_key()), critical=False
            )
        )
        if server:
            alt: list[x509.GeneralName] = []
            for h in hosts:
                try:
                    alt.append(x509.IPAddress(ipaddress.ip_address(h)))
                except ValueError:
                    alt.append(x509.DNSName(h))
            builder = builder.add_extension(x509.SubjectAlternativeName(alt), critical=False)
        cert = builder.sign(self.key, hashes.SHA256())
        chain = cert.public_bytes(serialization.Encoding.PEM) + self.cert.public_bytes(
            serialization.Encoding.PEM
        )
        encryption: serialization.KeySerializationEncryption = (
            serialization.BestAvailableEncryption(key_password.encode())
            if key_password
            else serialization.NoEncryption()
        )
        key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption)
        files = CertFiles(
            self.directory / f"{name}.pem",
            self.directory / f"{name}-key.pem",
            self.directory / f"{name}-keystore.pem",
            key_password,
        )
        files.cert.write_bytes(chain)
        files.key.write_bytes(key_pem)
        files.both.write_bytes(key_pem + chain)
        return files

"""TLS for the SSL and SASL_SSL listeners, with the standard library's :mod:`ssl`.

:func:`server_context` builds the context a listener gives new connections (TLS 1.2 or
newer, the configured certificate, client certificates checked against ``ssl.cafile`` when
``ssl.client_auth`` asks for them). A certificate reload builds new contexts; connections
already open keep the one they were accepted with.

:func:`principal_from_certificate` names a client by its certificate's subject the way
Kafka's default principal builder does: ``User:`` followed by the distinguished name in
RFC 2253 form, most specific attribute first (``User:CN=app,OU=ops,O=Acme,C=DE``).
"""

from __future__ import annotations

import ssl
from collections.abc import Sequence
from typing import Any

from streamcore.broker.config import SslConfig
from streamcore.errors import ConfigError

__all__ = ["server_context", "principal_from_certificate", "format_subject", "ANONYMOUS"]

#: The principal of a connection that did not authenticate.
ANONYMOUS = "User:ANONYMOUS"

_VERIFY_MODES = {"none": ssl.CERT_NONE, "requested": ssl.CERT_OPTIONAL, "required": ssl.CERT_REQUIRED}

# The attribute keywords Java's X500Principal.getName() (RFC 2253) writes by name; keyed
# by the long names the ssl module reports.
_KEYWORDS = {
    "commonName": "CN",
    "countryName": "C",
    "localityName": "L",
    "stateOrProvinceName": "ST",
    "organizationName": "O",
    "organizationalUnitName": "OU",
    "streetAddress": "STREET",
    "domainComponent": "DC",
    "userId": "UID",
}
# Attributes Java writes as OID=#hex of their DER value, with the string type RFC 5280
# fixes for them (emailAddress is an IA5String, serialNumber a PrintableString).
_DER_STRINGS = {
    "emailAddress": ("1.2.840.113549.1.9.1", 0x16),
    "serialNumber": ("2.5.4.5", 0x13),
}


def server_context(cfg: SslConfig, client_auth: str = "none") -> ssl.SSLContext:
    """A server-side TLS context: TLS 1.2+, ``cfg.certfile``/``keyfile`` (``key_password``),
    and for ``client_auth`` ``requested``/``required`` the CAs of ``cfg.cafile``.

    Raises ConfigError naming the setting and file that could not be used.
    """
    if not cfg.certfile:
        raise ConfigError("ssl.certfile: a TLS listener needs a certificate (--ssl-certfile)")
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        ctx.load_cert_chain(cfg.certfile, cfg.keyfile or None, cfg.key_password)
    except (OSError, ssl.SSLError, ValueError) as exc:
        files = cfg.certfile + (f" / ssl.keyfile {cfg.keyfile}" if cfg.keyfile else "")
        raise ConfigError(
            f"ssl.certfile {files}: cannot load the certificate and key: {_reason(exc)}"
        ) from None
    mode = _VERIFY_MODES[client_auth]
    if mode != ssl.CERT_NONE:
        if not cfg.cafile:
            raise ConfigError(
                f"ssl.client_auth {client_auth}: set ssl.cafile to the CAs of client certificates"
            )
        try:
            ctx.load_verify_locations(cafile=cfg.cafile)
        except (OSError, ssl.SSLError) as exc:
            raise ConfigError(
                f"ssl.cafile {cfg.cafile}: cannot load the CA certificates: {_reason(exc)}"
            ) from None
        ctx.verify_mode = mode
    return ctx


def _reason(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return " ".join(str(exc).split()) or type(exc).__name__


def _escape(value: str) -> str:
    """An attribute value escaped as RFC 2253 asks."""
    out = []
    for i, ch in enumerate(value):
        if ch in ',+"\\<>;' or (i == 0 and ch in "# ") or (i == len(value) - 1 and ch == " "):
            out.append("\\" + ch)
        else:
            out.append(ch)
    return "".join(out)


def _der_hex(tag: int, value: str) -> str:
    data = value.encode("utf-8")
    n = len(data)
    if n < 0x80:
        length = bytes([n])
    else:
        size = n.to_bytes((n.bit_length() + 7) // 8, "big")
        length = bytes([0x80 | len(size)]) + size
    return "#" + (bytes([tag]) + length + data).hex()


def format_subject(subject: Sequence[Sequence[tuple[str, str]]]) -> str:
    """A subject as ``ssl.SSLSocket.getpeercert()`` gives it (RDNs in certificate order)
    in RFC 2253 form as Java prints it: the last RDN first, ``,`` between RDNs, ``+``
    inside a multi-valued one."""
    rdns = []
    for rdn in reversed(subject):
        parts = []
        for name, value in rdn:
            if name in _KEYWORDS:
                parts.append(f"{_KEYWORDS[name]}={_escape(value)}")
            elif name in _DER_STRINGS:
                oid, tag = _DER_STRINGS[name]
                parts.append(f"{oid}={_der_hex(tag, value)}")
            else:
                # Java would write the OID and the DER value, which the ssl module does not
                # expose; the attribute's name keeps the principal readable and stable.
                parts.append(f"{name}={_escape(value)}")
        rdns.append("+".join(parts))
    return ",".join(rdns)


def principal_from_certificate(cert: dict[str, Any] | None) -> str:
    """``User:<subject>`` of a verified peer certificate, ANONYMOUS without one."""
    if not cert or not cert.get("subject"):
        return ANONYMOUS
    return "User:" + format_subject(cert["subject"])

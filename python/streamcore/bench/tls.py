"""Produce and consume throughput over TLS against plaintext, on one streamcore broker.

The broker runs as its own process with one listener per security protocol compared:
PLAINTEXT, SSL and, optionally, SASL_SSL (PLAIN). Its certificate is made at run time
with the ``cryptography`` package (a throw-away CA and a server certificate for
127.0.0.1/localhost, EC P-256 keys) in the run's temporary directory; nothing is
read from or written to the user's files.

For every listener, in turn and for ``rounds`` rounds: confluent-kafka produces
``messages`` values of ``size`` bytes to a new one-partition topic (then flush) and a
new consumer group reads them back (group join included), through that listener
only. Each phase reports MB/s and messages/s (as ``streamcore bench produce|consume``
do), the broker's CPU seconds (user + system, all threads, from /proc) and this
process's CPU seconds (the load client, librdkafka's threads included): on a machine
where client and broker share the cores, TLS costs show in both.

``streamcore bench tls`` (options, printing) is in :mod:`streamcore.bench.cli`.
"""

from __future__ import annotations

import contextlib
import datetime
import functools
import ipaddress
import re
import socket
import ssl
import statistics
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from streamcore.bench.broker import create_topic, new_name, run_consume, run_produce
from streamcore.bench.processes import ServerProcess, cpu_seconds, streamcore_broker_process
from streamcore.bench.transactions import render_markdown_table

__all__ = [
    "SASL_USER",
    "Certificates",
    "client_config",
    "make_certificates",
    "render_tls_rows",
    "run_tls_benchmark",
    "tls_broker",
]

#: The PLAIN user of the SASL_SSL listener and its password (a throw-away broker's).
SASL_USER = ("bench", "bench-secret")

_LISTENER_LINE = re.compile(r"listener (\w+) on (\S+):(\d+)")


@dataclass(frozen=True)
class Certificates:
    """PEM files: the CA clients trust, the broker's certificate and its unencrypted key."""

    ca_file: Path
    cert_file: Path
    key_file: Path


def make_certificates(directory: str | Path) -> Certificates:
    """A new CA and a server certificate for 127.0.0.1 and localhost under ``directory``.

    Valid from a day ago for two days; EC P-256 keys, SHA-256 signatures. Needs the
    ``cryptography`` package (RuntimeError when it is missing).
    """
    try:
        from cryptography import x509
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
    except ImportError as exc:
        raise RuntimeError("the TLS benchmark makes its certificates with `cryptography`") from exc

    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    now = datetime.datetime.now(datetime.timezone.utc)
    day = datetime.timedelta(days=1)

    def name(cn: str) -> x509.Name:
        return x509.Name(
            [
                x509.NameAttribute(NameOID.ORGANIZATION_NAME, "streamcore bench"),
                x509.NameAttribute(NameOID.COMMON_NAME, cn),
            ]
        )

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(name("streamcore bench CA"))
        .issuer_name(name("streamcore bench CA"))
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - day)
        .not_valid_after(now + day)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    alt_names: list[x509.GeneralName] = [
        x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
        x509.DNSName("localhost"),
    ]
    cert = (
        x509.CertificateBuilder()
        .subject_name(name("localhost"))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - day)
        .not_valid_after(now + day)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectAlternativeName(alt_names), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    pem = serialization.Encoding.PEM
    files = Certificates(out / "ca.crt", out / "broker.crt", out / "broker.key")
    files.ca_file.write_bytes(ca_cert.public_bytes(pem))
    files.cert_file.write_bytes(cert.public_bytes(pem))
    files.key_file.write_bytes(
        key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    files.key_file.chmod(0o600)
    return files


def _toml_list(items: Sequence[str]) -> str:
    return "[" + ", ".join(f'"{x}"' for x in items) + "]"


def _listener_addresses(server: ServerProcess, protocols: Sequence[str], timeout_s: float) -> dict[str, str]:
    """Addresses of the listeners after the first, read from the lines the broker prints
    right after ``listening on`` (copied to its log by the ServerProcess)."""
    deadline = time.monotonic() + timeout_s
    while True:
        found = {
            m.group(1): f"{m.group(2)}:{m.group(3)}" for m in _LISTENER_LINE.finditer(server.log_tail(8000))
        }
        if all(p in found for p in protocols):
            return {p: found[p] for p in protocols}
        if time.monotonic() > deadline:
            raise RuntimeError(
                f"the broker did not print its {list(protocols)} listeners: {server.log_tail()}"
            )
        time.sleep(0.02)


@contextlib.contextmanager
def tls_broker(
    workdir: str | Path, certs: Certificates, *, sasl: bool = False, fsync: str = "interval"
) -> Iterator[tuple[ServerProcess, dict[str, str]]]:
    """A streamcore broker process with PLAINTEXT, SSL (and with ``sasl`` SASL_SSL/PLAIN)
    listeners on 127.0.0.1, free ports; yields the server and ``{protocol: "host:port"}``.

    The settings go through a TOML file in ``workdir``; the data directory is
    ``workdir/data``. Stopped (SIGTERM) on exit.
    """
    work = Path(workdir)
    protocols = ["PLAINTEXT", "SSL"] + (["SASL_SSL"] if sasl else [])
    lines = [
        f"listeners = {_toml_list([f'{p}://127.0.0.1:0' for p in protocols])}",
        "",
        "[ssl]",
        f'certfile = "{certs.cert_file}"',
        f'keyfile = "{certs.key_file}"',
    ]
    if sasl:
        lines += [
            "",
            "[sasl]",
            'mechanisms = ["PLAIN"]',
            f"plain_users = {_toml_list([':'.join(SASL_USER)])}",
        ]
    config = work / "broker.toml"
    config.write_text("\n".join(lines) + "\n")
    config.chmod(0o600)
    (work / "data").mkdir(exist_ok=True)
    server = streamcore_broker_process(work / "data", fsync=fsync)
    server.argv += ["--config", str(config)]
    server.start()
    try:
        addresses = {"PLAINTEXT": server.bootstrap, **_listener_addresses(server, protocols[1:], 30.0)}
        yield server, addresses
    finally:
        server.stop()


def client_config(protocol: str, certs: Certificates) -> dict[str, Any]:
    """confluent-kafka settings that reach the listener of ``protocol`` (bootstrap aside)."""
    # log_level 3: librdkafka's notes about connections closing at the end stay off stderr.
    config: dict[str, Any] = {"log_level": 3}
    if protocol == "PLAINTEXT":
        return config
    config.update({"security.protocol": protocol, "ssl.ca.location": str(certs.ca_file)})
    if protocol == "SASL_SSL":
        config.update(
            {"sasl.mechanism": "PLAIN", "sasl.username": SASL_USER[0], "sasl.password": SASL_USER[1]}
        )
    return config


def probe_tls(address: str, certs: Certificates, timeout_s: float = 10.0) -> dict[str, Any]:
    """The TLS version and cipher the broker picks for a Python client (this process's OpenSSL).

    librdkafka links its own OpenSSL and may offer other ciphers; with TLS 1.3 on
    both sides both usually end on the same AES-GCM suite.
    """
    host, port = address.rsplit(":", 1)
    ctx = ssl.create_default_context(cafile=str(certs.ca_file))
    with socket.create_connection((host, int(port)), timeout_s) as raw:
        with ctx.wrap_socket(raw, server_hostname="localhost") as tls:
            cipher = tls.cipher()
            return {"version": tls.version(), "cipher": cipher[0] if cipher else None}


def _phase(server: ServerProcess, run: Any) -> dict[str, Any]:
    broker_before = cpu_seconds(server.pid)
    client_before = time.process_time()
    result: dict[str, Any] = run()
    client_after = time.process_time()
    broker_after = cpu_seconds(server.pid)
    result["broker_cpu_s"] = (
        None if broker_before is None or broker_after is None else broker_after - broker_before
    )
    result["client_cpu_s"] = client_after - client_before
    return result


def run_tls_benchmark(
    server: ServerProcess,
    addresses: dict[str, str],
    certs: Certificates,
    *,
    messages: int,
    size: int,
    acks: str = "1",
    linger_ms: float = 5.0,
    rounds: int = 1,
    timeout_s: float = 300.0,
    progress: bool | None = None,
) -> dict[str, Any]:
    """Produce then consume through every listener of ``addresses``, ``rounds`` times in turn.

    Returns ``{"rows": [...], "runs": [...]}``: per listener, the medians over the rounds
    (``produce_mb_per_s``, ``produce_msgs_per_s``, ``produce_broker_cpu_s``,
    ``produce_client_cpu_s``, the same for ``consume`` plus
    ``consume_after_first_mb_per_s``: MB/s from the first record on, the group join left
    out), and every run's figures.
    """
    runs: dict[str, list[dict[str, Any]]] = {p: [] for p in addresses}
    for _ in range(rounds):
        for protocol, address in addresses.items():
            extra = client_config(protocol, certs)
            topic = new_name(f"bench-{protocol.lower()}")
            create_topic(addresses["PLAINTEXT"], topic, 1, min(timeout_s, 60.0))
            produced = _phase(
                server,
                functools.partial(
                    run_produce,
                    address,
                    messages,
                    size,
                    acks,
                    linger_ms,
                    topic=topic,
                    delivery_reports=False,
                    progress=progress,
                    timeout_s=timeout_s,
                    client_config=extra,
                ),
            )
            consumed = _phase(
                server,
                functools.partial(
                    run_consume,
                    address,
                    topic,
                    messages,
                    latency=False,
                    progress=progress,
                    timeout_s=timeout_s,
                    client_config=extra,
                ),
            )
            # The join and first fetch are the same work on every listener; the rate after the
            # first record is the part TLS can change.
            after_first = consumed["seconds"] - (consumed["first_message_s"] or 0.0)
            consumed["after_first_mb_per_s"] = (
                consumed["bytes"] / after_first / 1e6 if after_first > 0 else None
            )
            runs[protocol].append({"protocol": protocol, "produce": produced, "consume": consumed})
    rows = []
    for protocol, done in runs.items():
        row: dict[str, Any] = {"protocol": protocol, "rounds": len(done)}
        for phase, keys in _ROW_KEYS.items():
            for key in keys:
                values = [r[phase][key] for r in done if r[phase][key] is not None]
                row[f"{phase}_{key}"] = statistics.median(values) if values else None
        rows.append(row)
    return {"rows": rows, "runs": [r for p in runs for r in runs[p]]}


_ROW_KEYS = {
    "produce": ("mb_per_s", "msgs_per_s", "broker_cpu_s", "client_cpu_s"),
    "consume": ("mb_per_s", "after_first_mb_per_s", "msgs_per_s", "broker_cpu_s", "client_cpu_s"),
}


def _fig(x: float | None, digits: int = 1) -> str:
    return "-" if x is None else f"{x:,.{digits}f}"


def render_tls_rows(rows: Sequence[dict[str, Any]]) -> str:
    """The summary rows of :func:`run_tls_benchmark` as one markdown table (ratios against
    the PLAINTEXT row)."""
    base = next((r for r in rows if r["protocol"] == "PLAINTEXT"), None)

    def ratio(r: dict[str, Any], key: str) -> str:
        if base is None or not base[key] or r[key] is None:
            return "-"
        return f"{r[key] / base[key]:.2f}"

    header = [
        "listener",
        "produce MB/s",
        "vs plaintext",
        "broker CPU s",
        "client CPU s",
        "consume MB/s",
        "vs plaintext",
        "after 1st record MB/s",
        "vs plaintext",
        "broker CPU s",
        "client CPU s",
    ]
    body = [
        [
            r["protocol"],
            _fig(r["produce_mb_per_s"]),
            ratio(r, "produce_mb_per_s"),
            _fig(r["produce_broker_cpu_s"], 2),
            _fig(r["produce_client_cpu_s"], 2),
            _fig(r["consume_mb_per_s"]),
            ratio(r, "consume_mb_per_s"),
            _fig(r["consume_after_first_mb_per_s"]),
            ratio(r, "consume_after_first_mb_per_s"),
            _fig(r["consume_broker_cpu_s"], 2),
            _fig(r["consume_client_cpu_s"], 2),
        ]
        for r in rows
    ]
    return render_markdown_table(header, body)

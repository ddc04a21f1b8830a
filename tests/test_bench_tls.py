"""``streamcore bench tls`` (streamcore.bench.tls, its parser and handler in streamcore.bench.cli)
runs on a tiny workload: a broker process with PLAINTEXT, SSL and SASL_SSL listeners and a
certificate made at run time; each listener moves every message both ways. Never a speed check.
"""

from __future__ import annotations

import argparse
import json
import ssl
import stat
from pathlib import Path

import pytest

from streamcore.bench import cli as bench_cli
from streamcore.bench import tls as tlsb

pytest.importorskip("confluent_kafka")
pytest.importorskip("cryptography")


def _parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    bench_cli.add_tls_command(parser.add_subparsers(dest="bench_target", required=True))
    return parser.parse_args(["tls", *argv])


def test_the_certificates_verify_for_127_0_0_1_and_localhost(tmp_path: Path) -> None:
    certs = tlsb.make_certificates(tmp_path / "certs")
    assert stat.S_IMODE(certs.key_file.stat().st_mode) == 0o600
    server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server.load_cert_chain(str(certs.cert_file), str(certs.key_file))
    client = ssl.create_default_context(cafile=str(certs.ca_file))
    for name in ("localhost", "127.0.0.1"):
        a, b = ssl.MemoryBIO(), ssl.MemoryBIO()
        c, d = ssl.MemoryBIO(), ssl.MemoryBIO()
        cs = client.wrap_bio(a, b, server_hostname=name)
        ss = server.wrap_bio(c, d, server_side=True)
        for _ in range(10):  # a handshake is a few round trips; bounded
            for side in (cs, ss):
                try:
                    side.do_handshake()
                except ssl.SSLWantReadError:
                    pass
            c.write(b.read())
            a.write(d.read())
        assert cs.version() in ("TLSv1.2", "TLSv1.3"), name
    other = tlsb.make_certificates(tmp_path / "other")
    assert other.ca_file.read_bytes() != certs.ca_file.read_bytes()


def test_client_settings_per_listener(tmp_path: Path) -> None:
    certs = tlsb.Certificates(tmp_path / "ca", tmp_path / "c", tmp_path / "k")
    assert tlsb.client_config("PLAINTEXT", certs) == {"log_level": 3}
    assert tlsb.client_config("SSL", certs)["ssl.ca.location"] == str(tmp_path / "ca")
    sasl = tlsb.client_config("SASL_SSL", certs)
    assert (sasl["security.protocol"], sasl["sasl.mechanism"], sasl["sasl.username"]) == (
        "SASL_SSL",
        "PLAIN",
        tlsb.SASL_USER[0],
    )


def test_the_command_moves_every_message_through_each_listener(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "tls.json"
    args = _parse(
        ["--messages", "300", "--size", "200", "--rounds", "1", "--sasl", "--no-progress", "--json", str(out)]
    )
    assert args.handler(args) == 0
    report = json.loads(out.read_text())
    assert report["benchmark"] == "tls"
    assert report["tls"]["version"] in ("TLSv1.2", "TLSv1.3")
    assert [r["protocol"] for r in report["rows"]] == ["PLAINTEXT", "SSL", "SASL_SSL"]
    assert len(report["runs"]) == 3
    for run in report["runs"]:
        assert run["produce"]["messages"] == 300
        assert run["consume"]["received"] == 300 and run["consume"]["bytes"] == 300 * 200
        assert run["consume"]["errors"] == 0
        # Each listener really is the one measured: its own port.
        assert run["produce"]["bootstrap"] == run["consume"]["bootstrap"]
        assert run["consume"]["after_first_mb_per_s"] > 0
        for phase in ("produce", "consume"):
            assert run[phase]["mb_per_s"] > 0
            assert run[phase]["broker_cpu_s"] >= 0 and run[phase]["client_cpu_s"] >= 0
    assert len({run["produce"]["bootstrap"] for run in report["runs"]}) == 3
    printed = capsys.readouterr().out
    assert "| listener | produce MB/s | vs plaintext |" in printed
    assert "| after 1st record MB/s |" in printed
    assert all(r["consume_after_first_mb_per_s"] > 0 for r in report["rows"])
    assert "| PLAINTEXT |" in printed and "| SSL |" in printed and "| SASL_SSL |" in printed


def test_a_client_without_the_ca_is_refused_by_the_ssl_listener(tmp_path: Path) -> None:
    certs = tlsb.make_certificates(tmp_path / "certs")
    stranger = tlsb.make_certificates(tmp_path / "stranger")
    with tlsb.tls_broker(tmp_path, certs) as (_server, addresses):
        assert set(addresses) == {"PLAINTEXT", "SSL"}
        assert tlsb.probe_tls(addresses["SSL"], certs)["cipher"]
        with pytest.raises(ssl.SSLCertVerificationError):
            tlsb.probe_tls(addresses["SSL"], stranger)

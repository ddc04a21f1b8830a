"""The tools' pure parts without a broker: tables, record formats, reset plans, settings precedence."""

from __future__ import annotations

import argparse
import json

import pytest

from streamcore.client.types import ConsumerRecord, TopicPartition
from streamcore.tools._common import UsageError, client_settings, format_table, load_properties
from streamcore.tools.consume import format_record
from streamcore.tools.groups import plan_reset


def test_format_table_aligns_columns_and_keeps_cells_one_word() -> None:
    out = format_table(["TOPIC", "LAG"], [("events", 12), ("a b", None), ("x", "")])
    assert out.splitlines() == ["TOPIC   LAG", "events  12", "a_b     -", "x       -"]
    assert all(len(line.split()) == 2 for line in out.splitlines())


def _record(key: bytes | None, value: bytes | None) -> ConsumerRecord:
    return ConsumerRecord("t", 3, 41, 1_700_000_000_123, key, value, [("h", b"\xff"), ("n", None)])


def test_format_record_value_and_key_value_print_null_for_none() -> None:
    assert format_record(_record(None, b"v"), "value") == b"v"
    assert format_record(_record(None, None), "value") == b"null"
    assert format_record(_record(b"k", b"v"), "key-value", b"|") == b"k|v"
    assert format_record(_record(None, b"v"), "key-value") == b"null\tv"


def test_format_record_json_has_every_field_and_replaces_invalid_utf8() -> None:
    doc = json.loads(format_record(_record(b"k", "caf\u00e9".encode()), "json"))
    assert doc == {
        "topic": "t",
        "partition": 3,
        "offset": 41,
        "timestamp": 1_700_000_000_123,
        "key": "k",
        "value": "caf\u00e9",
        "headers": [{"key": "h", "value": "\ufffd"}, {"key": "n", "value": None}],
    }


_T0, _T1 = TopicPartition("t", 0), TopicPartition("t", 1)
_EARLIEST = {_T0: 5, _T1: 0}
_LATEST = {_T0: 20, _T1: 3}


@pytest.mark.parametrize(
    ("how", "amount", "want"),
    [
        ("earliest", None, {_T0: 5, _T1: 0}),
        ("latest", None, {_T0: 20, _T1: 3}),
        ("offset", 10, {_T0: 10, _T1: 3}),  # above the log end: kept at the end
        ("offset", 0, {_T0: 5, _T1: 0}),  # below the log start: kept at the start
        ("shift", -8, {_T0: 5, _T1: 0}),
        ("shift", 2, {_T0: 12, _T1: 3}),
    ],
)
def test_plan_reset_keeps_offsets_within_the_log(how: str, amount: int | None, want: dict) -> None:
    assert plan_reset(how, amount, {_T0: 10, _T1: 1}, _EARLIEST, _LATEST) == want


def test_plan_reset_shift_needs_a_committed_offset() -> None:
    from streamcore.tools._common import ToolError

    with pytest.raises(ToolError, match="t-1 has no committed offset"):
        plan_reset("shift", 1, {_T0: 10}, _EARLIEST, _LATEST)


def test_load_properties_reads_java_syntax(tmp_path) -> None:
    path = tmp_path / "c.properties"
    path.write_text(
        "# comment\n! also\nclient.id = a\\u0062c\nrequest.timeout.ms: 5000\nlong = one \\\n   two\n"
    )
    assert load_properties(str(path)) == {"client.id": "abc", "request.timeout.ms": "5000", "long": "one two"}


def _args(**kw: object) -> argparse.Namespace:
    base = {"bootstrap": None, "command_config": None, "timeout": 7.0}
    return argparse.Namespace(**{**base, **kw})


def test_client_settings_precedence(tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "c.properties"
    path.write_text("bootstrap.servers=file:1\nrequest.timeout.ms=1234\nclient.id=from-file\n")
    monkeypatch.delenv("STREAMCORE_BOOTSTRAP", raising=False)
    s = client_settings(_args(command_config=str(path)), "admin", {"client_id": "from-flag"})
    # the file's value beats --timeout's; the tool's own flag beats the file
    assert (s["bootstrap_servers"], s["request_timeout_ms"], s["client_id"]) == (
        "file:1",
        "1234",
        "from-flag",
    )
    assert s["socket_connection_setup_timeout_ms"] == 7000
    monkeypatch.setenv("STREAMCORE_BOOTSTRAP", "env:2")
    assert client_settings(_args(command_config=str(path)), "admin")["bootstrap_servers"] == "env:2"
    assert client_settings(_args(bootstrap="flag:3"), "admin")["bootstrap_servers"] == "flag:3"
    monkeypatch.delenv("STREAMCORE_BOOTSTRAP")
    assert client_settings(_args(), "admin")["bootstrap_servers"] == "127.0.0.1:9092"


def test_client_settings_refuses_a_setting_of_another_client(tmp_path) -> None:
    path = tmp_path / "c.properties"
    path.write_text("linger.ms=5\n")
    assert client_settings(_args(command_config=str(path)), "producer")["linger_ms"] == "5"
    with pytest.raises(UsageError, match="linger"):
        client_settings(_args(command_config=str(path)), "consumer")


def test_produce_help_names_every_compression_codec_the_client_takes() -> None:
    from streamcore.client.config import COMPRESSION_TYPES
    from streamcore.tools import produce

    assert produce._COMPRESSION_HELP.replace(" or ", ", ").split(", ") == list(COMPRESSION_TYPES)

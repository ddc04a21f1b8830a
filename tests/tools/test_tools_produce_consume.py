"""``streamcore produce`` and ``streamcore consume``: the real commands against both brokers."""

from __future__ import annotations

import json

from .helpers import failed_with_one_line, ok, run_cli


def _topic(bootstrap: str, name: str, partitions: int = 1) -> tuple[str, ...]:
    b = ("--bootstrap", bootstrap, "--timeout", "20")
    ok(run_cli("topics", "create", name, "--partitions", str(partitions), *b))
    return b


def test_each_stdin_line_is_one_record_and_consume_prints_values(bootstrap: str, name: str) -> None:
    b = _topic(bootstrap, name)
    lines = [b"first", b"", b"with spaces  ", "caf\u00e9".encode(), b"crlf"]
    assert ok(run_cli("produce", name, *b, input=b"\n".join(lines[:-1]) + b"\ncrlf\r\n")) == ""
    proc = run_cli("consume", name, "--from-beginning", "--max-messages", "5", *b)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == b"".join(line + b"\n" for line in lines)


def test_consume_stops_after_max_messages(bootstrap: str, name: str) -> None:
    b = _topic(bootstrap, name)
    ok(run_cli("produce", name, *b, input=b"".join(b"v%d\n" % i for i in range(10))))
    out = ok(run_cli("consume", name, "--from-beginning", "--max-messages", "3", *b))
    assert out.splitlines() == ["v0", "v1", "v2"]


def test_keys_headers_and_compression_reach_the_json_format(bootstrap: str, name: str) -> None:
    b = _topic(bootstrap, name)
    ok(
        run_cli(
            "produce", name, "--key-separator", ":", "--header", "source=cli", "--header", "source=again",
            "--compression", "zstd", "--acks", "1", *b, input=b"k1:v:1\nk2:v2\n",
        )
    )  # fmt: skip
    out = ok(run_cli("consume", name, "--from-beginning", "--max-messages", "2", "--format", "json", *b))
    docs = [json.loads(line) for line in out.splitlines()]
    assert [(d["key"], d["value"], d["offset"], d["partition"]) for d in docs] == [
        ("k1", "v:1", 0, 0),
        ("k2", "v2", 1, 0),
    ]
    assert docs[0]["headers"] == [{"key": "source", "value": "cli"}, {"key": "source", "value": "again"}]
    assert docs[0]["topic"] == name and isinstance(docs[0]["timestamp"], int) and docs[0]["timestamp"] > 0


def test_key_value_format_prints_null_for_a_missing_key(bootstrap: str, name: str) -> None:
    b = _topic(bootstrap, name)
    ok(run_cli("produce", name, *b, input=b"no-key\n"))
    ok(run_cli("produce", name, "--key-separator", "=", *b, input=b"k=v\n"))
    out = ok(
        run_cli(
            "consume", name, "--from-beginning", "--max-messages", "2", "--format", "key-value",
            "--key-separator", "|", *b,
        )
    )  # fmt: skip
    assert out.splitlines() == ["null|no-key", "k|v"]


def test_produce_from_file_with_gzip(bootstrap: str, name: str, tmp_path) -> None:
    b = _topic(bootstrap, name)
    path = tmp_path / "lines.txt"
    path.write_bytes(b"".join(b"line-%03d\n" % i for i in range(200)))
    ok(run_cli("produce", name, "--file", str(path), "--compression", "gzip", *b))
    out = ok(run_cli("consume", name, "--from-beginning", "--max-messages", "200", *b))
    assert out.splitlines() == [f"line-{i:03d}" for i in range(200)]


def test_line_without_key_separator_fails_after_sending_the_lines_before(bootstrap: str, name: str) -> None:
    b = _topic(bootstrap, name)
    line = failed_with_one_line(
        run_cli("produce", name, "--key-separator", ":", *b, input=b"a:1\nb:2\nnone\nc:3\n"), status=2
    )
    assert line == "streamcore produce: line 3 has no key separator ':' (2 lines before it were sent)"
    out = ok(run_cli("consume", name, "--from-beginning", "--max-messages", "2", "--format", "key-value", *b))
    assert out.splitlines() == ["a\t1", "b\t2"]


def test_consume_one_partition(bootstrap: str, name: str) -> None:
    b = _topic(bootstrap, name, partitions=2)
    for p in (0, 1):
        ok(run_cli("produce", name, "--partition", str(p), *b, input=f"p{p}-a\np{p}-b\n".encode()))
    out = ok(run_cli("consume", name, "--partition", "1", "--from-beginning", "--max-messages", "2", *b))
    assert out.splitlines() == ["p1-a", "p1-b"]


def test_timeout_ms_before_max_messages_is_an_error(bootstrap: str, name: str) -> None:
    b = _topic(bootstrap, name)
    ok(run_cli("produce", name, *b, input=b"only\n"))
    proc = run_cli("consume", name, "--from-beginning", "--max-messages", "2", "--timeout-ms", "1500", *b)
    assert proc.stdout == b"only\n"
    line = failed_with_one_line(proc)
    assert line == "streamcore consume: no record for 1500 ms after 1 of 2 messages"
    # Without --max-messages, silence for --timeout-ms is the normal end.
    proc = run_cli("consume", name, "--from-beginning", "--timeout-ms", "1500", *b)
    assert ok(proc) == "only\n"


def test_group_consumer_resumes_where_it_stopped(bootstrap: str, name: str) -> None:
    b = _topic(bootstrap, name)
    group = f"g-{name}"
    ok(run_cli("produce", name, *b, input=b"".join(b"m%d\n" % i for i in range(6))))
    first = ok(run_cli("consume", name, "--group", group, "--from-beginning", "--max-messages", "4", *b))
    assert first.splitlines() == ["m0", "m1", "m2", "m3"]
    second = ok(run_cli("consume", name, "--group", group, "--max-messages", "2", *b))
    assert second.splitlines() == ["m4", "m5"]


def test_consume_unknown_topic_is_one_line(bootstrap: str, name: str) -> None:
    line = failed_with_one_line(run_cli("consume", name, "--max-messages", "1", "--bootstrap", bootstrap))
    assert line == f"streamcore consume: topic {name!r} does not exist"

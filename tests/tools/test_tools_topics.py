"""``streamcore topics``: the real command against our broker and Apache Kafka."""

from __future__ import annotations

from .helpers import failed_with_one_line, ok, run_cli


def test_create_list_describe_delete_round_trip(bootstrap: str, name: str) -> None:
    b = ("--bootstrap", bootstrap, "--timeout", "20")
    out = ok(run_cli("topics", "create", name, "--partitions", "3", "--config", "retention.ms=123456", *b))
    assert out.strip() == f"Created topic {name}."

    listed = ok(run_cli("topics", "list", *b)).splitlines()
    assert name in listed
    assert all(line and line == line.strip() and " " not in line for line in listed)  # bare names only

    described = ok(run_cli("topics", "describe", name, *b)).splitlines()
    assert described[0].split("\t") == [f"Topic: {name}", "PartitionCount: 3", "Configs: retention.ms=123456"]
    assert [line.split("\t")[2] for line in described[1:]] == [f"Partition: {p}" for p in range(3)]

    assert ok(run_cli("topics", "delete", name, *b)) == ""
    assert name not in ok(run_cli("topics", "list", *b)).splitlines()


def test_describe_all_configs_shows_defaults_too(bootstrap: str, name: str) -> None:
    b = ("--bootstrap", bootstrap)
    ok(run_cli("topics", "create", name, "--partitions", "1", *b))
    only_set = ok(run_cli("topics", "describe", name, *b)).splitlines()[0]
    assert only_set.endswith("Configs: ")
    every = ok(run_cli("topics", "describe", name, "--all-configs", *b)).splitlines()[0]
    configs = dict(kv.split("=", 1) for kv in every.split("Configs: ", 1)[1].split(","))
    assert configs["cleanup.policy"] == "delete"


def test_create_existing_topic_fails_unless_if_not_exists(bootstrap: str, name: str) -> None:
    b = ("--bootstrap", bootstrap)
    ok(run_cli("topics", "create", name, "--partitions", "1", *b))
    line = failed_with_one_line(run_cli("topics", "create", name, "--partitions", "1", *b))
    assert line == f"streamcore topics: topic {name!r} already exists"
    assert ok(run_cli("topics", "create", name, "--partitions", "1", "--if-not-exists", *b)) == ""


def test_unknown_topic_is_one_line_and_exit_1(bootstrap: str, name: str) -> None:
    b = ("--bootstrap", bootstrap)
    for action in ("describe", "delete", "alter"):
        extra = ("--partitions", "2") if action == "alter" else ()
        line = failed_with_one_line(run_cli("topics", action, name, *extra, *b))
        assert line == f"streamcore topics: topic {name!r} does not exist", action
    assert ok(run_cli("topics", "delete", name, "--if-exists", *b)) == ""


def test_bad_config_value_is_the_brokers_error_in_one_line(bootstrap: str, name: str) -> None:
    line = failed_with_one_line(
        run_cli("topics", "create", name, "--config", "retention.ms=soon", "--bootstrap", bootstrap)
    )
    assert "INVALID_CONFIG" in line
    assert name not in ok(run_cli("topics", "list", "--bootstrap", bootstrap)).splitlines()


def test_alter_adds_partitions_and_sets_and_deletes_configs(bootstrap: str, name: str) -> None:
    b = ("--bootstrap", bootstrap, "--timeout", "20")
    ok(run_cli("topics", "create", name, "--partitions", "2", "--config", "retention.ms=100000", *b))
    ok(
        run_cli(
            "topics", "alter", name, "--partitions", "4", "--config", "segment.ms=200000",
            "--delete-config", "retention.ms", *b,
        )
    )  # fmt: skip
    first = ok(run_cli("topics", "describe", name, *b)).splitlines()[0]
    assert first.split("\t")[1:] == ["PartitionCount: 4", "Configs: segment.ms=200000"]


def test_alter_to_fewer_partitions_is_refused(bootstrap: str, name: str) -> None:
    b = ("--bootstrap", bootstrap)
    ok(run_cli("topics", "create", name, "--partitions", "3", *b))
    line = failed_with_one_line(run_cli("topics", "alter", name, "--partitions", "2", *b))
    assert "INVALID_PARTITIONS" in line
    assert "PartitionCount: 3" in ok(run_cli("topics", "describe", name, *b))

"""The advertised ApiVersions table satisfies the clients we must serve."""

from __future__ import annotations

import pytest

from streamcore.protocol import api_versions as av
from streamcore.protocol import messages as m


def _overlaps(api_key: int, lo: int, hi: int) -> bool:
    # librdkafka's feature test: the broker's range must intersect [lo, hi].
    rng = av.ADVERTISED.get(api_key)
    return rng is not None and rng[0] <= hi and lo <= rng[1]


def test_every_advertised_range_is_decodable_by_the_generated_classes():
    for key, (lo, hi) in av.ADVERTISED.items():
        for cls in (av.REQUEST_CLASSES[key], av.RESPONSE_CLASSES[key]):
            assert cls.MIN_VERSION <= lo <= hi <= cls.MAX_VERSION, cls.__name__


def test_old_librdkafka_features_stay_on():
    # Compression codecs are checked against Produce [0, 0] (gzip/snappy/lz4) or [0, 7] (zstd).
    assert _overlaps(0, 0, 0)
    assert _overlaps(0, 3, 3) and _overlaps(1, 4, 4)  # message format v2
    assert _overlaps(0, 7, 7) and _overlaps(1, 10, 10)  # zstd
    assert _overlaps(22, 0, 0)  # idempotent producer
    assert _overlaps(2, 1, 1)  # time-based offset lookup
    assert all(_overlaps(k, 0, 0) for k in (10, 11, 12, 13, 14))  # balanced consumer groups
    assert _overlaps(8, 1, 2) and _overlaps(9, 1, 1)
    assert _overlaps(18, 0, 0)


def test_kafka_python_infers_a_modern_broker():
    bvd = pytest.importorskip("kafka.protocol.broker_version_data")
    inferred = bvd.infer_broker_version_from_api_versions(av.ADVERTISED)
    assert inferred >= (2, 8)


def test_java_4_minimum_versions_are_reachable():
    java4_minimum = {0: 3, 1: 4, 2: 1, 3: 0, 8: 2, 9: 1, 10: 0, 11: 0, 19: 2, 20: 1, 22: 0, 23: 2, 32: 1}
    for key, floor in java4_minimum.items():
        assert av.ADVERTISED[key][1] >= floor


def test_ranges_stop_before_topic_id_only_versions():
    assert av.ADVERTISED[0][1] == 12 and av.ADVERTISED[1][1] == 12
    assert av.ADVERTISED[8][1] == 9 and av.ADVERTISED[9][1] == 9


def test_is_supported_and_entries_follow_the_table():
    assert av.is_supported(1, 12) and not av.is_supported(1, 3) and not av.is_supported(99, 0)
    entries = av.api_version_entries()
    assert [e.api_key for e in entries] == sorted(av.ADVERTISED)
    assert all(isinstance(e, m.ApiVersionsResponse_ApiVersion) for e in entries)


def test_flexible_from_matches_the_classes_and_names_are_short():
    for key, cls in av.REQUEST_CLASSES.items():
        assert av.flexible_from.get(key) == cls.FLEXIBLE_FROM
    assert av.API_NAMES[0] == "Produce" and av.API_NAMES[60] == "DescribeCluster"

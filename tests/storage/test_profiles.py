"""WAL profiles and Log settings."""

from __future__ import annotations

import pytest

from streamcore.errors import ConfigError
from streamcore.storage import PROFILES, resolve_profile


@pytest.mark.parametrize(
    "name, expected",
    [
        ("low", (2_500, 5_000, 20, 25 << 20)),
        ("medium", (10_000, 15_000, 10, 100 << 20)),
        ("high", (50_000, 50_000, 100, 500 << 20)),
        ("ultra", (100_000, 100_000, 100, 1 << 30)),
    ],
)
def test_profiles_match_the_design(name, expected):
    assert tuple(PROFILES[name]) == expected
    assert tuple(resolve_profile(name)) == expected


def test_each_knob_overrides_the_profile():
    assert tuple(resolve_profile("high", max_wait_ms=5)) == (50_000, 50_000, 5, 500 << 20)
    assert tuple(resolve_profile("low", queue_depth=7, max_group_batches=3)) == (7, 3, 20, 25 << 20)


@pytest.mark.parametrize(
    "kwargs", [{"queue_depth": 0}, {"max_group_batches": -1}, {"max_wait_ms": -1}, {"queue_depth": 1.5}]
)
def test_bad_knobs_are_config_errors(kwargs):
    with pytest.raises(ConfigError):
        resolve_profile("medium", **kwargs)


def test_unknown_profile_is_a_config_error():
    with pytest.raises(ConfigError):
        resolve_profile("extreme")


def test_log_applies_profile_and_overrides(open_log):
    log = open_log(profile="low", queue_depth=3, memory_budget_bytes=4096)
    assert tuple(log.profile) == (3, 5_000, 20, 4096)


def test_log_rejects_negative_retention(tmp_path):
    from streamcore.storage import Log

    with pytest.raises(ConfigError):
        Log(tmp_path / "p", retention_ms=-5)

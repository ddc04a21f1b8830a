"""Test-wide checks: a native run must really have loaded the native code.

`make test` runs the suite twice: once on the native build (this file fails the
session if any capability fell back to pure Python) and once with
STREAMCORE_NO_EXTENSIONS=1.
"""

import os

import pytest

import streamcore
from streamcore import _impl


def pytest_report_header(config):
    return [f"streamcore implementation: {streamcore.implementation()}"]


def pytest_sessionstart(session):
    if os.environ.get("STREAMCORE_NO_EXTENSIONS") == "1":
        bad = {k: v for k, v in streamcore.implementation().items() if v != "reference"}
        if bad:
            raise pytest.UsageError(f"STREAMCORE_NO_EXTENSIONS=1 but native code is active: {bad}")
        return
    fallen = {k: v for k, v in streamcore.implementation().items() if v == "reference"}
    # STREAMCORE_DEV_PARTIAL=1 is for a developer whose native piece is still being
    # written; `make test` and CI never set it.
    if fallen and os.environ.get("STREAMCORE_DEV_PARTIAL") != "1":
        raise pytest.UsageError(
            f"native build did not load for {sorted(fallen)}: {_impl.native_load_errors}. "
            "Build with STREAMCORE_REQUIRE_EXTENSIONS=1 or run with STREAMCORE_NO_EXTENSIONS=1."
        )


def pytest_configure(config):
    # The pytest11 entry point registers streamcore.testing when the package is
    # installed; a source-tree run (PYTHONPATH=python) registers it here instead.
    import streamcore.testing as plugin

    if not config.pluginmanager.is_registered(plugin):
        config.pluginmanager.register(plugin, "streamcore")


@pytest.fixture(scope="session")
def apache_kafka_bootstrap(tmp_path_factory):
    """Bootstrap address of a real Apache Kafka broker (KRaft) on 127.0.0.1, shared by
    the session. Needs java and mvn; their absence is an error, not a skip."""
    from apache_kafka import ApacheKafka

    broker = ApacheKafka(tmp_path_factory.mktemp("apache-kafka")).start()
    try:
        yield broker.bootstrap_servers
    finally:
        broker.stop()

"""Settings as an operator meets them: bad values are one line on stderr, never a traceback;
stray ``STREAMCORE_*`` variables are warnings; the embedded broker and the pytest fixtures
ignore the environment unless asked."""

from __future__ import annotations

import os
import selectors
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import streamcore
from streamcore.errors import ConfigError
from streamcore.protocol import messages as m

from .wire_client import WireClient

pytest_plugins = ["pytester"]

PACKAGE_PARENT = os.path.dirname(os.path.dirname(os.path.abspath(streamcore.__file__)))
RUN_TIMEOUT_S = 60.0


def _env(**extra: str) -> dict[str, str]:
    """The test's environment without STREAMCORE_* settings (the pass switch kept), plus ``extra``."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("STREAMCORE_") or k == "STREAMCORE_NO_EXTENSIONS"
    }
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [PACKAGE_PARENT, os.environ.get("PYTHONPATH")]))
    env.update(extra)
    return env


def _broker_argv(*args: str) -> list[str]:
    return [sys.executable, "-m", "streamcore.cli", "broker", *args]


def _run(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, capture_output=True, text=True, env=env, timeout=RUN_TIMEOUT_S)


def _start(args: list[str], env: dict[str, str], lines: int = 1) -> tuple[subprocess.Popen[bytes], list[str]]:
    """Start a broker process and wait for its first ``lines`` stdout lines (read straight
    from the pipe, so nothing past them is buffered away)."""
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    assert proc.stdout is not None
    fd = proc.stdout.fileno()
    data = b""
    deadline = time.monotonic() + RUN_TIMEOUT_S
    with selectors.DefaultSelector() as sel:
        sel.register(fd, selectors.EVENT_READ)
        while data.count(b"\n") < lines:
            left = deadline - time.monotonic()
            if left <= 0 or not sel.select(left):
                proc.kill()
                pytest.fail(f"no line on stdout within {RUN_TIMEOUT_S} s")
            chunk = os.read(fd, 4096)
            if not chunk:
                _, err = proc.communicate()
                pytest.fail(f"broker exited before listening: {err.decode()}")
            data += chunk
    return proc, data.decode().splitlines()[:lines]


def _stop(proc: subprocess.Popen[bytes]) -> str:
    """SIGTERM, wait, return stderr."""
    proc.send_signal(signal.SIGTERM)
    try:
        _, err = proc.communicate(timeout=RUN_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        proc.kill()
        _, err = proc.communicate()
        pytest.fail("broker did not stop on SIGTERM")
    assert proc.returncode == 0, err.decode()
    return err.decode()


@pytest.fixture
def running_broker(tmp_path: Path) -> Iterator[Callable[..., tuple[subprocess.Popen[bytes], list[str]]]]:
    started: list[subprocess.Popen[bytes]] = []

    def start(
        *args: str, env: dict[str, str] | None = None, lines: int = 1
    ) -> tuple[subprocess.Popen[bytes], list[str]]:
        proc, out = _start(_broker_argv(*args), env if env is not None else _env(), lines)
        started.append(proc)
        return proc, out

    yield start
    for proc in started:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()


def _assert_one_line_error(result: subprocess.CompletedProcess[str], *fragments: str) -> None:
    assert result.returncode != 0
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.stderr
    assert lines[0].startswith("streamcore broker: ")
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


def test_port_out_of_range_is_one_line(tmp_path):
    result = _run(_broker_argv("--data-dir", str(tmp_path / "d"), "--port", "70000"), _env())
    _assert_one_line_error(result, "listeners.port: 70000 is above the maximum 65535")
    assert result.returncode == 2


def test_unknown_log_level_is_one_line_listing_the_choices(tmp_path):
    result = _run(_broker_argv("--data-dir", str(tmp_path / "d"), "--log-level", "chatty"), _env())
    _assert_one_line_error(result, "--log-level", "'chatty'", "debug", "info", "warning", "error")
    assert result.returncode == 2
    result = _run(_broker_argv("--data-dir", str(tmp_path / "d")), _env(STREAMCORE_LOG_LEVEL="chatty"))
    _assert_one_line_error(result, "log.level: 'chatty' is not one of debug, info, warning, error")


def test_missing_config_file_is_one_line(tmp_path):
    result = _run(_broker_argv("--config", str(tmp_path / "absent.toml")), _env())
    _assert_one_line_error(result, "absent.toml", "No such file")


def test_unknown_config_file_key_names_the_closest_setting(tmp_path):
    toml = tmp_path / "b.toml"
    toml.write_text("[storage]\nfsinc = 'always'\n", encoding="utf-8")
    result = _run(_broker_argv("--config", str(toml)), _env())
    _assert_one_line_error(result, "'storage.fsinc'", "did you mean 'storage.fsync'?")


def test_unwritable_data_dir_is_one_line(tmp_path):
    # A path below a regular file cannot be created by anyone, root included.
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    result = _run(_broker_argv("--data-dir", str(blocker / "data"), "--port", "0"), _env())
    _assert_one_line_error(result, f"data directory '{blocker / 'data'}' cannot be used", "--data-dir")
    assert result.returncode == 1


def test_port_in_use_is_one_line_naming_the_address(tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = _run(_broker_argv("--data-dir", str(tmp_path / "d"), "--port", str(port)), _env())
        _assert_one_line_error(
            result, f"cannot listen on 127.0.0.1:{port} (listeners.port): address already in use"
        )
        result = _run(
            _broker_argv("--data-dir", str(tmp_path / "e"), "--port", "0", "--metrics-port", str(port)),
            _env(),
        )
        _assert_one_line_error(result, f"cannot listen on 127.0.0.1:{port} (metrics.http_port)")


def test_a_locked_data_dir_is_one_line(tmp_path, running_broker):
    first, _ = running_broker("--data-dir", str(tmp_path / "d"), "--port", "0")
    result = _run(_broker_argv("--data-dir", str(tmp_path / "d"), "--port", "0"), _env())
    _assert_one_line_error(result, str(tmp_path / "d"), "in use")
    _stop(first)


def test_unknown_environment_variable_is_a_warning_and_the_broker_starts(tmp_path, running_broker):
    env = _env(
        STREAMCORE_BIN="/opt/tools/bin",
        STREAMCORE_STORAGE_FSINC="always",
        STREAMCORE_RETRY_STRATEGY="fixed",
        STREAMCORE_RETRY_INTERVAL="100ms",
        STREAMCORE_RETRY_MULTIPLIER="2",
        STREAMCORE_RETRY_MAX_DELAY="1s",
        STREAMCORE_BOOTSTRAP="127.0.0.1:9092",
    )
    proc, [line] = running_broker("--data-dir", str(tmp_path / "d"), "--port", "0", env=env)
    assert line.startswith("listening on 127.0.0.1:")
    err = _stop(proc)
    warnings = [ln for ln in err.splitlines() if "WARNING" in ln and "environment variable" in ln]
    assert len(warnings) == 2, err
    assert any(
        "STREAMCORE_STORAGE_FSINC" in w and "did you mean STREAMCORE_STORAGE_FSYNC?" in w for w in warnings
    )
    assert any("STREAMCORE_BIN" in w for w in warnings)
    assert "RETRY" not in err and "BOOTSTRAP" not in err


def test_metrics_port_zero_prints_the_chosen_port_after_the_listening_line(tmp_path, running_broker):
    proc, [line, second] = running_broker(
        "--data-dir", str(tmp_path / "d"), "--port", "0", "--metrics-port", "0", lines=2
    )
    assert line.startswith("listening on 127.0.0.1:")
    prefix, _, rest = second.partition("metrics on http://127.0.0.1:")
    assert prefix == "" and rest.endswith("/metrics"), second
    port = int(rest.removesuffix("/metrics"))
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(b"HEAD /metrics HTTP/1.0\r\n\r\n")
        head = s.recv(4096)
    assert head.startswith(b"HTTP/1.0 200 OK")
    _stop(proc)


# -- the embedded broker and the fixtures ---------------------------------------------------


def _partitions_of_new_topic(bootstrap: str) -> int:
    with WireClient(bootstrap) as c:
        resp = c.request(m.MetadataRequest(topics=[m.MetadataRequest_MetadataRequestTopic(name="auto")]), 9)
    [topic] = resp.topics
    assert topic.error_code == 0
    return len(topic.partitions)


def test_embedded_broker_ignores_the_environment_unless_asked(monkeypatch, tmp_path):
    monkeypatch.setenv("STREAMCORE_DEFAULT_PARTITIONS", "3")
    monkeypatch.setenv("STREAMCORE_STORAGE_FSYNC", "not-a-policy")
    monkeypatch.setenv("STREAMCORE_CONFIG", str(tmp_path / "absent.toml"))
    with streamcore.Broker() as broker:
        assert broker.config.topics.default_partitions == 1
        assert broker.config.source("topics.default_partitions") == "default"
        assert _partitions_of_new_topic(broker.bootstrap_servers) == 1
    with pytest.raises(ConfigError, match="absent.toml"):
        streamcore.Broker(use_env=True)
    monkeypatch.delenv("STREAMCORE_CONFIG")
    with pytest.raises(ConfigError, match="storage.fsync"):
        streamcore.Broker(use_env=True)
    monkeypatch.delenv("STREAMCORE_STORAGE_FSYNC")
    with streamcore.Broker(use_env=True) as broker:
        assert broker.config.source("topics.default_partitions") == "env STREAMCORE_DEFAULT_PARTITIONS"
        assert _partitions_of_new_topic(broker.bootstrap_servers) == 3


def test_embedded_broker_keyword_settings_suggest_the_closest_name():
    with pytest.raises(ConfigError, match=r"unknown setting 'fsinc'; did you mean 'fsync'\?"):
        streamcore.Broker(fsinc="always")
    with pytest.raises(ConfigError, match=r"did you mean 'storage_retention_ms'\?"):
        streamcore.Broker(storage_retention_msec=5)
    assert streamcore.Broker(fsync="always", default_partitions=2).config.topics.default_partitions == 2


def test_function_fixture_is_hermetic(monkeypatch, streamcore_broker_factory: Callable[..., Any]):
    monkeypatch.setenv("STREAMCORE_DEFAULT_PARTITIONS", "4")
    assert _partitions_of_new_topic(streamcore_broker_factory().bootstrap_servers) == 1
    assert _partitions_of_new_topic(streamcore_broker_factory(use_env=True).bootstrap_servers) == 4


def test_session_fixture_is_one_broker_for_the_whole_session(pytester: pytest.Pytester, monkeypatch):
    # As tests/conftest.py does: a source-tree run has no installed entry point.
    pytester.makeconftest(
        """
        def pytest_configure(config):
            import streamcore.testing as plugin

            if not config.pluginmanager.is_registered(plugin):
                config.pluginmanager.register(plugin, "streamcore")
        """
    )
    pytester.makepyfile(
        """
        SEEN = []

        def test_first(streamcore_broker_session, streamcore_broker):
            SEEN.append(streamcore_broker_session)
            assert streamcore_broker != streamcore_broker_session

        def test_second(streamcore_broker_session):
            SEEN.append(streamcore_broker_session)
            assert SEEN == [SEEN[0]] * 2
            host, port = SEEN[0].rsplit(":", 1)
            import socket
            socket.create_connection((host, int(port)), timeout=10).close()
        """
    )
    # The inner run starts in its own directory: the source tree must be on an absolute path.
    monkeypatch.setenv(
        "PYTHONPATH", os.pathsep.join(filter(None, [PACKAGE_PARENT, os.environ.get("PYTHONPATH")]))
    )
    result = pytester.runpytest_subprocess("-p", "no:randomly")
    result.assert_outcomes(passed=2)

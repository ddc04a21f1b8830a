"""One data directory, one owner: a second broker, embedded Broker or storage.Log on it fails at once.

Real processes: the first broker is a `streamcore broker` child process, the
second opener is another child or this test process.
"""

from __future__ import annotations

import os
import re
import selectors
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

import streamcore
from streamcore.broker.embedded import Broker
from streamcore.errors import DataDirLockedError
from streamcore.storage import Log

from .wire_client import (
    WireClient,
    batch,
    create_topic,
    fetch_request,
    fetched_partition,
    produce,
    records_of,
)

LISTENING = re.compile(r"^listening on 127\.0\.0\.1:(\d+)$")
TIMEOUT_S = 60.0
PACKAGE_PARENT = os.path.dirname(os.path.dirname(os.path.abspath(streamcore.__file__)))


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [PACKAGE_PARENT, env.get("PYTHONPATH")]))
    return env


def _broker_cmd(data_dir: Path) -> list[str]:
    return [sys.executable, "-m", "streamcore.cli", "broker", "--data-dir", str(data_dir),
            "--host", "127.0.0.1", "--port", "0"]  # fmt: skip


@pytest.fixture
def first_broker(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[str], str, Path]]:
    data_dir = tmp_path / "data"
    proc = subprocess.Popen(
        _broker_cmd(data_dir), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_env()
    )
    try:
        assert proc.stdout is not None
        with selectors.DefaultSelector() as sel:
            sel.register(proc.stdout, selectors.EVENT_READ)
            assert sel.select(TIMEOUT_S), "first broker did not start"
        match = LISTENING.match(proc.stdout.readline().strip())
        assert match, proc.stderr.read() if proc.stderr else ""
        yield proc, f"127.0.0.1:{match.group(1)}", data_dir
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.communicate()


def test_second_broker_process_on_the_same_directory_fails_naming_dir_and_pid(first_broker) -> None:
    proc, _, data_dir = first_broker
    second = subprocess.run(
        _broker_cmd(data_dir), capture_output=True, text=True, env=_env(), timeout=TIMEOUT_S
    )
    assert second.returncode != 0
    assert "listening on" not in second.stdout
    err = second.stderr.strip()
    assert str(data_dir) in err and f"process {proc.pid}" in err, err
    assert len(err.splitlines()) == 1, err  # one clear line, no traceback


def test_embedded_broker_and_log_refuse_a_directory_another_process_holds(first_broker) -> None:
    proc, bootstrap, data_dir = first_broker
    with WireClient(bootstrap) as c:
        create_topic(c, "held")
        assert produce(c, "held", 0, batch([b"acknowledged"])).error_code == 0
    with pytest.raises(DataDirLockedError, match=f"process {proc.pid}"):
        Broker(str(data_dir), port=0).start()
    with pytest.raises(DataDirLockedError, match=re.escape(str(data_dir))):
        Log(data_dir / "held-0")
    # The refusals touched nothing: the first broker still serves what it acknowledged.
    with WireClient(bootstrap) as c:
        fetched = fetched_partition(c.request(fetch_request("held", 0, 0), 11), "held", 0)
        assert [v for _, _, v in records_of(fetched.records)] == [b"acknowledged"]
    assert not (data_dir / "held-0" / ".lock").exists()


def test_lock_dies_with_its_holder_so_sigkill_leaves_no_stale_lock(first_broker) -> None:
    proc, bootstrap, data_dir = first_broker
    with WireClient(bootstrap) as c:
        create_topic(c, "survivor")
        assert produce(c, "survivor", 0, batch([b"x"])).error_code == 0
    proc.send_signal(signal.SIGKILL)
    proc.wait(TIMEOUT_S)
    with Broker(str(data_dir), port=0) as broker, WireClient(broker.bootstrap_servers) as c:
        fetched = fetched_partition(c.request(fetch_request("survivor", 0, 0), 11), "survivor", 0)
        assert [v for _, _, v in records_of(fetched.records)] == [b"x"]


def test_standalone_log_is_exclusive_across_processes_and_excludes_a_broker(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    log_dir = data_dir / "t-0"
    child_src = (
        "import sys\n"
        "from streamcore.errors import DataDirLockedError\n"
        "from streamcore.storage import Log\n"
        "try:\n"
        "    Log(sys.argv[1]).close()\n"
        "except DataDirLockedError as exc:\n"
        "    print(exc); sys.exit(3)\n"
    )
    with Log(log_dir):
        child = subprocess.run(
            [sys.executable, "-c", child_src, str(log_dir)],
            capture_output=True,
            text=True,
            env=_env(),
            timeout=60,
        )
        assert child.returncode == 3, child.stderr
        assert f"process {os.getpid()}" in child.stdout
    # Released on close: the child can open it now.
    child = subprocess.run(
        [sys.executable, "-c", child_src, str(log_dir)],
        capture_output=True,
        text=True,
        env=_env(),
        timeout=60,
    )
    assert child.returncode == 0, child.stdout + child.stderr
    # A standalone log inside a broker's data directory keeps that broker out, and vice versa.
    with Broker(str(data_dir), port=0):
        with pytest.raises(DataDirLockedError):
            Log(log_dir)
    with Log(log_dir):
        with pytest.raises(DataDirLockedError):
            Broker(str(data_dir), port=0).start()

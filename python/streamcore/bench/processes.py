"""Broker processes for benchmarks: start, wait until ready, measure peak memory, stop.

A benchmark runs each broker it measures as a separate process so that its memory
can be read on its own and the load client never shares a GIL with it.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import IO

__all__ = [
    "ServerProcess",
    "compile_bytecode",
    "cpu_seconds",
    "free_port",
    "peak_rss_bytes",
    "process_tree",
    "streamcore_broker_argv",
    "streamcore_broker_process",
    "temporary_streamcore_broker",
]

# The streamcore package directory, found from this file rather than from the package
# facade, so that the bench never needs the facade's public names.
_PACKAGE_DIR = Path(__file__).resolve().parent.parent

_LISTENING = re.compile(r"listening on (\S+):(\d+)")


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port on ``host`` that was free a moment ago (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def _children(pid: int) -> list[int]:
    out: list[int] = []
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return out
    for tid in tasks:
        with contextlib.suppress(OSError):
            out += [int(c) for c in Path(f"/proc/{pid}/task/{tid}/children").read_text().split()]
    return out


def process_tree(pid: int) -> list[int]:
    """``pid`` and all its descendants alive now (Linux /proc; just ``[pid]`` elsewhere)."""
    seen = [pid]
    i = 0
    while i < len(seen) and len(seen) < 10_000:
        seen += [c for c in _children(seen[i]) if c not in seen]
        i += 1
    return seen


def _vm_hwm_bytes(pid: int) -> int | None:
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    for line in text.splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024  # the kernel reports kB
    return None


def peak_rss_bytes(pid: int) -> int | None:
    """Peak resident memory of ``pid`` plus that of each live descendant, in bytes.

    Reads ``VmHWM`` (the high-water mark of RSS) from /proc; for a tree, the sum of
    each process's own peak, which is an upper bound of the tree's peak. None where
    /proc is unavailable or the process is gone.
    """
    peaks = [p for p in (_vm_hwm_bytes(x) for x in process_tree(pid)) if p is not None]
    return sum(peaks) if peaks else None


def _cpu_ticks(pid: int) -> int | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # Fields after the parenthesised command name (which may hold spaces); utime and
    # stime are fields 14 and 15 of the whole line, and cover every thread.
    fields = stat.rpartition(")")[2].split()
    return int(fields[11]) + int(fields[12])


def cpu_seconds(pid: int) -> float | None:
    """CPU time (user + system, all threads) used so far by ``pid`` and its live descendants, s.

    Unlike wall-clock rates, this hardly changes when other programs compete for the
    CPUs, so it tells how much work a broker does per message on a busy machine.
    """
    ticks = [t for t in (_cpu_ticks(x) for x in process_tree(pid)) if t is not None]
    return sum(ticks) / os.sysconf("SC_CLK_TCK") if ticks else None


class ServerProcess:
    """A server started from ``argv`` and stopped with SIGTERM (then SIGKILL).

    Readiness is either a line on stdout matching ``listening on HOST:PORT`` (when
    ``ready_port`` is None) or a TCP connection succeeding to ``127.0.0.1:ready_port``.
    Output after readiness goes to ``log_path`` so a chatty server never blocks on a
    full pipe. The server runs in its own session so that a Ctrl-C at the terminal
    reaches only the benchmark, which then stops it cleanly.
    """

    def __init__(
        self,
        name: str,
        argv: Sequence[str],
        *,
        env: Mapping[str, str] | None = None,
        ready_port: int | None = None,
        host: str = "127.0.0.1",
        start_timeout_s: float = 60.0,
        log_path: str | os.PathLike[str] | None = None,
    ) -> None:
        self.name = name
        self.argv = list(argv)
        self.env = dict(env) if env is not None else None
        self.ready_port = ready_port
        self.host = host
        self.start_timeout_s = start_timeout_s
        self.log_path = Path(log_path) if log_path is not None else None
        self.proc: subprocess.Popen[bytes] | None = None
        self.bootstrap = ""
        self._log: IO[bytes] | None = None
        self._drain: threading.Thread | None = None

    @property
    def pid(self) -> int:
        """Process id of the server (the process started, not its children)."""
        assert self.proc is not None, f"{self.name} not started"
        return self.proc.pid

    def start(self) -> ServerProcess:
        """Start the server and wait until it accepts clients; raise RuntimeError if it cannot."""
        if self.log_path is not None:
            self._log = open(self.log_path, "ab+")
        else:
            # Append mode: the server's stderr and our copy of its stdout share the
            # file, and log_tail() may seek while they write.
            self._log = tempfile.TemporaryFile("ab+")
        stdout = subprocess.PIPE if self.ready_port is None else self._log
        self.proc = subprocess.Popen(
            self.argv,
            stdin=subprocess.DEVNULL,
            stdout=stdout,
            stderr=self._log,
            env=self.env,
            start_new_session=True,
        )
        try:
            if self.ready_port is None:
                self.bootstrap = self._wait_for_line()
            else:
                self._wait_for_port()
                self.bootstrap = f"{self.host}:{self.ready_port}"
        except BaseException:
            self.stop()
            raise
        return self

    def _wait_for_line(self) -> str:
        assert self.proc is not None and self.proc.stdout is not None
        found: list[str] = []
        out = self.proc.stdout

        def read() -> None:
            # Runs until EOF: first looks for the ready line, then copies to the log.
            for raw in out:
                if not found:
                    m = _LISTENING.search(raw.decode("utf-8", "replace"))
                    if m:
                        found.append(f"{m.group(1)}:{m.group(2)}")
                        continue
                if self._log is not None and not self._log.closed:
                    with contextlib.suppress(ValueError, OSError):
                        self._log.write(raw)

        self._drain = threading.Thread(target=read, name=f"{self.name}-stdout", daemon=True)
        self._drain.start()
        deadline = time.monotonic() + self.start_timeout_s
        while not found:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited with {self.proc.returncode}: {self.log_tail()}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"{self.name} not ready after {self.start_timeout_s} s: {self.log_tail()}")
            time.sleep(0.01)
        return found[0]

    def _wait_for_port(self) -> None:
        assert self.proc is not None and self.ready_port is not None
        deadline = time.monotonic() + self.start_timeout_s
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited with {self.proc.returncode}: {self.log_tail()}")
            with contextlib.suppress(OSError), socket.create_connection((self.host, self.ready_port), 0.2):
                return
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"{self.name} not listening after {self.start_timeout_s} s: {self.log_tail()}"
                )
            time.sleep(0.02)

    def peak_rss_bytes(self) -> int | None:
        """Peak RSS of the server and its children so far, in bytes (see :func:`peak_rss_bytes`)."""
        return peak_rss_bytes(self.pid)

    def log_tail(self, limit: int = 2000) -> str:
        """The last ``limit`` characters the server wrote (stdout after readiness, stderr)."""
        if self._log is None or self._log.closed:
            return ""
        with contextlib.suppress(OSError, ValueError):
            self._log.flush()
            pos = self._log.tell()
            self._log.seek(max(0, pos - limit))
            tail = self._log.read(limit)
            self._log.seek(pos)
            return tail.decode("utf-8", "replace")
        return ""

    def stop(self, timeout_s: float = 30.0) -> int | None:
        """SIGTERM the server's process group, wait up to ``timeout_s``, then SIGKILL; return its status."""
        proc = self.proc
        if proc is not None and proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout_s)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(10)
        if self._drain is not None:
            self._drain.join(5)
        if proc is not None and proc.stdout is not None:
            proc.stdout.close()
        if self._log is not None:
            self._log.close()
        return proc.returncode if proc is not None else None

    def __enter__(self) -> ServerProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def streamcore_broker_argv(
    data_dir: str | os.PathLike[str],
    *,
    fsync: str = "interval",
    host: str = "127.0.0.1",
    port: int = 0,
    cprofile_out: str | os.PathLike[str] | None = None,
    python: str = sys.executable,
) -> list[str]:
    """The command that runs our broker as its own process.

    ``streamcore broker`` (through ``python -m streamcore.cli``) when no profile is
    wanted; otherwise :mod:`streamcore.bench.foreground_broker`, which runs the same
    server loop and can wrap it in cProfile.
    """
    common = ["--data-dir", str(data_dir), "--host", host, "--port", str(port), "--fsync", fsync]
    if cprofile_out is None:
        return [python, "-m", "streamcore.cli", "broker", *common]
    return [python, "-m", "streamcore.bench.foreground_broker", *common, "--cprofile", str(cprofile_out)]


def _bytecode_env(env: dict[str, str], bytecode_cache: str | os.PathLike[str] | None) -> None:
    if bytecode_cache is not None:
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        env["PYTHONPYCACHEPREFIX"] = str(bytecode_cache)


def compile_bytecode(bytecode_cache: str | os.PathLike[str], python: str = sys.executable) -> None:
    """Compile the streamcore package's modules into ``bytecode_cache`` (a PYTHONPYCACHEPREFIX).

    A package installed by pip has its bytecode compiled at install time; a source
    tree run with PYTHONDONTWRITEBYTECODE=1 compiles every module at every start,
    which costs start-up time and, for the large generated protocol module, tens of
    MiB of peak memory. Benchmarks measuring memory compile once beforehand so that
    every broker start looks like an installed one.
    """
    env = dict(os.environ)
    _bytecode_env(env, bytecode_cache)
    package_dir = str(_PACKAGE_DIR)
    subprocess.run([python, "-m", "compileall", "-q", package_dir], env=env, check=True, timeout=600)


def streamcore_broker_process(
    data_dir: str | os.PathLike[str],
    *,
    fsync: str = "interval",
    env: Mapping[str, str] | None = None,
    cprofile_out: str | os.PathLike[str] | None = None,
    name: str = "streamcore",
    log_path: str | os.PathLike[str] | None = None,
    bytecode_cache: str | os.PathLike[str] | None = None,
) -> ServerProcess:
    """A :class:`ServerProcess` (not started) running our broker on 127.0.0.1, free port.

    ``env`` entries are added to this process's environment (e.g.
    ``{"STREAMCORE_NO_EXTENSIONS": "1"}``); the package's own source directory is put
    on PYTHONPATH so a source-tree checkout works as well as an installed one.
    ``bytecode_cache``: a directory filled by :func:`compile_bytecode`, used as
    PYTHONPYCACHEPREFIX (and bytecode writing allowed) so the broker starts as an
    installed package does.
    """
    merged = dict(os.environ)
    package_root = str(_PACKAGE_DIR.parent)
    merged["PYTHONPATH"] = os.pathsep.join(p for p in (package_root, merged.get("PYTHONPATH", "")) if p)
    _bytecode_env(merged, bytecode_cache)
    merged.update(env or {})
    argv = streamcore_broker_argv(data_dir, fsync=fsync, cprofile_out=cprofile_out)
    return ServerProcess(name, argv, env=merged, log_path=log_path)


@contextlib.contextmanager
def temporary_streamcore_broker(
    *,
    fsync: str = "interval",
    env: Mapping[str, str] | None = None,
    prefix: str = "streamcore-bench-",
    parent: str | os.PathLike[str] | None = None,
) -> Iterator[ServerProcess]:
    """A started :func:`streamcore_broker_process` on a fresh data directory (a temporary
    directory under ``parent``), stopped and removed on exit; the benchmark commands
    that start their own broker share it."""
    with tempfile.TemporaryDirectory(prefix=prefix, dir=parent) as work:
        server = streamcore_broker_process(Path(work) / "data", fsync=fsync, env=env).start()
        try:
            yield server
        finally:
            server.stop()

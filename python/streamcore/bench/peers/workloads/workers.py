"""Producer and consumer worker processes (``worker.py``) for the latency and
fan-out workloads, and waiting for a group's assignment."""

from __future__ import annotations

import json
import queue
import subprocess
import threading
import time
from typing import IO, Any

from streamcore.bench.peers.workloads.common import (
    WORKER,
    Settings,
    Target,
)


class Worker:
    """A worker.py process whose JSON lines arrive on a queue (read by a thread)."""

    def __init__(self, python: str, args: list[str], name: str) -> None:
        self.name = name
        self.proc = subprocess.Popen(
            [python, str(WORKER), *args],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )
        self.events: queue.Queue[dict[str, Any]] = queue.Queue()
        self._stderr: list[str] = []
        assert self.proc.stdout is not None and self.proc.stderr is not None
        threading.Thread(target=self._read, args=(self.proc.stdout,), daemon=True).start()
        threading.Thread(target=self._keep_stderr, args=(self.proc.stderr,), daemon=True).start()

    def _read(self, stream: IO[str]) -> None:
        for line in stream:
            try:
                self.events.put(json.loads(line))
            except ValueError:
                continue
        self.events.put({"event": "exit"})

    def _keep_stderr(self, stream: IO[str]) -> None:
        for line in stream:
            if len(self._stderr) < 200:
                self._stderr.append(line)

    def send(self, line: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()

    def next_event(self, deadline: float) -> dict[str, Any] | None:
        """The next event, or None at ``deadline`` (time.monotonic())."""
        try:
            return self.events.get(timeout=max(0.0, deadline - time.monotonic()))
        except queue.Empty:
            return None

    def wait_for(self, kind: str, deadline: float) -> dict[str, Any]:
        """Skip events until one of ``kind``; RuntimeError on exit, error or ``deadline``."""
        while True:
            event = self.next_event(deadline)
            if event is None:
                raise TimeoutError(f"{self.name}: no {kind!r} before the deadline; {self.stderr_tail()}")
            if event["event"] == kind:
                return event
            if event["event"] in ("exit", "error"):
                raise RuntimeError(f"{self.name}: {event.get('error', 'exited')}; {self.stderr_tail()}")

    def stderr_tail(self) -> str:
        return "".join(self._stderr)[-800:]

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(10)


def consumer_worker(settings: Settings, target: Target, topic: str, group: str, name: str) -> Worker:
    args = ["consume", "--bootstrap", target.bootstrap, "--topic", topic, "--group", group]
    args += ["--timeout", str(settings.timeout_s * 2)]
    return Worker(settings.python, args, name)


def wait_assigned(consumers: list[Worker], partitions: int, deadline: float) -> None:
    """Return once every consumer holds partitions and together they hold all ``partitions``.

    An eager rebalance revokes everything before assigning, so that state is reached
    only in a generation that includes every consumer; it must also hold for half a
    second with no new event, in case another rebalance follows.
    """
    held = [0] * len(consumers)
    stable_since: float | None = None
    while True:
        now = time.monotonic()
        if now > deadline:
            raise TimeoutError(f"consumer group not assigned {partitions} partitions in time: held {held}")
        changed = False
        for i, worker in enumerate(consumers):
            while True:
                try:
                    event = worker.events.get_nowait()
                except queue.Empty:
                    break
                changed = True
                if event["event"] == "assigned":
                    held[i] = int(event["partitions"])
                elif event["event"] == "revoked":
                    held[i] = 0
                elif event["event"] in ("exit", "error"):
                    raise RuntimeError(f"{worker.name} ended while joining: {worker.stderr_tail()}")
        settled = all(held) and sum(held) == partitions
        if not settled or changed:
            stable_since = now if settled else None
        elif stable_since is not None and now - stable_since >= 0.5:
            return
        time.sleep(0.02)

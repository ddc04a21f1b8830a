"""End to end through the broker: produce 10,000 x 100 B with confluent-kafka, consume them back.

The broker is embedded (``streamcore.Broker``, fsync=interval, background thread) on
127.0.0.1 with a free port and a temporary data directory, started fresh for every
repeat so no run reads another's records. It uses whichever implementation
``streamcore._impl`` selected (set STREAMCORE_NO_EXTENSIONS=1 for the reference one).
confluent-kafka is the load client; without it ``setup`` raises NotImplementedError,
which asv reports as skipped.

- ``time_produce_consume``: produce (acks=1, linger.ms=5, no callbacks) + flush, then a
  new consumer group subscribes and reads all 10,000 (group join included).
- ``peakmem_produce_consume``: peak RSS of the same work (broker and client share the
  process, so this counts both).
- ``track_produce_msgs_per_s`` / ``track_consume_msgs_per_s``: the two halves as rates.
"""

from __future__ import annotations

import uuid
from typing import Any

MESSAGES = 10_000
SIZE = 100
TIMEOUT_S = 120.0


def _load_client() -> Any:
    try:
        import confluent_kafka
    except ImportError as exc:
        raise NotImplementedError("confluent-kafka is not installed") from exc
    return confluent_kafka


class BrokerEndToEnd:
    """Produce then consume 10,000 x 100 B records through an embedded broker."""

    number = 1
    repeat = (1, 5, 60.0)
    warmup_time = 0.0
    timeout = 600.0

    def setup(self) -> None:
        _load_client()
        from streamcore import Broker

        self.broker = Broker(port=0, fsync="interval").start()
        self.bootstrap = self.broker.bootstrap_servers

    def teardown(self) -> None:
        self.broker.stop()

    def _produce(self) -> tuple[str, dict[str, Any]]:
        from streamcore.bench.broker import run_produce

        topic = f"asv-{uuid.uuid4().hex[:10]}"
        result = run_produce(
            self.bootstrap,
            MESSAGES,
            SIZE,
            acks=1,
            linger_ms=5,
            topic=topic,
            delivery_reports=False,
            progress=False,
            timeout_s=TIMEOUT_S,
        )
        return topic, result

    def _consume(self, topic: str) -> dict[str, Any]:
        from streamcore.bench.broker import run_consume

        return run_consume(
            self.bootstrap, topic, MESSAGES, latency=False, progress=False, timeout_s=TIMEOUT_S
        )

    def time_produce_consume(self) -> None:
        topic, _ = self._produce()
        self._consume(topic)

    def peakmem_produce_consume(self) -> None:
        topic, _ = self._produce()
        self._consume(topic)

    def track_produce_msgs_per_s(self) -> float:
        _, result = self._produce()
        return float(result["msgs_per_s"])

    track_produce_msgs_per_s.unit = "msgs/s"  # type: ignore[attr-defined]

    def track_consume_msgs_per_s(self) -> float:
        topic, _ = self._produce()
        return float(self._consume(topic)["msgs_per_s"])

    track_consume_msgs_per_s.unit = "msgs/s"  # type: ignore[attr-defined]

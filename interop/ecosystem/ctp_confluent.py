"""A consume-transform-produce loop with confluent-kafka, for tests/ecosystem/test_exactly_once_loop.py.

Usage: ctp_confluent.py BOOTSTRAP GROUP TRANSACTIONAL_ID INPUT OUTPUT SEED ABORT_PERCENT PAUSE_AFTER

Reads INPUT (read_committed, in the consumer group GROUP) and writes each record to OUTPUT
with the same key and the value prefixed by ``out-``, one transaction per polled batch
that also carries the batch's consumed offsets (``send_offsets_to_transaction``). A seeded
random generator (SEED) aborts ABORT_PERCENT % of the transactions after their records
were produced and flushed; the loop then rewinds the consumer to the batch's first
offsets, so the same records are processed again in a later transaction.

Once this process has committed PAUSE_AFTER records or more (negative: never), it
produces the next batch, flushes it, sends its offsets, prints "paused" and waits without
ending the transaction: the test then kills it with SIGKILL and starts a replacement
with the same transactional id, which must abort what was left open.

Stdout lines: "ready" after init_transactions, "committed N" and "aborted N" after each
transaction (N = records committed by this process so far / records in the aborted
batch), "paused", "fatal ERROR" before an exit 1, "stopped" after a clean stop (SIGTERM).
"""

from __future__ import annotations

import random
import signal
import sys
import time
from typing import Any

from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition

BATCH = 200
STEP_TIMEOUT_S = 30.0


def say(line: str) -> None:
    print(line, flush=True)


def main() -> int:
    if len(sys.argv) != 9:
        print(__doc__, file=sys.stderr)
        return 2
    bootstrap, group, txn_id, input_topic, output_topic = sys.argv[1:6]
    seed, abort_percent, pause_after = int(sys.argv[6]), int(sys.argv[7]), int(sys.argv[8])
    rng = random.Random(seed)
    stopping = False

    def stop(_signum: int, _frame: Any) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, stop)

    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": group,
            "isolation.level": "read_committed",
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
            # The broker's minimum: the replacement's join waits for the killed member's
            # session to expire.
            "session.timeout.ms": 6000,
            "heartbeat.interval.ms": 1000,
        }
    )
    producer = Producer(
        {
            "bootstrap.servers": bootstrap,
            "transactional.id": txn_id,
            "transaction.timeout.ms": 20000,
            "linger.ms": 5,
        }
    )
    producer.init_transactions(STEP_TIMEOUT_S)
    say("ready")
    consumer.subscribe([input_topic])
    committed = 0
    try:
        while not stopping:
            batch = consumer.consume(BATCH, timeout=0.5)
            batch = [m for m in batch if m.error() is None]
            if not batch:
                continue
            first: dict[int, int] = {}
            nxt: dict[int, int] = {}
            for msg in batch:
                first.setdefault(msg.partition(), msg.offset())
                nxt[msg.partition()] = msg.offset() + 1
            producer.begin_transaction()
            try:
                for msg in batch:
                    producer.produce(output_topic, value=b"out-" + msg.value(), key=msg.key())
                    producer.poll(0)
                pause = 0 <= pause_after <= committed
                abort = not pause and rng.randrange(100) < abort_percent
                if abort:
                    producer.flush(STEP_TIMEOUT_S)
                    producer.abort_transaction(STEP_TIMEOUT_S)
                    rewind(consumer, input_topic, first)
                    say(f"aborted {len(batch)}")
                    continue
                positions = [TopicPartition(input_topic, p, o) for p, o in sorted(nxt.items())]
                producer.send_offsets_to_transaction(
                    positions, consumer.consumer_group_metadata(), STEP_TIMEOUT_S
                )
                if pause:
                    producer.flush(STEP_TIMEOUT_S)
                    say("paused")
                    while True:
                        time.sleep(1)
                producer.commit_transaction(STEP_TIMEOUT_S)
            except KafkaException as exc:
                error = exc.args[0]
                if error.fatal() or not error.txn_requires_abort():
                    raise
                # An abortable error (Kafka's rule): abort, process the batch again.
                producer.abort_transaction(STEP_TIMEOUT_S)
                rewind(consumer, input_topic, first)
                say(f"aborted {len(batch)} after {error}")
                continue
            committed += len(batch)
            say(f"committed {committed}")
    except KafkaException as exc:
        say(f"fatal {exc.args[0]}")
        return 1
    consumer.close()
    say("stopped")
    return 0


def rewind(consumer: Consumer, topic: str, first: dict[int, int]) -> None:
    """Seek each partition of the aborted batch back to its first record."""
    for partition, offset in first.items():
        consumer.seek(TopicPartition(topic, partition, offset))


if __name__ == "__main__":
    sys.exit(main())

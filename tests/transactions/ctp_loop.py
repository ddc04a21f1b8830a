"""A consume-transform-produce loop that outlives broker restarts, for
tests/transactions/test_crash_points.py (confluent-kafka).

Usage: ctp_loop.py BOOTSTRAP TRANSACTIONAL_ID GROUP INPUT OUTPUT BATCH SEED ABORT_PERCENT END,END,...

Reads INPUT read_committed from the group's committed offsets (assigned partitions, no
group membership, so a restarted broker has no rebalance to wait for) and writes every
record to OUTPUT with its key and the value prefixed by ``out-``, one transaction per
polled batch of up to BATCH records that also commits the batch's offsets for GROUP.
A seeded generator (SEED) aborts ABORT_PERCENT % of the transactions on purpose.

Kafka's error rules: a retriable error repeats the call (the broker may be down for a
while), an abortable one aborts the transaction, a fatal one (the producer was fenced,
e.g. after the coordinator timed it out) replaces the producer with a new one of the same
transactional id. After any abort the loop goes back to the group's committed offsets,
so the batch is processed again. It stops once the committed offsets reach the END
offsets (one per partition of INPUT).

Stdout: "ready", then "committed N" (records this process has committed),
"aborted N [ERROR]", "replaced ERROR" (a new producer), "done"; "error ERROR" before
exit 1 for anything unexpected.
"""

from __future__ import annotations

import random
import sys
import time
from collections.abc import Callable
from typing import Any

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, KafkaException, Producer, TopicPartition

STEP_TIMEOUT_S = 30.0
#: How long a retriable error may keep repeating before the loop gives up, s.
RETRY_FOR_S = 120.0
# Reconnect quickly to a restarted broker, without librdkafka's re-bootstrap (see FAST in
# test_crash_points.py: confluentinc/librdkafka#5511).
FAST = {
    "reconnect.backoff.ms": 50,
    "reconnect.backoff.max.ms": 300,
    "retry.backoff.ms": 50,
    "metadata.recovery.strategy": "none",
}


class Fatal(Exception):
    """The producer cannot go on; a new one must take over."""


def say(line: str) -> None:
    print(line, flush=True)


def retrying(call: Callable[..., Any], *args: Any) -> Any:
    """``call(*args)`` again while it fails with a retriable error (librdkafka resumes the
    operation); a fatal error raises Fatal, an abortable one its KafkaException."""
    deadline = time.monotonic() + RETRY_FOR_S
    while True:
        try:
            return call(*args)
        except KafkaException as exc:
            error: KafkaError = exc.args[0]
            if error.fatal():
                raise Fatal(str(error)) from exc
            if error.txn_requires_abort() or not error.retriable() or time.monotonic() > deadline:
                raise


def main() -> int:
    if len(sys.argv) != 10:
        print(__doc__, file=sys.stderr)
        return 2
    bootstrap, txn_id, group, input_topic, output_topic = sys.argv[1:6]
    batch_size, seed, abort_percent = int(sys.argv[6]), int(sys.argv[7]), int(sys.argv[8])
    ends = [int(x) for x in sys.argv[9].split(",")]
    rng = random.Random(seed)
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": group,
            "isolation.level": "read_committed",
            "enable.auto.commit": False,
            **FAST,
        }
    )

    def new_producer() -> Producer:
        producer = Producer(
            {"bootstrap.servers": bootstrap, "transactional.id": txn_id, "linger.ms": 5, **FAST}
        )
        retrying(producer.init_transactions, STEP_TIMEOUT_S)
        return producer

    def rewind() -> list[int]:
        """Assign INPUT at the group's committed offsets; returns them."""
        tps = [TopicPartition(input_topic, p) for p in range(len(ends))]
        got = retrying(consumer.committed, tps, STEP_TIMEOUT_S)
        positions = [tp.offset if tp.offset >= 0 else 0 for tp in got]
        consumer.assign(
            [
                TopicPartition(input_topic, p, o if o > 0 else OFFSET_BEGINNING)
                for p, o in enumerate(positions)
            ]
        )
        return positions

    try:
        producer = new_producer()
        say("ready")
        positions = rewind()
        committed = 0
        while positions != ends:
            batch = [m for m in consumer.consume(batch_size, timeout=0.5) if m.error() is None]
            # Records from before a rewind may still be queued: keep the ones in order.
            batch = [m for m in batch if m.offset() >= positions[m.partition()]]
            if not batch:
                continue
            following = list(positions)
            for msg in batch:
                assert msg.offset() == following[msg.partition()], "a gap in the input"
                following[msg.partition()] = msg.offset() + 1
            try:
                producer.begin_transaction()
                for msg in batch:
                    producer.produce(output_topic, key=msg.key(), value=b"out-" + msg.value())
                    producer.poll(0)
                if rng.randrange(100) < abort_percent:
                    retrying(producer.flush, STEP_TIMEOUT_S)
                    retrying(producer.abort_transaction, STEP_TIMEOUT_S)
                    say(f"aborted {len(batch)}")
                    positions = rewind()
                    continue
                offsets = [TopicPartition(input_topic, p, o) for p, o in enumerate(following)]
                metadata = consumer.consumer_group_metadata()
                retrying(producer.send_offsets_to_transaction, offsets, metadata, STEP_TIMEOUT_S)
                retrying(producer.commit_transaction, STEP_TIMEOUT_S)
            except KafkaException as exc:
                error = exc.args[0]
                if not error.txn_requires_abort():
                    raise
                try:
                    retrying(producer.abort_transaction, STEP_TIMEOUT_S)
                except Fatal as fatal:
                    producer = new_producer()
                    say(f"replaced {fatal}")
                say(f"aborted {len(batch)} {error}")
                positions = rewind()
                continue
            except Fatal as fatal:
                # Fenced (or otherwise done for): the commit may or may not have happened,
                # the group's offsets say which.
                producer = new_producer()
                say(f"replaced {fatal}")
                positions = rewind()
                continue
            positions = following
            committed += len(batch)
            say(f"committed {committed}")
    except (KafkaException, Fatal, AssertionError) as exc:
        say(f"error {exc!r}")
        return 1
    finally:
        consumer.close()
    say("done")
    return 0


if __name__ == "__main__":
    sys.exit(main())

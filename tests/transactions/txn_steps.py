"""A confluent-kafka transactional producer for tests/transactions/test_crash_points.py.

Usage: txn_steps.py BOOTSTRAP TRANSACTIONAL_ID FIRST END

Runs transactions numbered FIRST, FIRST+1, ... up to END (inclusive). Transaction ``n``
writes the values ``t<n>-0`` .. ``t<n>-5`` to the partitions 0, 1, 2 of ``out`` (two
each), sends the offsets ``n + 1`` of the partitions of ``in`` for the group ``g``, and
commits, except transaction 1 when END is negative (END = -2: transactions FIRST..2
with transaction 1 aborted after its records were flushed). Every call has a long
timeout, so that a call caught by a broker's death goes on once a broker is back on
the same address.

Stdout: "ready" after init_transactions, then per transaction "t<n> committed
<offsets>" or "t<n> aborted <offsets>" (the group's committed offsets of ``in`` read
after it, comma-separated), or "error <n> <KafkaError>" before exit 1.
"""

from __future__ import annotations

import os
import sys

from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition

STEP_TIMEOUT_S = 60.0
PARTITIONS = 3


def say(line: str) -> None:
    print(line, flush=True)


def main() -> int:
    bootstrap, transactional_id = sys.argv[1], sys.argv[2]
    first, end = int(sys.argv[3]), int(sys.argv[4])
    abort_first = end < 0
    last = abs(end)
    # Reconnect quickly to the restarted broker, without librdkafka's re-bootstrap (see
    # FAST in test_crash_points.py: confluentinc/librdkafka#5511).
    fast = {
        "reconnect.backoff.ms": 50,
        "reconnect.backoff.max.ms": 300,
        "retry.backoff.ms": 50,
        "metadata.recovery.strategy": "none",
    }
    if os.environ.get("TXN_STEPS_DEBUG"):
        # librdkafka's own trace on stderr, for a failing case (e.g. "eos,protocol").
        fast["debug"] = os.environ["TXN_STEPS_DEBUG"]
    producer = Producer({"bootstrap.servers": bootstrap, "transactional.id": transactional_id, **fast})
    group = Consumer({"bootstrap.servers": bootstrap, "group.id": "g", "enable.auto.commit": False, **fast})
    n = first
    try:
        producer.init_transactions(STEP_TIMEOUT_S)
        say("ready")
        for n in range(first, last + 1):
            commit = not (abort_first and n == 1)
            producer.begin_transaction()
            for i in range(2 * PARTITIONS):
                producer.produce("out", value=b"t%d-%d" % (n, i), partition=i % PARTITIONS)
            if not commit:
                producer.flush(STEP_TIMEOUT_S)
                producer.abort_transaction(STEP_TIMEOUT_S)
            else:
                offsets = [TopicPartition("in", p, n + 1) for p in range(PARTITIONS)]
                producer.send_offsets_to_transaction(offsets, group.consumer_group_metadata(), STEP_TIMEOUT_S)
                producer.commit_transaction(STEP_TIMEOUT_S)
            committed = group.committed([TopicPartition("in", p) for p in range(PARTITIONS)], STEP_TIMEOUT_S)
            outcome = "committed" if commit else "aborted"
            say(f"t{n} {outcome} " + ",".join(str(tp.offset) for tp in committed))
    except KafkaException as exc:
        say(f"error {n} {exc.args[0]}")
        return 1
    finally:
        group.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())

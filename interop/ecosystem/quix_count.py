"""Quix Streams count per key for tests/ecosystem; runs in interop/ecosystem's own venv.

Usage: quix_count.py BOOTSTRAP CONSUMER_GROUP STATE_DIR INPUT_TOPIC OUTPUT_TOPIC [GUARANTEE]

GUARANTEE is Quix's processing_guarantee, "at-least-once" (the default) or "exactly-once".
Under exactly-once each checkpoint is one transaction (output and changelog records and
the consumed offsets) of a producer whose transactional.id Quix draws at random at each
start; its transaction.timeout.ms is 10 s here instead of librdkafka's 60 s, so that a
transaction left open by a killed instance is aborted by the coordinator within seconds.

Every input record (string key, string value) adds one to its key's count, kept in Quix's
RocksDB state (backed by a changelog topic that Quix creates); the running count goes to
the output topic as the JSON number under the same key. Stdout carries "stopped" after a
clean stop; SIGTERM stops it gracefully (Quix commits its checkpoint: produced records,
changelog, then offsets). Quix logs to stderr, among it "Recovery successful for …" when
a store was rebuilt from its changelog.
"""

from __future__ import annotations

import sys

from quixstreams import Application, State


def say(line: str) -> None:
    print(line, flush=True)


def main() -> int:
    if len(sys.argv) not in (6, 7):
        print(__doc__, file=sys.stderr)
        return 2
    bootstrap, group, state_dir, input_name, output_name = sys.argv[1:6]
    guarantee = sys.argv[6] if len(sys.argv) == 7 else "at-least-once"
    app = Application(
        broker_address=bootstrap,
        consumer_group=group,
        state_dir=state_dir,
        auto_offset_reset="earliest",
        processing_guarantee=guarantee,
        producer_extra_config={"transaction.timeout.ms": 10_000} if guarantee == "exactly-once" else None,
        commit_interval=0.2,
        # A killed instance leaves its group member behind: the next one is assigned the
        # partitions once that member's session expires, after the broker's minimum (6 s)
        # instead of librdkafka's 45 s.
        consumer_extra_config={"session.timeout.ms": 6000, "heartbeat.interval.ms": 1500},
        loglevel="INFO",
        on_processing_error=None,
    )
    source = app.topic(input_name, key_deserializer="str", value_deserializer="str")
    sink = app.topic(output_name, key_serializer="str", value_serializer="json")

    def count(value: str, state: State) -> int:
        total = int(state.get("count", 0)) + 1
        state.set("count", total)
        return total

    sdf = app.dataframe(source).apply(count, stateful=True)
    sdf.to_topic(sink)

    app.run(sdf)
    say("stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())

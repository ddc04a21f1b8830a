"""Property: any keyed workload with tombstones, appended and cleaned in any interleaving,
reads back with offsets unchanged and increasing and the latest value of every key.

Runs on whichever WAL and cleaner ``streamcore._impl`` selected.
"""

from __future__ import annotations

import os
import random
import shutil
import tempfile

from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from streamcore.codec import decode_batches, encode_batch
from streamcore.storage import Log
from streamcore.storage.cleaner import CompactionSettings, LogCleaner

_NOW = 1_800_000_000_000
_SEGMENT_BYTES = 1024
_EXAMPLES = int(os.environ.get("STREAMCORE_CLEANER_PROP_EXAMPLES", "60"))

# A workload is drawn as its shape (records, keys, tombstone share, batch sizes, how often
# a pass runs and at what clock) plus a seed for the records themselves, so that every
# example writes enough for segments to roll and passes to replace them.
_workload = st.fixed_dictionaries(
    {
        "seed": st.integers(0, 2**32 - 1),
        "records": st.integers(50, 600),
        "keys": st.integers(1, 40),
        "tombstone_percent": st.integers(0, 40),
        "max_batch": st.integers(1, 12),
        "clean_every": st.integers(1, 30),
        "clock_steps_ms": st.lists(st.sampled_from([0, 300, 5_000]), min_size=1, max_size=4),
    }
)


def _read_all(log: Log) -> list[tuple[int, bytes | None, bytes | None]]:
    out = []
    offset = log.log_start_offset
    while offset < log.high_watermark:
        batches = decode_batches(log.read(offset, 1 << 20))
        assert batches
        for batch in batches:
            out.extend((r.offset, r.key, r.value) for r in batch.records)
        offset = batches[-1].last_offset + 1
    return out


@settings(max_examples=_EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(w=_workload)
def test_cleaning_keeps_offsets_and_the_latest_value_of_every_key(w):
    rng = random.Random(w["seed"])
    directory = tempfile.mkdtemp(prefix="streamcore-cleaner-prop-")
    settings_ = CompactionSettings(delete_retention_ms=1_000, segment_bytes=_SEGMENT_BYTES * 2)
    try:
        with Log(directory, fsync="never", segment_bytes=_SEGMENT_BYTES, index_interval_bytes=128) as log:
            cleaner = LogCleaner(lambda: [("p", log)], lambda _k: settings_)
            written: dict[int, tuple[bytes, bytes | None]] = {}
            latest: dict[bytes, int] = {}
            now, appends, left = _NOW, 0, w["records"]
            while left > 0:
                n = min(left, rng.randint(1, w["max_batch"]))
                left -= n
                keys = [b"k%d" % rng.randrange(w["keys"]) for _ in range(n)]
                values = [
                    None
                    if rng.randrange(100) < w["tombstone_percent"]
                    else rng.randbytes(rng.randint(1, 120))
                    for _ in range(n)
                ]
                res = log.append(encode_batch(values, keys=keys, timestamps_ms=[now] * n))
                for i, (key, value) in enumerate(zip(keys, values, strict=True)):
                    written[res.base_offset + i] = (key, value)
                    latest[key] = res.base_offset + i
                appends += 1
                if appends % w["clean_every"] == 0:
                    now += rng.choice(w["clock_steps_ms"])
                    cleaner.clean_log(log, settings_, now)
            event(f"segments replaced: {'some' if cleaner.stats.segments_replaced else 'none'}")
            records = _read_all(log)
            offsets = [o for o, _, _ in records]
            assert offsets == sorted(set(offsets))
            # Every record read is one that was written, at the offset it was written at.
            for offset, key, value in records:
                assert written[offset] == (key, value)
            seen = {key: offset for offset, key, _ in records}
            for key, offset in latest.items():
                value = written[offset][1]
                if value is None:
                    # A tombstone may be gone once its horizon passed; then nothing of the key is left.
                    assert seen.get(key, offset) == offset
                else:
                    assert seen[key] == offset
            assert log.high_watermark == (max(written) + 1 if written else 0)
    finally:
        shutil.rmtree(directory, ignore_errors=True)

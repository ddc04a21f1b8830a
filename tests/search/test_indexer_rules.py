"""What the indexer leaves out and takes back: records a read_committed consumer would not
see (aborted transactions, control batches, an open transaction's records), records the
cleaner removed, and partitions whose topic is deleted or no longer indexed."""

from __future__ import annotations

import json
import os
from typing import Any

from streamcore.broker.transactions.markers import build_marker
from streamcore.codec import encode_batch
from streamcore.storage import Log
from streamcore.storage.cleaner import CompactionSettings, LogCleaner
from streamcore.storage.indexer import Indexer, PartitionIndex, index_directory
from streamcore.storage.txn_index import PartitionTxnState

_NOW = 1_800_000_000_000


def txn_batch(pid: int, words: list[str]) -> bytes:
    return encode_batch(
        [json.dumps({"w": w}).encode() for w in words],
        producer_id=pid,
        producer_epoch=0,
        base_sequence=0,
        transactional=True,
    )


def plain(words: list[str]) -> bytes:
    return encode_batch([json.dumps({"w": w}).encode() for w in words])


def offsets(part: PartitionIndex, query: str) -> list[int]:
    return [offset for _, offset, _ in part.index.search(query, limit=1000)]


def test_aborted_and_open_transactions_and_markers_are_not_indexed(tmp_path: Any) -> None:
    with Log(tmp_path / "t-0", fsync="never") as log:
        log.append(txn_batch(1, ["kept", "kept"]))  # 0-1, committed below
        log.append(txn_batch(2, ["dropped", "dropped"]))  # 2-3, aborted below
        log.append(build_marker(1, 0, commit=True))  # 4
        log.append(plain(["plain"]))  # 5
        log.append(build_marker(2, 0, commit=False))  # 6
        log.append(txn_batch(3, ["pending"]))  # 7, open
        log.append(plain(["late"]))  # 8, above the last stable offset
        part = PartitionIndex(("t", 0), log)
        part.catch_up()
        assert offsets(part, "w:kept") == [0, 1]
        assert offsets(part, "w:plain") == [5]
        assert offsets(part, "w:dropped") == []
        # The open transaction holds the index at its first offset: nothing above it yet.
        assert offsets(part, "w:pending") == [] and offsets(part, "w:late") == []
        assert part.committed_offset == 7
        assert part.lag().records == 2
        log.append(build_marker(3, 0, commit=True))  # 9
        part.catch_up()
        assert offsets(part, "w:pending") == [7] and offsets(part, "w:late") == [8]
        assert offsets(part, "") == [0, 1, 5, 7, 8]
        assert part.committed_offset == 10 and part.lag().records == 0
        part.close()


def test_the_owners_transaction_state_is_used_when_given(tmp_path: Any) -> None:
    with Log(tmp_path / "t-0", fsync="never") as log:
        log.append(txn_batch(1, ["a"]))  # 0
        log.append(build_marker(1, 0, commit=False))  # 1
        log.append(plain(["b"]))  # 2
        state = PartitionTxnState(log)
        state.load()
        # A transaction the owner knows is open (queued, not yet in the log) at offset 2:
        # the index must stay below it even though the log's headers do not show it.
        state.begin(9, 2)
        part = PartitionIndex(("t", 0), log, transactions=lambda: state)
        part.catch_up()
        assert offsets(part, "") == [] and part.committed_offset == 2
        state.drop(9)
        part.catch_up()
        assert offsets(part, "") == [2]
        part.close()
        state.close()


def test_compaction_removes_the_hits_of_the_records_it_removed(tmp_path: Any) -> None:
    with Log(tmp_path / "t-0", fsync="never", segment_bytes=4096, index_interval_bytes=256) as log:
        written = []
        for i in range(300):
            key = f"k{i % 10}".encode()
            value = json.dumps({"n": i, "w": f"gen{i // 10}"}).encode()
            written.append(
                (log.append(encode_batch([value], keys=[key], timestamps_ms=[_NOW])).base_offset, key)
            )
        part = PartitionIndex(("t", 0), log)
        part.catch_up()
        assert len(offsets(part, "")) == 300
        cleaner = LogCleaner(lambda: [("t", log)], lambda _k: CompactionSettings(segment_bytes=4096))
        report = cleaner.clean_log(log, CompactionSettings(segment_bytes=4096), _NOW)
        assert report is not None and report.completed and report.records_kept < report.records_read
        # What the log holds now, below and above the compacted part.
        survivors = []
        at = log.log_start_offset
        from streamcore.codec import decode_batches

        while at < log.high_watermark:
            batches = decode_batches(log.read(at, 1 << 20))
            survivors += [r.offset for b in batches for r in b.records]
            at = batches[-1].last_offset + 1
        assert len(survivors) < 300
        part.catch_up()
        assert offsets(part, "") == survivors
        assert offsets(part, "w:gen0") == [o for o in survivors if o < 10]
        part.close()
        # The pass followed is in the checkpoint: reopening does not re-index again.
        again = PartitionIndex(("t", 0), log)
        assert again._cleaned == part._cleaned and again._cleaned not in (None, "0")
        assert again.step(10_000) == 0
        again.close()


def test_forgotten_partitions_are_never_written_again_and_unlisted_ones_are_closed(tmp_path: Any) -> None:
    with Log(tmp_path / "t-0", fsync="never") as log0, Log(tmp_path / "u-0", fsync="never") as log1:
        log0.append(plain(["x"] * 5))
        log1.append(plain(["y"] * 5))
        listed = [(("t", 0), log0), (("u", 0), log1)]
        indexer = Indexer(lambda: list(listed), batch_records=1, batch_ms=0)
        while indexer.run_once():
            pass
        assert set(indexer._parts) == {("t", 0), ("u", 0)}
        # Deletion: forgotten first, then the directory goes while the log may still be listed.
        indexer.forget([(("t", 0), log0)])
        search_dir = index_directory(log0.directory)
        os.rename(search_dir, search_dir + ".gone")
        log0.append(plain(["x"]))
        for _ in range(3):
            indexer.run_once()
        assert not os.path.exists(search_dir)
        assert ("t", 0) not in indexer._parts
        # search.index turned off for u: its index is committed and released, files kept.
        listed[:] = [(("t", 0), log0)]
        indexer.run_once()
        assert indexer._parts == {}
        assert os.path.isdir(index_directory(log1.directory))
        # A new log object under the deleted key (the topic created again) is indexed.
        listed[:] = []
        indexer.run_once()
        assert indexer._gone == {}
        indexer.stop()

"""What a cleaning pass wrote and counted (returned by both twins)."""

from __future__ import annotations

from typing import NamedTuple

__all__ = ["CleanResult", "CleanStats", "CleanedSegment"]


class CleanedSegment(NamedTuple):
    """One ``.cleaned`` file: the cleaned records of a group of consecutive input segments."""

    #: ``<out_dir>/<base_offset:020d>.log.cleaned``
    path: str
    #: base offset of the group's first input segment (the name the result takes)
    base_offset: int
    #: the input segment paths it replaces, in order
    inputs: list[str]
    #: bytes written (0 when nothing of the group survived)
    size_bytes: int
    batches: int
    records: int
    #: largest batch maxTimestamp written (ms), -1 when none
    max_timestamp: int
    #: modification time given to the file: the last input's (ms since the epoch)
    last_modified_ms: int
    #: (producer id, first offset, marker offset) of each aborted transaction whose
    #: ABORT marker this output keeps because batches of it were still there: the
    #: output's aborted-transaction index entries, in marker order
    aborted_transactions: list[tuple[int, int, int]]


class CleanStats(NamedTuple):
    """Counters of one cleaning pass (bytes, batches, records; ``throttled_ms`` in ms)."""

    bytes_read: int
    bytes_written: int
    batches_read: int
    batches_written: int
    records_read: int
    records_kept: int
    #: older records of a key that has a later one
    superseded_removed: int
    #: tombstones past their delete horizon
    tombstones_removed: int
    #: records without a key
    keyless_removed: int
    #: batches left with no record but kept as a header for their producer's state
    empty_batches_retained: int
    #: records of aborted transactions removed
    aborted_removed: int
    #: transaction markers (control batches) removed
    markers_removed: int
    #: time the I/O throttle slept (ms)
    throttled_ms: int


class CleanResult(NamedTuple):
    """What ``clean_segments`` wrote: one entry per output file, and the pass's counters."""

    segments: list[CleanedSegment]
    stats: CleanStats

"""``streamcore log dump|verify|recover`` run as real subprocesses on logs damaged at test time.

The logs are written through ``streamcore.storage.Log`` (whichever WAL twin this pass
selected) and the subprocess inherits the pass's STREAMCORE_NO_EXTENSIONS setting.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

import streamcore
from storage.batches import make_batch, split_batches
from storage.crash import set_crash_state
from streamcore.errors import StorageError
from streamcore.storage import Log
from streamcore.storage.dir_lock import DirLock

# The subprocess imports the same streamcore as this test run: the installed package in CI
# (where the native extensions live), the source tree in a development checkout.
PYTHON_DIR = os.path.dirname(os.path.dirname(os.path.abspath(streamcore.__file__)))
VALUES = [b"hello", b"\x00\x01\xff"]


def run_log(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = PYTHON_DIR + os.pathsep + env.get("PYTHONPATH", "")
    return subprocess.run(
        [sys.executable, "-m", "streamcore.tools.log", *args],
        input=stdin,
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )


def build(path: str, batches: int = 6, **kwargs) -> list[bytes]:
    """Write ``batches`` two-record batches (offsets 0 .. 2*batches); return them as stored."""
    with Log(path, fsync="never", **kwargs) as log:
        for i in range(batches):
            log.append(make_batch(VALUES, base_timestamp=1000 + 10 * i))
        return split_batches(log.read(0, 1 << 30))


def seg(path: str, base: int = 0) -> str:
    return os.path.join(path, f"{base:020d}.log")


def flip(path: str, at: int) -> None:
    with open(path, "r+b") as fh:
        fh.seek(at)
        byte = fh.read(1)
        fh.seek(at)
        fh.write(bytes([byte[0] ^ 0x20]))


@pytest.fixture
def part(tmp_path) -> str:
    return str(tmp_path / "data" / "events-0")


def test_dump_prints_every_batch_with_offsets_position_size_and_crc(part):
    stored = build(part, 3)
    out = run_log("dump", part)
    assert out.returncode == 0, out.stderr
    lines = [ln for ln in out.stdout.splitlines() if ln.startswith("baseOffset:")]
    assert len(lines) == 3
    size = len(stored[0])
    assert lines[1].startswith(f"baseOffset: 2 lastOffset: 3 count: 2 position: {size} size: {size} ")
    assert all(" valid " in ln and "compression: none" in ln for ln in lines)
    assert "producerId: -1" in lines[0] and "baseTimestamp: 1010" in lines[1]


def test_dump_records_prints_printable_values_as_text_and_others_as_hex(part):
    build(part, 1)
    out = run_log("dump", seg(part), "--records")
    assert out.returncode == 0, out.stderr
    records = [ln for ln in out.stdout.splitlines() if ln.startswith("| offset:")]
    assert records == [
        '| offset: 0 timestamp: 1000 key: null value: "hello" headers: {}',
        "| offset: 1 timestamp: 1001 key: null value: hex:0001ff headers: {}",
    ]


def test_dump_json_is_one_object_per_batch_and_flags_a_bad_crc(part):
    stored = build(part, 3)
    flip(seg(part), len(stored[0]) + 70)
    out = run_log("dump", part, "--json", "--records")
    assert out.returncode == 0, out.stderr
    objs = [json.loads(ln) for ln in out.stdout.splitlines()]
    assert [o["base_offset"] for o in objs] == [0, 2, 4]
    assert [o["crc_valid"] for o in objs] == [True, False, True]
    assert objs[0]["records"][0]["value"] == {"text": "hello", "hex": b"hello".hex()}
    assert objs[0]["records"][1]["value"] == {"text": None, "hex": "0001ff"}
    assert objs[2]["position"] == 2 * len(stored[0]) and objs[2]["last_offset"] == 5


def test_dump_of_a_torn_file_reports_where_the_bytes_stop_framing_batches(part):
    stored = build(part, 3)
    with open(seg(part), "r+b") as fh:
        fh.truncate(3 * len(stored[0]) - 5)
    out = run_log("dump", part)
    assert out.returncode == 1
    assert (
        f"bytes from {2 * len(stored[0])} to" in out.stdout and "runs past the end of the file" in out.stdout
    )


def test_verify_passes_a_sound_log_and_a_data_directory(part):
    build(part, 4)
    build(os.path.join(os.path.dirname(part), "events-1"), 2)
    out = run_log("verify", part)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "sound" in out.stdout and "offsets 0 to 8" in out.stdout
    out = run_log("verify", os.path.dirname(part))
    assert out.returncode == 0, out.stdout
    assert out.stdout.count(": sound (") == 2


def test_verify_reports_a_bit_flip_with_file_byte_and_offset(part):
    stored = build(part, 4)
    flip(seg(part), 2 * len(stored[0]) + 65)
    out = run_log("verify", part)
    assert out.returncode == 1
    assert out.stdout.splitlines() == [
        f"{seg(part)}: batch at byte {2 * len(stored[0])} (offset 4): "
        + out.stdout.split("(offset 4): ")[1].strip()
    ]
    assert "CRC32C mismatch" in out.stdout


def test_verify_reports_a_missing_segment_and_a_wrong_index(part):
    build(part, 8, segment_bytes=200)
    bases = sorted(int(n[:20]) for n in os.listdir(part) if n.endswith(".log"))
    assert len(bases) >= 3
    os.unlink(seg(part, bases[1]))
    index = os.path.join(part, f"{bases[0]:020d}.index")
    with open(index, "r+b") as fh:
        fh.seek(4)
        fh.write((7).to_bytes(4, "big"))  # first entry's position: not a batch start
    out = run_log("verify", part)
    assert out.returncode == 1
    lines = out.stdout.splitlines()
    assert any(f"starts at offset {bases[2]}" in ln and "missing" in ln for ln in lines), lines
    assert any(ln.startswith(index) and "position 7 is not the start of a batch" in ln for ln in lines), lines
    # the orphaned index files of the missing segment's files are not counted twice
    assert len(lines) == 2, lines


def test_verify_of_a_path_that_is_no_log_is_one_line_and_non_zero(tmp_path):
    out = run_log("verify", str(tmp_path / "nope"))
    assert out.returncode == 1
    assert out.stderr.count("\n") == 1 and "not a directory" in out.stderr


def test_recover_needs_yes_without_a_terminal_and_changes_nothing(part):
    stored = build(part, 4)
    flip(seg(part), len(stored[0]) + 70)
    before = open(seg(part), "rb").read()
    out = run_log("recover", "--truncate", part, stdin="y\n")
    assert out.returncode != 0
    assert "pass --yes" in out.stderr
    # it said what it would drop: file, position, offsets and bytes
    assert f"cut {seg(part)} at byte {len(stored[0])}" in out.stdout
    assert f"drop {3 * len(stored[0])} bytes: offsets 2 to 7" in out.stdout
    assert open(seg(part), "rb").read() == before


def test_recover_truncates_at_the_damage_of_a_refused_log_and_it_opens_again(part):
    stored = build(part, 5)
    flip(seg(part), 3 * len(stored[0]) + 70)
    set_crash_state(part, 10)  # everything was fsynced: the damage is below the recovery point
    with pytest.raises(StorageError, match="streamcore log recover --truncate"):
        Log(part)
    out = run_log("recover", "--truncate", part, "--yes")
    assert out.returncode == 0, out.stdout + out.stderr
    assert "the log opens and ends at offset 6" in out.stdout
    assert f"dropped {2 * len(stored[0])} bytes: offsets 6 to 9" in out.stdout
    with Log(part) as log:
        assert log.high_watermark == 6
        assert split_batches(log.read(0, 1 << 30)) == stored[:3]
    assert run_log("verify", part).returncode == 0


def test_recover_works_after_a_clean_stop(part):
    stored = build(part, 4)
    flip(seg(part), 2 * len(stored[0]) + 70)
    assert os.path.exists(os.path.join(part, ".clean_shutdown"))
    out = run_log("recover", "--truncate", part, "--yes")
    assert out.returncode == 0, out.stdout + out.stderr
    with Log(part) as log:
        assert split_batches(log.read(0, 1 << 30)) == stored[:2]
        assert log.high_watermark == 4


def test_recover_drops_the_segments_after_a_missing_one(part):
    build(part, 8, segment_bytes=200)
    bases = sorted(int(n[:20]) for n in os.listdir(part) if n.endswith(".log"))
    keep = open(seg(part, bases[0]), "rb").read()
    os.unlink(seg(part, bases[1]))
    set_crash_state(part, 16)
    out = run_log("recover", "--truncate", part, "--yes")
    assert out.returncode == 0, out.stdout + out.stderr
    assert f"delete {seg(part, bases[2])}" in out.stdout
    with Log(part) as log:
        assert log.high_watermark == bases[1]
        assert b"".join(split_batches(log.read(0, 1 << 30)))[8:] == keep[8:]
    assert sorted(n for n in os.listdir(part) if n.endswith(".log")) == [
        os.path.basename(seg(part, bases[0]))
    ]


def test_recover_refuses_while_a_broker_or_a_log_holds_the_directory(part):
    stored = build(part, 3)
    flip(seg(part), len(stored[0]) + 70)
    before = open(seg(part), "rb").read()
    with DirLock(os.path.dirname(part)):  # what a broker holds on its data directory
        out = run_log("recover", "--truncate", part, "--yes")
    assert out.returncode == 1
    assert "in use" in out.stderr and out.stderr.count("\n") == 1
    with Log(part):  # a standalone opener of the partition
        out = run_log("recover", "--truncate", part, "--yes")
    assert out.returncode == 1 and "in use" in out.stderr
    assert open(seg(part), "rb").read() == before


def test_recover_of_a_sound_log_changes_nothing(part):
    build(part, 3)
    out = run_log("recover", "--truncate", part)
    assert out.returncode == 0
    assert "nothing to truncate" in out.stdout

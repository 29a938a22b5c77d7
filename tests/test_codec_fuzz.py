"""Damaged files: seeded byte flips, truncations and splices never crash and never decode wrongly."""

from __future__ import annotations

import random
import struct

import numpy as np
import pytest

from sparsecodec.codec import ChecksumError, CompressedFileReader, FormatError
from codec_helpers import write_sample_file

CASES = 400
COUNTS = (0, 1, 12, 150, 600, 3)


@pytest.fixture(scope="module")
def sample(tmp_path_factory):
    """A valid file, its bytes, its decoded records and the offsets of its chunks."""
    path = tmp_path_factory.mktemp("fuzz") / "valid.scz"
    write_sample_file(path, counts=COUNTS)
    with CompressedFileReader(path) as reader:
        records = [(info, record) for info, record in reader.records()]
        header_end = reader.data_offset
    return path.read_bytes(), records, header_end


def mutate(data: bytes, rng: random.Random, boundaries: list[int]) -> bytes:
    """Return ``data`` damaged in one of several ways, chosen by ``rng``."""
    kind = rng.randrange(7)
    buffer = bytearray(data)
    if kind == 0:
        position = rng.randrange(len(buffer))
        buffer[position] ^= 1 << rng.randrange(8)
    elif kind == 1:
        position = rng.randrange(len(buffer))
        buffer[position] = (buffer[position] + rng.randrange(1, 256)) % 256
    elif kind == 2:
        for _ in range(rng.randrange(2, 9)):
            buffer[rng.randrange(len(buffer))] = rng.randrange(256)
    elif kind == 3:
        buffer = buffer[:rng.randrange(len(buffer))]
    elif kind == 4:
        buffer = buffer[:rng.choice(boundaries)]
    elif kind == 5:
        start = rng.randrange(len(buffer))
        del buffer[start:start + rng.randrange(1, 64)]
    else:
        position = rng.randrange(len(buffer))
        buffer[position:position] = bytes(rng.randrange(256) for _ in range(rng.randrange(1, 16)))
    return bytes(buffer)


def same_record(a, b) -> bool:
    return (a.wedge_id == b.wedge_id and a.signal_count == b.signal_count
            and np.array_equal(a.coords, b.coords) and np.array_equal(a.values.view(np.uint16), b.values.view(np.uint16)))


def test_fuzz_strict_reader(sample, tmp_path):
    data, records, _ = sample
    boundaries = sorted({info.offset for info, _ in records} | {info.offset + info.record_bytes for info, _ in records})
    rng = random.Random(20240607)
    path = tmp_path / "damaged.scz"
    outcomes = {"error": 0, "identical": 0}
    for case in range(CASES):
        damaged = mutate(data, rng, boundaries)
        if damaged == data:
            continue
        path.write_bytes(damaged)
        try:
            with CompressedFileReader(path) as reader:
                read = list(reader.records())
        except FormatError:
            outcomes["error"] += 1
            continue
        # Only a change that leaves every record intact may read without error.
        assert len(read) == len(records), f"case {case}: {len(read)} records read silently"
        for (_, got), (_, expected) in zip(read, records):
            assert same_record(got, expected), f"case {case}: record {got.wedge_id} decoded differently"
        outcomes["identical"] += 1
    assert outcomes["error"] >= CASES * 0.9, outcomes


def test_fuzz_skip_damaged_recovers_only_intact_records(sample, tmp_path):
    data, records, header_end = sample
    boundaries = sorted({info.offset for info, _ in records} | {info.offset + info.record_bytes for info, _ in records})
    rng = random.Random(77)
    path = tmp_path / "damaged.scz"
    recovered_some = 0
    for case in range(CASES):
        damaged = mutate(data, rng, boundaries)
        if damaged == data:
            continue
        path.write_bytes(damaged)
        try:
            reader = CompressedFileReader(path)
        except FormatError:
            # The header must be intact for any recovery; anything else is a bug.
            assert damaged[:header_end] != data[:header_end], f"case {case}: intact header rejected"
            continue
        with reader:
            read = list(reader.records(skip_damaged=True))
        for info, record in read:
            assert same_record(record, records[info.index][1]), f"case {case}: record {info.index} differs"
        indexes = [info.index for info, _ in read]
        assert indexes == sorted(set(indexes)), f"case {case}: indexes {indexes}"
        if len(read) < len(records) or not reader.complete:
            assert reader.damaged, f"case {case}: {len(read)} of {len(records)} records and no damage reported"
        if reader.complete:
            assert not reader.damaged
        recovered_some += bool(read)
    assert recovered_some > CASES // 2


def test_skip_damaged_names_the_damaged_record(sample, tmp_path):
    data, records, _ = sample
    info = records[3][0]
    damaged = bytearray(data)
    damaged[info.offset + info.record_bytes - 8] ^= 0xFF
    path = tmp_path / "damaged.scz"
    path.write_bytes(bytes(damaged))

    with pytest.raises(ChecksumError, match=r"record 3 \(wedge id '0-3-1-3', unverified\)"):
        list(CompressedFileReader(path).records())

    with CompressedFileReader(path) as reader:
        read = list(reader.records(skip_damaged=True))
        damage = reader.damaged
    assert [got.index for got, _ in read] == [0, 1, 2, 4, 5]
    assert len(damage) == 1
    assert damage[0].lost_indexes == (3,)
    assert damage[0].wedge_id == "0-3-1-3"
    assert (damage[0].start, damage[0].end) == (info.offset, info.offset + info.record_bytes)
    assert "record 3 (wedge id '0-3-1-3', unverified)" in damage[0].describe()


def test_skip_damaged_resyncs_after_broken_length(sample, tmp_path):
    data, records, _ = sample
    info = records[2][0]
    damaged = bytearray(data)
    struct.pack_into("<I", damaged, info.offset + 4, 0x00FFFFFF)
    path = tmp_path / "length.scz"
    path.write_bytes(bytes(damaged))
    with CompressedFileReader(path) as reader:
        read = list(reader.records(skip_damaged=True))
        assert [got.index for got, _ in read] == [0, 1, 3, 4, 5]
        assert reader.damaged[0].lost_indexes == (2,)


def test_skip_damaged_truncated_file_keeps_prefix(sample, tmp_path):
    data, records, _ = sample
    info = records[4][0]
    path = tmp_path / "cut.scz"
    path.write_bytes(data[:info.offset + 30])
    with CompressedFileReader(path) as reader:
        read = list(reader.records(skip_damaged=True))
        assert [got.index for got, _ in read] == [0, 1, 2, 3]
        assert not reader.complete
        (region,) = reader.damaged
    assert region.first_index == 4
    assert region.lost_indexes == ()
    assert "from record 4 on" in region.describe()


def test_skip_damaged_cut_at_record_boundary(sample, tmp_path):
    data, records, _ = sample
    info = records[2][0]
    path = tmp_path / "boundary.scz"
    path.write_bytes(data[:info.offset])
    with CompressedFileReader(path) as reader:
        assert len(list(reader.records(skip_damaged=True))) == 2
        assert "without the end trailer" in reader.damaged[0].reason


def test_skip_damaged_reports_removed_record(sample, tmp_path):
    data, records, _ = sample
    info = records[1][0]
    path = tmp_path / "removed.scz"
    path.write_bytes(data[:info.offset] + data[info.offset + info.record_bytes:])
    with CompressedFileReader(path) as reader:
        read = list(reader.records(skip_damaged=True))
        assert [got.index for got, _ in read] == [0, 2, 3, 4, 5]
        assert reader.damaged[0].lost_indexes == (1,)
        assert reader.damaged[0].reason == "records missing from the file"

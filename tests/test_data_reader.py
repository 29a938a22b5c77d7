"""Reading and writing wedge files, manifests and the occupancy table, including every error."""

from __future__ import annotations

import numpy as np
import pytest

from sparsecodec.data import (
    FILE_SHAPE,
    WEDGE_SHAPE,
    OccupancyRecord,
    WedgeId,
    load_wedge,
    read_manifest,
    read_occupancy_table,
    save_wedge,
    write_manifest,
    write_occupancy_table,
)


def random_wedge(seed: int = 0, occupancy: float = 0.05) -> np.ndarray:
    rng = np.random.default_rng(seed)
    adc = rng.integers(64, 1024, WEDGE_SHAPE).astype(np.uint16)
    adc[rng.random(WEDGE_SHAPE) > occupancy] = 0
    return adc


def test_save_load_round_trip(tmp_path):
    adc = random_wedge()
    path = tmp_path / "12-2_3-1" / "wedge.npy"
    save_wedge(path, adc)
    assert np.load(path).shape == FILE_SHAPE
    assert np.load(path).dtype == np.uint16
    loaded = load_wedge(path)
    assert loaded.dtype == np.uint16
    assert np.array_equal(loaded, adc)
    assert [p.name for p in path.parent.iterdir()] == ["wedge.npy"], "temporary file left behind"


def test_save_overwrites_atomically(tmp_path):
    path = tmp_path / "wedge.npy"
    save_wedge(path, random_wedge(1))
    second = random_wedge(2)
    save_wedge(path, second)
    assert np.array_equal(load_wedge(path), second)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["wedge.npy"]


def test_load_accepts_whole_float_counts(tmp_path):
    adc = random_wedge(3)
    path = tmp_path / "float.npy"
    np.save(path, adc.transpose(1, 2, 0).astype(np.float32))
    assert np.array_equal(load_wedge(path), adc)


def _write_raw(path, array):
    np.save(path, array)
    return path


@pytest.mark.parametrize(
    ("array", "error", "match"),
    [
        (np.zeros((192, 249, 15), np.uint16), ValueError, r"expected shape \(192, 249, 16\)"),
        (np.zeros((16, 192, 249), np.uint16), ValueError, r"expected shape \(192, 249, 16\)"),
        (np.zeros(FILE_SHAPE, bool), TypeError, "expected an integer dtype"),
        (np.zeros(FILE_SHAPE, np.complex64), TypeError, "expected an integer dtype"),
        (np.full(FILE_SHAPE, -1, np.int16), ValueError, r"must be in 0\.\.1023, found -1"),
        (np.full(FILE_SHAPE, 1024, np.uint16), ValueError, r"must be in 0\.\.1023, found 1024"),
        (np.full(FILE_SHAPE, np.nan, np.float32), ValueError, "must be finite, found nan"),
        (np.full(FILE_SHAPE, 70.5, np.float32), ValueError, "must be whole numbers, found 70.5"),
    ],
    ids=["layers", "project-order", "bool", "complex", "negative", "above-1023", "nan", "fraction"],
)
def test_load_rejects_bad_array(tmp_path, array, error, match):
    path = _write_raw(tmp_path / "bad.npy", array)
    with pytest.raises(error, match=match) as raised:
        load_wedge(path)
    assert str(path) in str(raised.value)


def test_load_rejects_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="wedge file not found"):
        load_wedge(tmp_path / "nothing.npy")


def test_load_rejects_truncated_file(tmp_path):
    path = tmp_path / "truncated.npy"
    save_wedge(path, random_wedge())
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match="not a readable .npy array") as raised:
        load_wedge(path)
    assert str(path) in str(raised.value)


def test_load_rejects_corrupted_header(tmp_path):
    path = tmp_path / "corrupt.npy"
    path.write_bytes(b"\x93NUMPY\x01\x00garbage" + bytes(100))
    with pytest.raises(ValueError, match="not a readable .npy array"):
        load_wedge(path)


def test_load_rejects_text_file(tmp_path):
    path = tmp_path / "notes.npy"
    path.write_text("layer, azimuth, time\n")
    with pytest.raises(ValueError, match=r"not a \.npy file \(it does not start with the \.npy magic string") as raised:
        load_wedge(path)
    assert str(path) in str(raised.value)


def test_load_rejects_archive(tmp_path):
    path = tmp_path / "archive.npy"
    with open(path, "wb") as stream:
        np.savez(stream, a=np.zeros(3))
    with pytest.raises(ValueError, match="expected a single .npy array"):
        load_wedge(path)


def test_save_rejects_bad_wedge(tmp_path):
    with pytest.raises(ValueError, match=r"adc: expected shape \(16, 192, 249\)"):
        save_wedge(tmp_path / "x.npy", np.zeros(FILE_SHAPE, np.uint16))
    with pytest.raises(ValueError, match=r"must be in 0\.\.1023"):
        save_wedge(tmp_path / "x.npy", np.full(WEDGE_SHAPE, 2000, np.uint16))
    assert list(tmp_path.iterdir()) == []


def _dataset(tmp_path, count=3):
    ids = [WedgeId(5, event, 0, 2) for event in range(count)]
    for number, wedge in enumerate(ids):
        save_wedge(tmp_path / wedge.relative_path(), random_wedge(number))
    return ids


def test_manifest_round_trip(tmp_path):
    ids = _dataset(tmp_path)
    write_manifest(tmp_path, "train", [wedge.relative_path() for wedge in ids[:2]])
    write_manifest(tmp_path, "test", [tmp_path / ids[2].relative_path()])
    assert (tmp_path / "test.txt").read_text() == f"{ids[2].relative_path().as_posix()}\n"
    train = read_manifest(tmp_path, "train")
    assert [WedgeId.from_path(path) for path in train] == ids[:2]
    assert all(path.is_absolute() or path.exists() for path in train)


def test_manifest_skips_blank_lines(tmp_path):
    ids = _dataset(tmp_path, 1)
    (tmp_path / "train.txt").write_text(f"\n{ids[0].relative_path().as_posix()}\n\n")
    assert len(read_manifest(tmp_path, "train")) == 1


def test_manifest_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="dataset root not found"):
        read_manifest(tmp_path / "missing", "train")
    with pytest.raises(FileNotFoundError, match=r"manifest not found: .*train\.txt"):
        read_manifest(tmp_path, "train")
    (tmp_path / "test.txt").write_text("12-2_0-0/absent.npy\n")
    with pytest.raises(FileNotFoundError, match=r"test\.txt:1: listed wedge file not found: .*absent\.npy"):
        read_manifest(tmp_path, "test")
    with pytest.raises(ValueError, match="split must be one of"):
        read_manifest(tmp_path, "validation")


def test_occupancy_table_round_trip(tmp_path):
    records = [
        OccupancyRecord(WedgeId(1, 0, 0, 3), "train", 0.108),
        OccupancyRecord(WedgeId(1, 0, 1, 3), "test", 0.0123456789),
    ]
    write_occupancy_table(tmp_path, records)
    text = (tmp_path / "occupancy_by_wedge.csv").read_text()
    assert text.splitlines()[0] == "experiment,event,side,sector,split,occupancy"
    back = read_occupancy_table(tmp_path)
    assert [record.wedge for record in back] == [record.wedge for record in records]
    assert [record.split for record in back] == ["train", "test"]
    assert back[1].occupancy == pytest.approx(0.012346, abs=1e-6)


def test_occupancy_table_ignores_extra_columns(tmp_path):
    (tmp_path / "occupancy_by_wedge.csv").write_text(
        ",split,occupancy,sector,side,event,experiment\n0,test,0.25,4,1,9,3076\n"
    )
    (record,) = read_occupancy_table(tmp_path)
    assert record.wedge == WedgeId(3076, 9, 1, 4)
    assert record.occupancy == 0.25


@pytest.mark.parametrize(
    ("content", "match"),
    [
        ("experiment,event,side,sector,split\n", r"missing column\(s\) \['occupancy'\]"),
        ("experiment,event,side,sector,split,occupancy\n1,2,3,4,train,0.1\n", r":2: invalid wedge id: .*side must be in 0\.\.1"),
        ("experiment,event,side,sector,split,occupancy\n1,x,0,4,train,0.1\n", r"column 'event' must be an integer"),
        ("experiment,event,side,sector,split,occupancy\n1,2,0,4,train,high\n", "occupancy must be a number"),
        ("experiment,event,side,sector,split,occupancy\n1,2,0,4,train,1.5\n", r"occupancy must be in 0\.\.1"),
    ],
    ids=["missing-column", "bad-side", "bad-event", "bad-occupancy", "occupancy-range"],
)
def test_occupancy_table_errors(tmp_path, content, match):
    (tmp_path / "occupancy_by_wedge.csv").write_text(content)
    with pytest.raises(ValueError, match=match):
        read_occupancy_table(tmp_path)


def test_occupancy_table_missing(tmp_path):
    with pytest.raises(FileNotFoundError, match="occupancy table not found"):
        read_occupancy_table(tmp_path)

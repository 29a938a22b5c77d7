"""Golden files of every format version decode to their recorded content."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from sparsecodec.codec import CompressedFileReader
from sparsecodec.codec.format import SUPPORTED_VERSIONS

GOLDEN = Path(__file__).resolve().parent / "golden"
GOLDEN_FILES = sorted(GOLDEN.glob("v*/*.scz"))


def test_every_supported_version_has_golden_files():
    versions = {int(path.parent.name[1:]) for path in GOLDEN_FILES}
    assert versions == set(SUPPORTED_VERSIONS)


@pytest.mark.parametrize("path", GOLDEN_FILES, ids=lambda path: f"{path.parent.name}/{path.name}")
def test_golden_file_decodes(path):
    expected = json.loads(path.with_suffix(".json").read_text())
    with CompressedFileReader(path) as reader:
        assert reader.version == int(path.parent.name[1:])
        assert json.loads(reader.header.to_json()) == expected["header"]
        read = list(reader.records())
        assert reader.complete

    assert len(read) == len(expected["records"])
    for (info, record), wanted in zip(read, expected["records"]):
        assert record.wedge_id == wanted["wedge_id"]
        assert record.signal_count == wanted["signal_count"]
        assert info.coordinate_coding == wanted["coordinate_coding"]
        assert info.value_coding == wanted["value_coding"]
        np.testing.assert_array_equal(record.coords, np.array(wanted["coords"], dtype=np.int32).reshape(-1, 3))
        np.testing.assert_array_equal(record.values.view(np.uint16), np.array(wanted["float16_bits"], dtype=np.uint16))


def test_golden_v1_covers_every_coding():
    expected = json.loads((GOLDEN / "v1" / "sample.json").read_text())
    codings = {(r["coordinate_coding"], r["value_coding"]) for r in expected["records"] if r["coords"]}
    assert {c for c, _ in codings} == {"bitpacked", "delta-zstd"}
    assert {v for _, v in codings} == {"raw", "zstd"}

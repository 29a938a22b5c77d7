"""Wedge ids, file naming and the one place where axes are transposed."""

from __future__ import annotations

from pathlib import PurePath

import numpy as np
import pytest

from sparsecodec.data import FILE_SHAPE, WEDGE_SHAPE, WedgeId, from_file_layout, to_file_layout
from sparsecodec.data.layout import EVENT_WEDGE_ORDER, WEDGES_PER_EVENT


def test_wedge_id_string_round_trip():
    wedge = WedgeId(3076, 7, 1, 11)
    assert str(wedge) == "3076-7-1-11"
    assert WedgeId.from_string(str(wedge)) == wedge


def test_wedge_id_path_is_public_layout():
    wedge = WedgeId(12, 3, 0, 9)
    expected = "12-2_9-0/AuAu200_170kHz_10C_Iter2_12.xml_TPCMLDataInterface_3.npy"
    assert wedge.relative_path() == PurePath(expected)
    assert WedgeId.from_path(expected) == wedge
    assert WedgeId.from_path(f"/data/outer/{expected}") == wedge


@pytest.mark.parametrize(
    ("fields", "error", "match"),
    [
        ((0, 0, 2, 0), ValueError, r"side must be in 0\.\.1, got 2"),
        ((0, 0, 0, 12), ValueError, r"sector must be in 0\.\.11, got 12"),
        ((-1, 0, 0, 0), ValueError, r"experiment must be in >= 0, got -1"),
        ((0, 1.5, 0, 0), TypeError, r"event must be an int, got 1\.5"),
        ((0, 0, True, 0), TypeError, r"side must be an int, got True"),
    ],
)
def test_wedge_id_rejects_bad_fields(fields, error, match):
    with pytest.raises(error, match=match):
        WedgeId(*fields)


@pytest.mark.parametrize("text", ["1-2-3", "a-b-c-d", "1-2-0-x", "", "1--0-0"])
def test_wedge_id_rejects_bad_string(text):
    with pytest.raises(ValueError, match="invalid wedge id"):
        WedgeId.from_string(text)


def test_wedge_id_rejects_foreign_file_name():
    with pytest.raises(ValueError, match="does not follow the public layout"):
        WedgeId.from_path("12-2_0-0/some_other_name.npy")


def test_voxel_keeps_its_position_through_file_layout():
    adc = np.zeros(WEDGE_SHAPE, dtype=np.uint16)
    adc[5, 17, 203] = 900
    stored = to_file_layout(adc)
    assert stored.shape == FILE_SHAPE
    assert stored.flags["C_CONTIGUOUS"]
    assert stored[17, 203, 5] == 900
    assert np.count_nonzero(stored) == 1
    back = from_file_layout(stored)
    assert back[5, 17, 203] == 900
    assert np.array_equal(back, adc)


def test_transposes_reject_wrong_shape():
    with pytest.raises(ValueError, match=r"\(layer, azimuth, time\)"):
        to_file_layout(np.zeros(FILE_SHAPE, dtype=np.uint16))
    with pytest.raises(ValueError, match=r"\(azimuth, time, layer\)"):
        from_file_layout(np.zeros(WEDGE_SHAPE, dtype=np.uint16))


def test_event_wedge_order_is_side_major():
    assert len(EVENT_WEDGE_ORDER) == WEDGES_PER_EVENT == 24
    assert EVENT_WEDGE_ORDER[0] == (0, 0)
    assert EVENT_WEDGE_ORDER[11] == (0, 11)
    assert EVENT_WEDGE_ORDER[12] == (1, 0)
    assert len(set(EVENT_WEDGE_ORDER)) == 24

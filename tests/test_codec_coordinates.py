"""Coordinate and value coding of wedge records, against hand-built reference bytes."""

from __future__ import annotations

import numpy as np
import pytest
import zstandard

from sparsecodec.codec import FormatError
from sparsecodec.codec.coordinates import (
    BITPACKED,
    DELTA_ZSTD,
    RAW,
    ZSTD,
    bit_width,
    coords_from_index,
    decode_coordinates,
    decode_values,
    encode_coordinates,
    encode_values,
    linear_index,
)
from codec_helpers import SMALL_SHAPE, TPC_SHAPE, random_key_points

COMPRESSOR = zstandard.ZstdCompressor(level=19)
DECOMPRESSOR = zstandard.ZstdDecompressor()


def sorted_index(count, shape=TPC_SHAPE, seed=0):
    coords, _ = random_key_points(count, shape, seed)
    return np.sort(linear_index(coords, shape))


def reference_bitpacked(index, shape):
    """Pack with Python strings of '0'/'1', independent of the numpy implementation."""
    bits = "".join(
        format(layer, f"0{bit_width(shape[0])}b") + format(azimuth, f"0{bit_width(shape[1])}b")
        + format(time, f"0{bit_width(shape[2])}b")
        for layer, azimuth, time in coords_from_index(index, shape).tolist()
    )
    bits += "0" * (-len(bits) % 8)
    return bytes(int(bits[i:i + 8], 2) for i in range(0, len(bits), 8))


def test_bit_width_of_tpc_axes():
    assert [bit_width(size) for size in TPC_SHAPE] == [4, 8, 8]
    assert bit_width(1) == 1
    assert bit_width(2) == 1
    assert bit_width(3) == 2
    assert bit_width(256) == 8
    assert bit_width(257) == 9


def test_bitpacked_matches_reference_bits():
    for count in (1, 2, 3, 7, 100):
        index = sorted_index(count, seed=count)
        block = encode_coordinates(index, TPC_SHAPE, BITPACKED, COMPRESSOR)
        assert block == reference_bitpacked(index, TPC_SHAPE)


def test_bitpacked_is_20_bits_per_tpc_voxel():
    index = sorted_index(800)
    block = encode_coordinates(index, TPC_SHAPE, BITPACKED, COMPRESSOR)
    assert len(block) * 8 == 800 * 20


def test_bitpacked_known_bytes():
    # (layer 1, azimuth 2, time 3) = 0001 00000010 00000011, then 4 zero padding bits.
    index = linear_index(np.array([[1, 2, 3]]), TPC_SHAPE)
    assert encode_coordinates(index, TPC_SHAPE, BITPACKED, COMPRESSOR) == bytes([0x10, 0x20, 0x30])


@pytest.mark.parametrize("coding", [BITPACKED, DELTA_ZSTD])
@pytest.mark.parametrize("shape", [TPC_SHAPE, SMALL_SHAPE, (1, 1, 5)])
def test_coordinates_round_trip(coding, shape):
    volume = shape[0] * shape[1] * shape[2]
    for count in (0, 1, min(5, volume), min(300, volume)):
        index = sorted_index(count, shape, seed=count)
        block = encode_coordinates(index, shape, coding, COMPRESSOR)
        decoded = decode_coordinates(block, count, shape, coding, DECOMPRESSOR)
        np.testing.assert_array_equal(decoded, index)


def test_delta_zstd_covers_first_and_last_voxel():
    index = np.array([0, 1, 2, TPC_SHAPE[0] * TPC_SHAPE[1] * TPC_SHAPE[2] - 1])
    block = encode_coordinates(index, TPC_SHAPE, DELTA_ZSTD, COMPRESSOR)
    np.testing.assert_array_equal(decode_coordinates(block, 4, TPC_SHAPE, DELTA_ZSTD, DECOMPRESSOR), index)


def test_delta_zstd_gap_planes_reference():
    index = np.array([5, 6, 300, 70000])
    gaps = np.array([5, 0, 293, 69699], dtype="<u4")
    planes = gaps.view(np.uint8).reshape(4, 4).T.tobytes()
    block = encode_coordinates(index, TPC_SHAPE, DELTA_ZSTD, COMPRESSOR)
    assert DECOMPRESSOR.decompress(block) == planes


def test_bitpacked_rejects_wrong_length():
    block = encode_coordinates(sorted_index(10), TPC_SHAPE, BITPACKED, COMPRESSOR)
    with pytest.raises(FormatError, match="expected 25"):
        decode_coordinates(block[:-1], 10, TPC_SHAPE, BITPACKED, DECOMPRESSOR)


def test_bitpacked_rejects_nonzero_padding():
    block = bytearray(encode_coordinates(sorted_index(1), TPC_SHAPE, BITPACKED, COMPRESSOR))
    block[-1] |= 0x01
    with pytest.raises(FormatError, match="padding"):
        decode_coordinates(bytes(block), 1, TPC_SHAPE, BITPACKED, DECOMPRESSOR)


def test_bitpacked_rejects_time_outside_wedge():
    # layer 0, azimuth 0, time 255 > 248: 0000 00000000 11111111 and 4 padding bits.
    block = bytes([0x00, 0x0F, 0xF0])
    with pytest.raises(FormatError, match="time coordinate 255"):
        decode_coordinates(block, 1, TPC_SHAPE, BITPACKED, DECOMPRESSOR)


def test_coordinates_reject_unordered_voxels():
    index = np.array([10, 5])
    block = reference_bitpacked(index, TPC_SHAPE)
    with pytest.raises(FormatError, match="strictly increasing"):
        decode_coordinates(block, 2, TPC_SHAPE, BITPACKED, DECOMPRESSOR)


def test_coordinates_reject_duplicate_voxels():
    block = reference_bitpacked(np.array([7, 7]), TPC_SHAPE)
    with pytest.raises(FormatError, match="duplicate"):
        decode_coordinates(block, 2, TPC_SHAPE, BITPACKED, DECOMPRESSOR)


def test_delta_zstd_rejects_index_past_wedge():
    volume = TPC_SHAPE[0] * TPC_SHAPE[1] * TPC_SHAPE[2]
    planes = np.array([volume], dtype="<u4").view(np.uint8).reshape(1, 4).T.tobytes()
    with pytest.raises(FormatError, match="outside the wedge"):
        decode_coordinates(COMPRESSOR.compress(planes), 1, TPC_SHAPE, DELTA_ZSTD, DECOMPRESSOR)


def test_delta_zstd_rejects_wrong_content_size():
    block = encode_coordinates(sorted_index(10), TPC_SHAPE, DELTA_ZSTD, COMPRESSOR)
    with pytest.raises(FormatError, match="declares 40 decompressed bytes, expected 44"):
        decode_coordinates(block, 11, TPC_SHAPE, DELTA_ZSTD, DECOMPRESSOR)


def test_delta_zstd_rejects_bytes_after_frame():
    block = encode_coordinates(sorted_index(10), TPC_SHAPE, DELTA_ZSTD, COMPRESSOR)
    with pytest.raises(FormatError, match="exactly one complete zstd frame"):
        decode_coordinates(block + b"\x00", 10, TPC_SHAPE, DELTA_ZSTD, DECOMPRESSOR)


def test_delta_zstd_rejects_garbage():
    with pytest.raises(FormatError, match="not a valid zstd frame"):
        decode_coordinates(b"not zstd at all", 3, TPC_SHAPE, DELTA_ZSTD, DECOMPRESSOR)


def test_unknown_coordinate_coding_raises():
    with pytest.raises(FormatError, match="unknown coordinate coding"):
        decode_coordinates(b"", 0, TPC_SHAPE, "gzip", DECOMPRESSOR)
    with pytest.raises(ValueError, match="coordinate coding must be one of"):
        encode_coordinates(np.zeros(0, np.int64), TPC_SHAPE, "gzip", COMPRESSOR)


@pytest.mark.parametrize("coding", [RAW, ZSTD])
def test_values_round_trip_bit_exact(coding):
    values = np.random.default_rng(3).random(500).astype(np.float16)
    values[:3] = [0.0, -0.0, 65504.0]
    block = encode_values(values, coding, COMPRESSOR)
    decoded = decode_values(block, 500, coding, DECOMPRESSOR)
    assert decoded.dtype == np.float16
    np.testing.assert_array_equal(decoded.view(np.uint16), values.view(np.uint16))


def test_raw_values_are_little_endian_float16():
    values = np.array([1.0, 0.5], dtype=np.float16)
    assert encode_values(values, RAW, COMPRESSOR) == bytes([0x00, 0x3C, 0x00, 0x38])


def test_zstd_values_are_byte_planes():
    values = np.array([1.0, 0.5, 0.25], dtype=np.float16)  # 0x3C00, 0x3800, 0x3400
    block = encode_values(values, ZSTD, COMPRESSOR)
    assert DECOMPRESSOR.decompress(block) == bytes([0x00, 0x00, 0x00, 0x3C, 0x38, 0x34])


def test_values_reject_nan():
    block = np.array([1.0, np.nan], dtype="<f2").tobytes()
    with pytest.raises(FormatError, match="NaN or infinite"):
        decode_values(block, 2, RAW, DECOMPRESSOR)


def test_values_reject_wrong_length():
    with pytest.raises(FormatError, match="expected 6"):
        decode_values(b"\x00" * 4, 3, RAW, DECOMPRESSOR)

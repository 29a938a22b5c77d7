"""Coordinate and value coding of the key points stored in one wedge record.

Key points are always stored in ascending linear index ``(layer * A + azimuth) * T + time`` of a
wedge of shape (L, A, T) = (layer, azimuth, time), so every voxel appears at most once and both
coordinate codings decode to the same array. Two coordinate codings exist:

* ``bitpacked``: each voxel's (layer, azimuth, time) as bit fields of ``bit_width(L)``,
  ``bit_width(A)`` and ``bit_width(T)`` bits, most significant bit first, concatenated over the
  voxels and padded with zero bits to a whole byte. A (16, 192, 249) wedge takes 4 + 8 + 8 = 20
  bits per voxel.
* ``delta-zstd``: the gaps ``g[0] = index[0]``, ``g[i] = index[i] - index[i-1] - 1`` as
  little-endian uint32, split into four byte planes (every voxel's byte 0, then every byte 1,
  ...), compressed as one zstd frame.

Two value codings exist for the float16 values: ``raw`` (little-endian float16) and ``zstd``
(the values' two byte planes, low bytes first, as one zstd frame).
"""

from __future__ import annotations

import numpy as np

from .errors import FormatError

BITPACKED = "bitpacked"
DELTA_ZSTD = "delta-zstd"
RAW = "raw"
ZSTD = "zstd"

#: Coding name <-> the byte that identifies it in a record.
COORDINATE_CODINGS = {BITPACKED: 0, DELTA_ZSTD: 1}
VALUE_CODINGS = {RAW: 0, ZSTD: 1}

#: zstd level of both lossless stages. Level 19 is within 1 % of level 22 on simulated wedges and
#: needs no "ultra" window memory.
ZSTD_LEVEL = 19


def bit_width(size: int) -> int:
    """Return the number of bits that hold every index 0 .. size - 1 (at least 1)."""
    return max(1, (size - 1).bit_length())


def linear_index(coords: np.ndarray, shape: tuple[int, int, int]) -> np.ndarray:
    """Return the row-major linear index (int64) of (K, 3) (layer, azimuth, time) coordinates."""
    coords = coords.astype(np.int64, copy=False)
    return (coords[:, 0] * shape[1] + coords[:, 1]) * shape[2] + coords[:, 2]


def coords_from_index(index: np.ndarray, shape: tuple[int, int, int]) -> np.ndarray:
    """Return (K, 3) int32 (layer, azimuth, time) coordinates of row-major linear indexes."""
    plane = shape[1] * shape[2]
    return np.stack([index // plane, (index // shape[2]) % shape[1], index % shape[2]], axis=1).astype(np.int32)


def encode_coordinates(index: np.ndarray, shape: tuple[int, int, int], coding: str, compressor) -> bytes:
    """Encode strictly increasing linear indexes with ``coding``; ``compressor`` is a zstd compressor."""
    if coding == BITPACKED:
        widths = [bit_width(size) for size in shape]
        fields = coords_from_index(index, shape).astype(np.uint64)
        words = (fields[:, 0] << np.uint64(widths[1] + widths[2])) | (fields[:, 1] << np.uint64(widths[2])) | fields[:, 2]
        return _pack_words(words, sum(widths))
    if coding == DELTA_ZSTD:
        gaps = np.diff(index, prepend=-1) - 1
        planes = gaps.astype("<u4").view(np.uint8).reshape(-1, 4).T
        return compressor.compress(np.ascontiguousarray(planes).tobytes())
    raise ValueError(f"coordinate coding must be one of {', '.join(COORDINATE_CODINGS)}, got {coding!r}")


def decode_coordinates(block: bytes, count: int, shape: tuple[int, int, int], coding: str, decompressor) -> np.ndarray:
    """Decode ``count`` linear indexes (int64, strictly increasing, inside the wedge) from ``block``.

    Raises :class:`FormatError` (without a file name; the caller adds it) when the block does not
    hold exactly ``count`` valid, strictly increasing voxel indexes.
    """
    volume = shape[0] * shape[1] * shape[2]
    if coding == BITPACKED:
        widths = [bit_width(size) for size in shape]
        words = _unpack_words(block, count, sum(widths))
        layer = words >> np.uint64(widths[1] + widths[2])
        azimuth = (words >> np.uint64(widths[2])) & np.uint64((1 << widths[1]) - 1)
        time = words & np.uint64((1 << widths[2]) - 1)
        for name, field, size in (("layer", layer, shape[0]), ("azimuth", azimuth, shape[1]), ("time", time, shape[2])):
            if count and int(field.max()) >= size:
                raise FormatError(f"{name} coordinate {int(field.max())} is outside 0..{size - 1}")
        index = (layer.astype(np.int64) * shape[1] + azimuth.astype(np.int64)) * shape[2] + time.astype(np.int64)
    elif coding == DELTA_ZSTD:
        raw = _zstd_decompress(block, 4 * count, decompressor, "coordinate")
        gaps = np.frombuffer(raw, dtype=np.uint8).reshape(4, count).T.copy().view("<u4")[:, 0]
        index = np.cumsum(gaps.astype(np.int64) + 1) - 1
        if count and int(index[-1]) >= volume:
            raise FormatError(f"voxel index {int(index[-1])} is outside the wedge of {volume} voxels")
    else:
        raise FormatError(f"unknown coordinate coding {coding!r}")

    if count > 1 and not bool((np.diff(index) > 0).all()):
        raise FormatError("coordinates are not strictly increasing (duplicate or unordered voxels)")
    return index


def encode_values(values: np.ndarray, coding: str, compressor) -> bytes:
    """Encode (K,) float16 values with ``coding``."""
    raw = values.astype("<f2", copy=False)
    if coding == RAW:
        return raw.tobytes()
    if coding == ZSTD:
        planes = raw.view(np.uint8).reshape(-1, 2).T
        return compressor.compress(np.ascontiguousarray(planes).tobytes())
    raise ValueError(f"value coding must be one of {', '.join(VALUE_CODINGS)}, got {coding!r}")


def decode_values(block: bytes, count: int, coding: str, decompressor) -> np.ndarray:
    """Decode ``count`` float16 values; raises :class:`FormatError` on a wrong size or a non-finite value."""
    if coding == RAW:
        if len(block) != 2 * count:
            raise FormatError(f"value block holds {len(block)} bytes, expected {2 * count} for {count} float16 values")
        values = np.frombuffer(block, dtype="<f2").astype(np.float16)
    elif coding == ZSTD:
        raw = _zstd_decompress(block, 2 * count, decompressor, "value")
        values = np.frombuffer(raw, dtype=np.uint8).reshape(2, count).T.copy().view("<f2")[:, 0].astype(np.float16)
    else:
        raise FormatError(f"unknown value coding {coding!r}")

    if not bool(np.isfinite(values).all()):
        raise FormatError("value block contains a NaN or infinite value")
    return values


def _pack_words(words: np.ndarray, width: int) -> bytes:
    shifts = np.arange(width - 1, -1, -1, dtype=np.uint64)
    bits = ((words[:, None] >> shifts) & np.uint64(1)).astype(np.uint8)
    return np.packbits(bits.reshape(-1)).tobytes()


def _unpack_words(block: bytes, count: int, width: int) -> np.ndarray:
    expected = (count * width + 7) // 8
    if len(block) != expected:
        raise FormatError(f"bit-packed coordinate block holds {len(block)} bytes, expected {expected} for {count} voxels")
    bits = np.unpackbits(np.frombuffer(block, dtype=np.uint8))
    if bits[count * width:].any():
        raise FormatError("bit-packed coordinate block has non-zero padding bits")
    weights = np.uint64(1) << np.arange(width - 1, -1, -1, dtype=np.uint64)
    return (bits[: count * width].reshape(count, width).astype(np.uint64) * weights).sum(axis=1, dtype=np.uint64)


def _zstd_decompress(block: bytes, expected: int, decompressor, what: str) -> bytes:
    """Decompress one zstd frame that must fill the whole block and hold exactly ``expected`` bytes."""
    import zstandard

    try:
        # The declared size is checked first, so a damaged frame header cannot ask for a huge buffer.
        declared = zstandard.frame_content_size(block)
        if declared != expected:
            raise FormatError(f"{what} block declares {declared} decompressed bytes, expected {expected}")
        stream = decompressor.decompressobj()
        raw = stream.decompress(block)
    except zstandard.ZstdError as error:
        raise FormatError(f"{what} block is not a valid zstd frame: {error}") from error
    if not stream.eof or stream.unused_data:
        raise FormatError(f"{what} block is not exactly one complete zstd frame")
    if len(raw) != expected:
        raise FormatError(f"{what} block decompresses to {len(raw)} bytes, expected {expected}")
    return raw

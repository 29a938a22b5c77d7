"""Write a compressed file one wedge record at a time, atomically."""

from __future__ import annotations

import logging
import os
import zlib
from pathlib import Path

import numpy as np

from ..atomic import create_temporary
from .coordinates import (
    BITPACKED,
    COORDINATE_CODINGS,
    RAW,
    VALUE_CODINGS,
    ZSTD_LEVEL,
    encode_coordinates,
    encode_values,
    linear_index,
)
from .errors import OutputExistsError
from .format import (
    CHUNK_HEAD,
    CRC,
    FORMAT_VERSION,
    MAGIC,
    MAX_ID_BYTES,
    PREFIX,
    RECORD_KIND,
    TRAILER,
    TRAILER_KIND,
    FileHeader,
    RecordInfo,
    build_payload,
)

log = logging.getLogger(__name__)


def check_output_path(path: str | Path, force: bool) -> Path:
    """Return ``path`` as a Path; raise :class:`OutputExistsError` if it exists and ``force`` is false."""
    path = Path(path)
    if path.exists() and not force:
        raise OutputExistsError(f"output {path} exists; pass --force to overwrite it")
    if path.is_dir():
        raise IsADirectoryError(f"output {path} is a directory, expected a file path")
    return path


class CompressedFileWriter:
    """Stream wedge records into a new compressed file.

    The bytes go to a temporary file in the target directory. :meth:`close` appends the end
    trailer, fsyncs and renames it onto ``path``; :meth:`abort` (or an exception inside a
    ``with`` block) deletes it, so ``path`` is either untouched or a complete file.

    Args:
        path: output file.
        header: model identity, gate and wedge shape written at the start of the file.
        force: overwrite ``path`` if it exists; otherwise :class:`OutputExistsError`.
    """

    def __init__(self, path: str | Path, header: FileHeader, force: bool = False) -> None:
        import zstandard

        self.path = check_output_path(path, force)
        self.header = header
        self.force = force
        self.count = 0
        self._compressor = zstandard.ZstdCompressor(level=ZSTD_LEVEL)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            handle, self._temporary = create_temporary(self.path)
        except OSError as error:
            blocker = next((parent for parent in self.path.parents if parent.exists()), None)
            if blocker is not None and not blocker.is_dir():
                raise NotADirectoryError(f"cannot write output {self.path}: {blocker} is a file, not a folder") from error
            raise type(error)(f"cannot write output {self.path}: {error.strerror or error}") from error
        self._stream = os.fdopen(handle, "wb")
        try:
            header_json = header.to_json()
            prefix = PREFIX.pack(MAGIC, FORMAT_VERSION, len(header_json)) + header_json
            self._stream.write(prefix + CRC.pack(zlib.crc32(prefix)))
        except BaseException:
            self.abort()
            raise

    def __enter__(self) -> "CompressedFileWriter":
        return self

    def __exit__(self, exc_type, exc, traceback) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()

    @property
    def closed(self) -> bool:
        return self._stream is None

    def write(self, wedge_id: str, signal_count: int, coords, values) -> RecordInfo:
        """Append one wedge record and return its :class:`RecordInfo`.

        Args:
            wedge_id: non-empty string of at most 1024 UTF-8 bytes naming the wedge.
            signal_count: number of non-zero voxels of the input wedge.
            coords: int (K, 3) (layer, azimuth, time) of the kept voxels, distinct, any order.
            values: (K,) finite values in the order of ``coords``; stored as float16 (round to
                nearest even), so pass the encoder output v itself.
        """
        if self._stream is None:
            raise ValueError(f"writer for {self.path} is closed")
        id_bytes = _check_id(wedge_id)
        index, values16 = self._check_key_points(wedge_id, signal_count, coords, values)

        coordinate_coding, coordinate_block = self._choose(
            self.header.coordinate_coding, COORDINATE_CODINGS, index.size,
            lambda coding: encode_coordinates(index, self.header.wedge_shape, coding, self._compressor),
            BITPACKED,
        )
        value_coding, value_block = self._choose(
            self.header.value_coding, VALUE_CODINGS, index.size,
            lambda coding: encode_values(values16, coding, self._compressor),
            RAW,
        )
        payload = build_payload(self.count, id_bytes, int(signal_count), int(index.size), coordinate_coding,
                                coordinate_block, value_coding, value_block)
        offset = self._stream.tell()
        try:
            self._write_chunk(RECORD_KIND, payload)
        except BaseException:
            self.abort()
            raise
        info = RecordInfo(self.count, offset, CHUNK_HEAD.size + len(payload) + CRC.size, wedge_id,
                          int(signal_count), int(index.size), coordinate_coding, len(coordinate_block),
                          value_coding, len(value_block))
        self.count += 1
        return info

    def close(self) -> None:
        """Append the end trailer, fsync, and rename the temporary file onto the output path."""
        if self._stream is None:
            return
        try:
            self._write_chunk(TRAILER_KIND, TRAILER.pack(self.count))
            self._stream.flush()
            os.fsync(self._stream.fileno())
            self._stream.close()
            self._stream = None
            if self.path.exists() and not self.force:
                raise OutputExistsError(f"output {self.path} appeared while writing; pass --force to overwrite it")
            os.replace(self._temporary, self.path)
        except BaseException:
            self.abort()
            raise
        _fsync_directory(self.path.parent)
        log.debug("wrote %s: %d wedge records", self.path, self.count)

    def abort(self) -> None:
        """Delete the temporary file; the output path is left as it was."""
        if self._stream is not None:
            self._stream.close()
            self._stream = None
        self._temporary.unlink(missing_ok=True)

    def _write_chunk(self, kind: bytes, payload: bytes) -> None:
        head = CHUNK_HEAD.pack(kind, len(payload))
        self._stream.write(head + payload + CRC.pack(zlib.crc32(payload, zlib.crc32(head))))

    def _check_key_points(self, wedge_id: str, signal_count, coords, values) -> tuple[np.ndarray, np.ndarray]:
        shape = self.header.wedge_shape
        coords = np.asarray(coords)
        values = np.asarray(values)
        where = f"wedge {wedge_id!r}"
        if coords.ndim != 2 or coords.shape[1] != 3:
            raise ValueError(f"{where}: coords must have shape (K, 3) (layer, azimuth, time), got {coords.shape}")
        if coords.size and not np.issubdtype(coords.dtype, np.integer):
            raise TypeError(f"{where}: coords must be integers, got {coords.dtype}")
        if values.shape != (coords.shape[0],):
            raise ValueError(f"{where}: values must have shape ({coords.shape[0]},), got {values.shape}")
        if values.size and not np.issubdtype(values.dtype, np.floating):
            raise TypeError(f"{where}: values must be floating point, got {values.dtype}")
        if isinstance(signal_count, bool) or not isinstance(signal_count, (int, np.integer)):
            raise TypeError(f"{where}: signal_count must be an int, got {type(signal_count).__name__}")
        if not coords.shape[0] <= signal_count <= self.header.volume:
            raise ValueError(f"{where}: signal count {signal_count} must be between the kept count "
                             f"{coords.shape[0]} and the wedge volume {self.header.volume}")
        if coords.size:
            low, high = coords.min(axis=0), coords.max(axis=0)
            for axis, name in enumerate(("layer", "azimuth", "time")):
                if low[axis] < 0 or high[axis] >= shape[axis]:
                    raise ValueError(f"{where}: {name} coordinates span {low[axis]}..{high[axis]}, "
                                     f"expected 0..{shape[axis] - 1}")

        with np.errstate(over="ignore", invalid="ignore"):
            values16 = values.astype(np.float16)
        if not bool(np.isfinite(values16).all()):
            raise ValueError(f"{where}: values must be finite in float16 (no NaN, inf or |v| > 65504)")
        index = linear_index(coords, shape)
        order = np.argsort(index, kind="stable")
        index = index[order]
        if index.size > 1 and not bool((np.diff(index) > 0).all()):
            raise ValueError(f"{where}: coords contain duplicate voxels")
        return index, values16[order]

    @staticmethod
    def _choose(policy: str, codings: dict, count: int, encode, simplest: str) -> tuple[str, bytes]:
        if policy != "auto":
            return policy, encode(policy)
        if count == 0:
            return simplest, encode(simplest)
        # Smallest block wins; ties go to the simpler coding listed first.
        candidates = [(len(block), number, name, block) for name, number in codings.items() for block in [encode(name)]]
        _, _, name, block = min(candidates, key=lambda candidate: candidate[:2])
        return name, block


def _check_id(wedge_id) -> bytes:
    if not isinstance(wedge_id, str):
        raise TypeError(f"wedge id must be a str, got {type(wedge_id).__name__}")
    id_bytes = wedge_id.encode("utf-8")
    if not 1 <= len(id_bytes) <= MAX_ID_BYTES:
        raise ValueError(f"wedge id must be 1..{MAX_ID_BYTES} UTF-8 bytes, got {len(id_bytes)}: {wedge_id[:80]!r}")
    return id_bytes


def _fsync_directory(directory: Path) -> None:
    # Makes the rename itself durable; some platforms cannot open a directory, which is harmless.
    try:
        handle = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(handle)
    except OSError:
        pass
    finally:
        os.close(handle)

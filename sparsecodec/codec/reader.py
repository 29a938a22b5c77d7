"""Read a compressed file one wedge record at a time, checking every checksum."""

from __future__ import annotations

import dataclasses
import logging
import os
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np

from .coordinates import coords_from_index, decode_coordinates, decode_values
from .errors import ChecksumError, FormatError, FormatVersionError, TruncatedFileError
from .format import (
    CHUNK_HEAD,
    CRC,
    FORMAT_VERSION,
    MAGIC,
    MAX_HEADER_BYTES,
    PREFIX,
    RECORD_KIND,
    SUPPORTED_VERSIONS,
    TRAILER,
    TRAILER_KIND,
    FileHeader,
    RecordInfo,
    ParsedPayload,
    WedgeRecord,
    parse_payload,
)

log = logging.getLogger(__name__)

#: Bytes read per step while searching for the next intact chunk after a damaged one.
_SEARCH_BLOCK = 1 << 20


@dataclass(frozen=True)
class DamagedRegion:
    """A stretch of a file that held no readable record.

    ``start`` and ``end`` are byte offsets (``end`` exclusive). ``first_index`` is the index the
    next record should have had. ``lost_indexes`` are the record indexes that were there, as
    the next intact record or the end trailer identifies them; the tuple is empty when nothing
    was lost or the file ends first. ``wedge_id`` is the id read from the damaged bytes, unverified, or None.
    ``reason`` says what was wrong.
    """

    start: int
    end: int
    first_index: int
    lost_indexes: tuple[int, ...]
    wedge_id: str | None
    reason: str

    def describe(self) -> str:
        if self.lost_indexes:
            first, last = self.lost_indexes[0], self.lost_indexes[-1]
            records = f"record {first}" if first == last else f"records {first}..{last}"
        else:
            records = f"from record {self.first_index} on"
        guess = f" (wedge id {self.wedge_id!r}, unverified)" if self.wedge_id else ""
        return f"{records}{guess} at bytes {self.start}..{self.end}: {self.reason}"


class _ChunkProblem(Exception):
    """A chunk at a given offset is unreadable; ``truncated`` is True when the file simply ended."""

    def __init__(self, message: str, truncated: bool = False, wedge_id: str | None = None) -> None:
        super().__init__(message)
        self.truncated = truncated
        self.wedge_id = wedge_id


class CompressedFileReader:
    """Open a compressed file, check its header, and iterate over its wedge records.

    Only one record is held in memory at a time. Every problem raises :class:`FormatError` (a
    ``ValueError``) or a subclass, with the file name and the record index in the message.

    Args:
        path: the compressed file.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._stream = open(self.path, "rb")
        try:
            self.size = os.fstat(self._stream.fileno()).st_size
            self.version, self.header, self.data_offset = self._read_header()
        except BaseException:
            self._stream.close()
            raise
        #: Filled by :meth:`records` with ``skip_damaged=True``.
        self.damaged: list[DamagedRegion] = []
        #: True once a full pass reached an intact end trailer.
        self.complete = False

    def __enter__(self) -> "CompressedFileReader":
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    def close(self) -> None:
        self._stream.close()

    def __iter__(self) -> Iterator[tuple[RecordInfo, WedgeRecord]]:
        return self.records()

    def infos(self) -> Iterator[RecordInfo]:
        """Yield every record's :class:`RecordInfo`; checksums are checked, blocks are not decoded."""
        for info, _ in self.records(decode=False):
            yield info

    def records(self, decode: bool = True, skip_damaged: bool = False) -> Iterator[tuple[RecordInfo, WedgeRecord | None]]:
        """Yield (info, record) for each wedge record in file order.

        Args:
            decode: decode the coordinate and value blocks (``record`` is None otherwise).
            skip_damaged: instead of raising at the first damaged record, add a
                :class:`DamagedRegion` to :attr:`damaged`, resume at the next intact chunk and
                raise nothing for damage after the header. The header must be intact either way.
                Callers report :attr:`damaged`; the reader only logs it at debug level.
        """
        self.damaged = []
        self.complete = False
        position = self.data_offset
        expected = 0
        # Damage seen but not yet reported: its lost record indexes are known only at the next
        # intact record or trailer.
        pending: DamagedRegion | None = None
        while position is not None:
            try:
                kind, payload, end = self._read_chunk(position, expected)
            except _ChunkProblem as problem:
                if not skip_damaged:
                    error_type = TruncatedFileError if problem.truncated else ChecksumError
                    about = f" (wedge id {problem.wedge_id!r}, unverified)" if problem.wedge_id else ""
                    raise error_type(f"{self.path}: record {expected}{about} at byte {position}: {problem}") from None
                resume = self._next_intact_chunk(position + 1, expected)
                if pending is None:
                    self._stream.seek(position + CHUNK_HEAD.size)
                    pending = DamagedRegion(position, self.size if resume is None else resume, expected, (),
                                            _guess_id(self._stream.read(4096)), str(problem))
                else:
                    pending = dataclasses.replace(pending, end=self.size if resume is None else resume)
                position = resume
                continue

            if kind == TRAILER_KIND:
                (count,) = TRAILER.unpack(payload)
                if not skip_damaged:
                    self._check_trailer(count, end, expected)
                    self.complete = True
                    return
                self._add_damage(pending, position, tuple(range(expected, count)))
                if count < expected:
                    self._add_damage(DamagedRegion(position, end, count, (), None, f"end trailer counts {count} "
                                                   f"records, but {expected} were read"), end, ())
                if end != self.size:
                    self._add_damage(DamagedRegion(end, self.size, expected, (), None,
                                                   "unexpected bytes after the end trailer"), self.size, ())
                self.complete = not self.damaged
                return

            try:
                parsed = parse_payload(payload, self.header.volume)
                if parsed.index != expected and not (skip_damaged and parsed.index > expected):
                    raise FormatError(f"record has index {parsed.index}, expected {expected}")
            except FormatError as error:
                if not skip_damaged:
                    raise FormatError(f"{self.path}: record {expected} at byte {position}: {error}") from None
                # Intact framing around an unreadable payload: treat it as damaged bytes.
                pending = pending or DamagedRegion(position, end, expected, (), _guess_id(payload), str(error))
                pending = dataclasses.replace(pending, end=end)
                position = end
                continue

            self._add_damage(pending, position, tuple(range(expected, parsed.index)))
            pending = None
            expected = parsed.index + 1
            start, position = position, end
            try:
                info, record = self._decode(parsed, start, end, decode)
            except FormatError as error:
                if not skip_damaged:
                    raise
                reason = str(error).removeprefix(f"{self.path}: ")
                self._add_damage(DamagedRegion(start, end, parsed.index, (parsed.index,), parsed.wedge_id, reason),
                                 end, ())
                continue
            yield info, record

        # No intact chunk follows the last damage: the rest of the file is lost.
        self._add_damage(pending, self.size, ())

    def _read_header(self) -> tuple[int, FileHeader, int]:
        prefix = self._stream.read(PREFIX.size)
        if len(prefix) < len(MAGIC) or prefix[: len(MAGIC)] != MAGIC:
            raise FormatError(f"{self.path} is not a sparsecodec compressed file (wrong magic bytes)")
        if len(prefix) < PREFIX.size:
            raise TruncatedFileError(f"{self.path}: file ends inside the header")
        _, version, header_length = PREFIX.unpack(prefix)
        if version not in SUPPORTED_VERSIONS:
            newer = "newer than" if version > FORMAT_VERSION else "not one of the versions"
            raise FormatVersionError(
                f"{self.path} is compressed file format version {version}, {newer} this sparsecodec reads "
                f"({', '.join(map(str, SUPPORTED_VERSIONS))}); read it with a sparsecodec that supports it"
            )
        if header_length > MAX_HEADER_BYTES:
            raise FormatError(f"{self.path}: header length {header_length} exceeds {MAX_HEADER_BYTES} bytes; "
                              "the header is damaged")
        if PREFIX.size + header_length + CRC.size > self.size:
            raise TruncatedFileError(f"{self.path}: file ends inside the header ({self.size} bytes)")
        header_json = self._stream.read(header_length)
        (stored,) = CRC.unpack(self._stream.read(CRC.size))
        computed = zlib.crc32(header_json, zlib.crc32(prefix))
        if stored != computed:
            raise ChecksumError(f"{self.path}: header checksum mismatch (stored {stored:#010x}, computed "
                                f"{computed:#010x}); the header is damaged")
        try:
            header = FileHeader.from_json(header_json)
        except FormatError as error:
            raise FormatError(f"{self.path}: {error}") from None
        return version, header, PREFIX.size + header_length + CRC.size

    def _read_chunk(self, position: int, expected: int) -> tuple[bytes, bytes, int]:
        """Return (kind, payload, end offset) of the chunk at ``position``, checksum verified."""
        self._stream.seek(position)
        head = self._stream.read(CHUNK_HEAD.size)
        if not head:
            raise _ChunkProblem(f"file ends after {expected} records without the end trailer; it was cut short",
                                truncated=True)
        if len(head) < CHUNK_HEAD.size:
            raise _ChunkProblem("file ends inside a chunk header; it was cut short", truncated=True)
        kind, length = CHUNK_HEAD.unpack(head)
        if kind == RECORD_KIND:
            limit = self.header.max_record_payload()
        elif kind == TRAILER_KIND:
            limit = TRAILER.size
        else:
            raise _ChunkProblem(f"unknown chunk kind {kind!r}, expected {RECORD_KIND!r} or {TRAILER_KIND!r}")
        if length > limit:
            raise _ChunkProblem(f"{kind.decode('latin-1')} chunk length {length} exceeds the largest possible "
                                f"({limit} bytes); the length field is damaged")
        end = position + CHUNK_HEAD.size + length + CRC.size
        if end > self.size:
            raise _ChunkProblem(f"chunk of {length} bytes runs past the end of the file ({self.size} bytes); "
                                "the file was cut short or the length field is damaged", truncated=True)
        payload = self._stream.read(length)
        (stored,) = CRC.unpack(self._stream.read(CRC.size))
        computed = zlib.crc32(payload, zlib.crc32(head))
        if stored != computed:
            raise _ChunkProblem(f"checksum mismatch (stored {stored:#010x}, computed {computed:#010x}); "
                                "the record is damaged", wedge_id=_guess_id(payload) if kind == RECORD_KIND else None)
        return kind, payload, end

    def _check_trailer(self, count: int, end: int, expected: int) -> None:
        if count != expected:
            raise FormatError(f"{self.path}: end trailer counts {count} records, but {expected} were read")
        if end != self.size:
            raise FormatError(f"{self.path}: {self.size - end} unexpected bytes after the end trailer")

    def _decode(self, parsed: ParsedPayload, start: int, end: int, decode: bool) -> tuple[RecordInfo, WedgeRecord | None]:
        info = RecordInfo(parsed.index, start, end - start, parsed.wedge_id, parsed.signal_count,
                          parsed.kept_count, parsed.coordinate_coding, len(parsed.coordinate_block),
                          parsed.value_coding, len(parsed.value_block))
        if not decode:
            return info, None
        try:
            index = decode_coordinates(parsed.coordinate_block, parsed.kept_count, self.header.wedge_shape,
                                       parsed.coordinate_coding, self._decompressor)
            values = decode_values(parsed.value_block, parsed.kept_count, parsed.value_coding, self._decompressor)
        except FormatError as error:
            raise FormatError(f"{self.path}: record {parsed.index} (wedge {parsed.wedge_id!r}): {error}") from None
        coords = coords_from_index(index, self.header.wedge_shape)
        return info, WedgeRecord(parsed.wedge_id, parsed.signal_count, coords, values)

    @property
    def _decompressor(self):
        import zstandard

        if not hasattr(self, "_zstd"):
            self._zstd = zstandard.ZstdDecompressor()
        return self._zstd

    def _next_intact_chunk(self, start: int, expected: int) -> int | None:
        search = start
        while search < self.size:
            self._stream.seek(search)
            block = self._stream.read(_SEARCH_BLOCK + 3)
            hits = [found for found in (block.find(RECORD_KIND), block.find(TRAILER_KIND)) if found >= 0]
            if not hits:
                search += _SEARCH_BLOCK
                continue
            candidate = search + min(hits)
            try:
                kind, payload, _ = self._read_chunk(candidate, expected)
                if kind == RECORD_KIND:
                    parse_payload(payload, self.header.volume)
                return candidate
            except (_ChunkProblem, FormatError):
                search = candidate + 1
        return None

    def _add_damage(self, region: DamagedRegion | None, end: int, lost: tuple[int, ...]) -> None:
        """Log and keep ``region`` with its ``lost`` indexes; with no region, a bare index gap ending at ``end``."""
        if region is None:
            if not lost:
                return
            region = DamagedRegion(end, end, lost[0], lost, None, "records missing from the file")
        elif lost:
            region = dataclasses.replace(region, lost_indexes=lost)
        self.damaged.append(region)
        log.debug("%s: damaged %s", self.path, region.describe())


def _guess_id(payload: bytes) -> str | None:
    """Return the wedge id a damaged record payload seems to hold, or None."""
    if len(payload) < 6:
        return None
    length = int.from_bytes(payload[4:6], "little")
    if not 1 <= length <= min(256, len(payload) - 6):
        return None
    try:
        text = payload[6:6 + length].decode("utf-8")
    except UnicodeDecodeError:
        return None
    return text if text.isprintable() else None


def read_records(path: str | Path) -> Iterator[WedgeRecord]:
    """Yield the decoded records of ``path``; raise :class:`FormatError` at the first problem."""
    with CompressedFileReader(path) as reader:
        for _, record in reader.records():
            yield record


def as_dense(record: WedgeRecord, shape: tuple[int, int, int]) -> np.ndarray:
    """Return the record's key points scattered into a float16 (layer, azimuth, time) array of zeros."""
    dense = np.zeros(shape, dtype=np.float16)
    dense[record.coords[:, 0], record.coords[:, 1], record.coords[:, 2]] = record.values
    return dense

"""Layout of a sparsecodec compressed file: constants, the header and one wedge record.

``docs/format.md`` is the specification; this module and :mod:`.reader` / :mod:`.writer` follow
it. All integers are little-endian. A file is::

    magic (8 bytes) | version (uint16) | header length (uint32) | header JSON | CRC32 (uint32)
    chunk*  where chunk = kind (4 bytes) | payload length (uint32) | payload | CRC32 (uint32)

with one ``WDGE`` chunk per wedge and a final ``DONE`` chunk (the end trailer) holding the
record count. The header CRC32 covers every byte before it; a chunk's CRC32 covers its kind,
length and payload.
"""

from __future__ import annotations

import json
import math
import re
import struct
from dataclasses import dataclass, field

import numpy as np

from ..data.layout import WEDGE_SHAPE
from ..model.gate import GATE_MODES
from .coordinates import COORDINATE_CODINGS, VALUE_CODINGS
from .errors import FormatError

#: First bytes of every file. The high-bit byte and CR LF SUB LF catch transfers that strip the
#: eighth bit or rewrite line endings, as in the PNG signature.
MAGIC = b"\x89SCZ\r\n\x1a\n"
FORMAT_VERSION = 1
SUPPORTED_VERSIONS = (1,)
FILE_SUFFIX = ".scz"

RECORD_KIND = b"WDGE"
TRAILER_KIND = b"DONE"

AXIS_ORDER = ("layer", "azimuth", "time")
VALUE_DTYPE = "float16"
CODING_POLICIES = ("auto",)

#: Upper bounds that keep a damaged length field from asking for huge reads.
MAX_HEADER_BYTES = 1 << 20
MAX_ID_BYTES = 1024
#: Bytes a record may take besides its coordinate and value blocks, with room to spare.
RECORD_FIXED_BYTES = 64 + MAX_ID_BYTES
#: Largest wedge volume: linear voxel indexes must fit the uint32 gaps of ``delta-zstd``.
MAX_WEDGE_VOLUME = 1 << 32

PREFIX = struct.Struct("<8sHI")
CHUNK_HEAD = struct.Struct("<4sI")
CRC = struct.Struct("<I")
TRAILER = struct.Struct("<Q")
RECORD_HEAD = struct.Struct("<IH")
RECORD_COUNTS = struct.Struct("<IIBI")
VALUE_HEAD = struct.Struct("<BI")

_SHA256 = re.compile(r"[0-9a-f]{64}")


@dataclass(frozen=True)
class FileHeader:
    """What a reader needs before the first record: model identity, gate and wedge geometry.

    ``wedge_shape`` is (layer, azimuth, time) in voxels. ``coordinate_coding`` and
    ``value_coding`` are the writer's policy: ``auto`` (per record, the smaller coding) or one
    coding name used for every record; each record names the coding it uses either way.
    ``metadata`` holds free-form JSON (backend, input description) that no reader relies on.
    """

    model_name: str
    model_sha256: str
    gate_mode: str
    gate_value: float | None
    gate_seed: int
    wedge_shape: tuple[int, int, int] = WEDGE_SHAPE
    coordinate_coding: str = "auto"
    value_coding: str = "auto"
    created_by: str = ""
    metadata: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        problem = _header_problem(self)
        if problem:
            raise ValueError(f"invalid file header: {problem}")

    @property
    def volume(self) -> int:
        layers, azimuths, times = self.wedge_shape
        return layers * azimuths * times

    def max_record_payload(self) -> int:
        """Return the largest payload a record of this wedge shape can have (8 bytes per voxel bounds both blocks)."""
        return RECORD_FIXED_BYTES + 8 * self.volume

    def to_json(self) -> bytes:
        document = {
            "model": {"name": self.model_name, "sha256": self.model_sha256},
            "gate": {"mode": self.gate_mode, "value": self.gate_value, "seed": self.gate_seed},
            "wedge_shape": list(self.wedge_shape),
            "axis_order": list(AXIS_ORDER),
            "value_dtype": VALUE_DTYPE,
            "coordinate_coding": self.coordinate_coding,
            "value_coding": self.value_coding,
            "created_by": self.created_by,
            "metadata": self.metadata,
        }
        return json.dumps(document, sort_keys=True, separators=(",", ":"), allow_nan=False).encode()

    @classmethod
    def from_json(cls, data: bytes) -> "FileHeader":
        """Parse and validate header JSON; raises :class:`FormatError` saying which field is wrong."""
        try:
            document = json.loads(data.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as error:
            raise FormatError(f"header is not valid UTF-8 JSON: {error}") from error
        if not isinstance(document, dict):
            raise FormatError("header JSON is not an object")
        if document.get("axis_order") != list(AXIS_ORDER):
            raise FormatError(f"header axis_order is {document.get('axis_order')!r}, expected {list(AXIS_ORDER)}")
        if document.get("value_dtype") != VALUE_DTYPE:
            raise FormatError(f"header value_dtype is {document.get('value_dtype')!r}, expected {VALUE_DTYPE!r}")
        model = document.get("model")
        gate = document.get("gate")
        shape = document.get("wedge_shape")
        if not isinstance(model, dict) or not isinstance(gate, dict):
            raise FormatError("header lacks the 'model' or 'gate' object")
        if not isinstance(shape, list) or len(shape) != 3:
            raise FormatError(f"header wedge_shape must be a list of 3 sizes, got {shape!r}")
        try:
            header = cls(
                model_name=model.get("name"),
                model_sha256=model.get("sha256"),
                gate_mode=gate.get("mode"),
                gate_value=gate.get("value"),
                gate_seed=gate.get("seed"),
                wedge_shape=tuple(shape),
                coordinate_coding=document.get("coordinate_coding"),
                value_coding=document.get("value_coding"),
                created_by=document.get("created_by", ""),
                metadata=document.get("metadata", {}),
            )
        except ValueError as error:
            raise FormatError(str(error)) from None
        return header


def _header_problem(header: FileHeader) -> str | None:
    if not isinstance(header.model_name, str) or not header.model_name:
        return f"model name must be a non-empty string, got {header.model_name!r}"
    if not isinstance(header.model_sha256, str) or not _SHA256.fullmatch(header.model_sha256):
        return f"model sha256 must be 64 lowercase hex digits, got {header.model_sha256!r}"
    if header.gate_mode not in GATE_MODES:
        return f"gate mode must be one of {', '.join(GATE_MODES)}, got {header.gate_mode!r}"
    value = header.gate_value
    if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value)):
        return f"gate value must be a finite number or null, got {value!r}"
    seed = header.gate_seed
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < 2**63:
        return f"gate seed must be an int in [0, 2**63), got {seed!r}"
    shape = header.wedge_shape
    if len(shape) != 3 or not all(isinstance(s, int) and not isinstance(s, bool) and 1 <= s <= 65535 for s in shape):
        return f"wedge shape must be 3 ints in 1..65535 (layer, azimuth, time), got {shape!r}"
    if shape[0] * shape[1] * shape[2] > MAX_WEDGE_VOLUME:
        return f"wedge shape {shape} has more than 2**32 voxels"
    if header.coordinate_coding not in CODING_POLICIES + tuple(COORDINATE_CODINGS):
        return f"coordinate coding must be one of {', '.join(CODING_POLICIES + tuple(COORDINATE_CODINGS))}, " \
               f"got {header.coordinate_coding!r}"
    if header.value_coding not in CODING_POLICIES + tuple(VALUE_CODINGS):
        return f"value coding must be one of {', '.join(CODING_POLICIES + tuple(VALUE_CODINGS))}, got {header.value_coding!r}"
    if not isinstance(header.created_by, str):
        return f"created_by must be a string, got {header.created_by!r}"
    if not isinstance(header.metadata, dict):
        return f"metadata must be a JSON object, got {header.metadata!r}"
    return None


@dataclass(frozen=True)
class WedgeRecord:
    """The key points of one wedge.

    ``coords`` int32 (K, 3) = (layer, azimuth, time) in ascending linear index;
    ``values`` float16 (K,) in the same order; ``signal_count`` is the number of non-zero voxels
    of the input wedge (N >= K).
    """

    wedge_id: str
    signal_count: int
    coords: np.ndarray
    values: np.ndarray

    @property
    def kept_count(self) -> int:
        return int(self.coords.shape[0])


@dataclass(frozen=True)
class RecordInfo:
    """Where a record sits in the file and what it costs, read without decoding its blocks.

    Sizes are bytes. ``record_bytes`` counts the whole chunk: kind, length, payload and CRC32.
    """

    index: int
    offset: int
    record_bytes: int
    wedge_id: str
    signal_count: int
    kept_count: int
    coordinate_coding: str
    coordinate_bytes: int
    value_coding: str
    value_bytes: int

    @property
    def bits_per_kept_voxel(self) -> float:
        """Record bits (framing and id included) per kept voxel; infinite when nothing is kept."""
        return math.inf if self.kept_count == 0 else 8 * self.record_bytes / self.kept_count

    @property
    def coordinate_bits_per_kept_voxel(self) -> float:
        return math.nan if self.kept_count == 0 else 8 * self.coordinate_bytes / self.kept_count

    @property
    def value_bits_per_kept_voxel(self) -> float:
        return math.nan if self.kept_count == 0 else 8 * self.value_bytes / self.kept_count


@dataclass(frozen=True)
class ParsedPayload:
    """A record payload split into its fields; the blocks are still encoded."""

    index: int
    wedge_id: str
    signal_count: int
    kept_count: int
    coordinate_coding: str
    coordinate_block: bytes
    value_coding: str
    value_block: bytes


def build_payload(index: int, wedge_id_bytes: bytes, signal_count: int, kept_count: int, coordinate_coding: str,
                  coordinate_block: bytes, value_coding: str, value_block: bytes) -> bytes:
    """Serialize a record payload (see docs/format.md, "Wedge record")."""
    return b"".join((
        RECORD_HEAD.pack(index, len(wedge_id_bytes)),
        wedge_id_bytes,
        RECORD_COUNTS.pack(signal_count, kept_count, COORDINATE_CODINGS[coordinate_coding], len(coordinate_block)),
        coordinate_block,
        VALUE_HEAD.pack(VALUE_CODINGS[value_coding], len(value_block)),
        value_block,
    ))


def parse_payload(payload: bytes, volume: int) -> ParsedPayload:
    """Split a record payload into fields; raises :class:`FormatError` on any inconsistency."""
    view = memoryview(payload)
    position = 0

    def take(size: int, what: str) -> memoryview:
        nonlocal position
        if position + size > len(view):
            raise FormatError(f"record payload ends inside its {what} ({len(view)} bytes)")
        part = view[position:position + size]
        position += size
        return part

    index, id_length = RECORD_HEAD.unpack(take(RECORD_HEAD.size, "index and id length"))
    if not 1 <= id_length <= MAX_ID_BYTES:
        raise FormatError(f"wedge id length {id_length} is outside 1..{MAX_ID_BYTES}")
    try:
        wedge_id = bytes(take(id_length, "wedge id")).decode("utf-8")
    except UnicodeDecodeError as error:
        raise FormatError(f"wedge id is not valid UTF-8: {error}") from None

    signal_count, kept_count, coordinate_code, coordinate_length = RECORD_COUNTS.unpack(
        take(RECORD_COUNTS.size, "counts"))
    if not kept_count <= signal_count <= volume:
        raise FormatError(
            f"wedge {wedge_id!r}: kept count {kept_count} and signal count {signal_count} violate "
            f"kept <= signal <= {volume} voxels"
        )
    coordinate_coding = _coding_name(COORDINATE_CODINGS, coordinate_code, "coordinate", wedge_id)
    coordinate_block = bytes(take(coordinate_length, "coordinate block"))

    value_code, value_length = VALUE_HEAD.unpack(take(VALUE_HEAD.size, "value coding"))
    value_coding = _coding_name(VALUE_CODINGS, value_code, "value", wedge_id)
    value_block = bytes(take(value_length, "value block"))
    if position != len(view):
        raise FormatError(f"wedge {wedge_id!r}: {len(view) - position} unexpected bytes after the value block")
    return ParsedPayload(index, wedge_id, signal_count, kept_count, coordinate_coding, coordinate_block,
                         value_coding, value_block)


def _coding_name(table: dict[str, int], code: int, what: str, wedge_id: str) -> str:
    for name, number in table.items():
        if number == code:
            return name
    raise FormatError(f"wedge {wedge_id!r}: unknown {what} coding byte {code}")

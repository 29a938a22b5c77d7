"""Reading and writing wedges, manifests and the occupancy table of the public dataset layout.

A dataset root holds:

* ``train.txt`` and ``test.txt``: one wedge file per line, relative to the root (absolute
  paths are accepted too);
* the wedge files ``12-2_{sector}-{side}/AuAu200_170kHz_10C_Iter2_{experiment}.xml_
  TPCMLDataInterface_{event}.npy``, each a (192 azimuth, 249 time, 16 layer) array of raw ADC
  counts (see :mod:`sparsecodec.data.layout`);
* ``occupancy_by_wedge.csv``: one row per wedge with the columns experiment, event, side,
  sector, split and occupancy (fraction of non-zero voxels); other columns are ignored.

Every writer here replaces its file atomically (temporary file in the same folder, then
``os.replace``), so a reader never sees a half-written file.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..atomic import write_atomic
from .layout import FILE_SHAPE, WEDGE_SHAPE, WedgeId, from_file_layout, to_file_layout
from .validation import check_adc_array

SPLITS = ("train", "test")
OCCUPANCY_TABLE = "occupancy_by_wedge.csv"
OCCUPANCY_COLUMNS = ("experiment", "event", "side", "sector", "split", "occupancy")


def load_wedge(path) -> np.ndarray:
    """Read one wedge file and return uint16 raw ADC counts with shape (16, 192, 249).

    The file holds the public layout (azimuth, time, layer) = (192, 249, 16); the result is in
    the project's (layer, azimuth, time) convention. Integer dtypes and floats holding whole
    numbers are accepted.

    Raises:
        FileNotFoundError: the file does not exist.
        ValueError: the file is not a readable ``.npy`` array (truncated, corrupted, pickled
            objects), or it has the wrong shape, NaN, or values outside 0..1023.
        TypeError: the array's dtype cannot hold ADC counts.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"wedge file not found: {path}")
    with path.open("rb") as stream:
        prefix = stream.read(6)
    # Without the magic string, numpy would try pickle and blame allow_pickle. A zip archive
    # (.npz) goes on to the archive check below.
    if prefix != b"\x93NUMPY" and not prefix.startswith(b"PK"):
        raise ValueError(f"{path}: not a .npy file (it does not start with the .npy magic string "
                         f"\\x93NUMPY, got {prefix!r})")
    try:
        stored = np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError) as error:
        raise ValueError(f"{path}: not a readable .npy array ({error})") from error
    if not isinstance(stored, np.ndarray):
        raise ValueError(f"{path}: expected a single .npy array, got a {type(stored).__name__} archive")
    if stored.shape != FILE_SHAPE:
        raise ValueError(
            f"{path}: expected shape {FILE_SHAPE} (azimuth, time, layer), got {stored.shape}"
        )
    return from_file_layout(check_adc_array(stored, FILE_SHAPE, str(path)))


def save_wedge(path, adc: np.ndarray) -> None:
    """Write a (16, 192, 249) wedge of raw ADC counts as a uint16 ``.npy`` file in the public layout.

    The file is written atomically; missing parent folders are created.
    """
    adc = check_adc_array(adc, WEDGE_SHAPE, "adc")
    buffer = io.BytesIO()
    np.save(buffer, to_file_layout(adc))
    write_atomic(path, buffer.getvalue())


def _check_root(root) -> Path:
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"dataset root not found or not a folder: {root}")
    return root


def _check_split(split: str) -> str:
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    return split


def read_manifest(root, split: str = "train") -> list[Path]:
    """Return the wedge files listed in ``{root}/{split}.txt``, resolved against ``root``.

    Blank lines are skipped. Raises FileNotFoundError when the root, the manifest or a listed
    file is missing, naming the manifest line.
    """
    root = _check_root(root)
    manifest = root / f"{_check_split(split)}.txt"
    if not manifest.is_file():
        raise FileNotFoundError(f"manifest not found: {manifest} (expected one wedge file per line)")

    paths = []
    for number, line in enumerate(manifest.read_text(encoding="utf-8").splitlines(), start=1):
        entry = line.strip()
        if not entry:
            continue
        path = root / entry
        if not path.is_file():
            raise FileNotFoundError(f"{manifest}:{number}: listed wedge file not found: {path}")
        paths.append(path)
    return paths


def write_manifest(root, split: str, paths: Iterable) -> Path:
    """Write ``{root}/{split}.txt`` listing ``paths`` (relative to ``root``), one per line."""
    root = Path(root)
    lines = []
    for path in paths:
        path = Path(path)
        lines.append((path.relative_to(root) if path.is_absolute() else path).as_posix())
    manifest = root / f"{_check_split(split)}.txt"
    write_atomic(manifest, "".join(f"{line}\n" for line in lines).encode("utf-8"))
    return manifest


@dataclass(frozen=True)
class OccupancyRecord:
    """One row of ``occupancy_by_wedge.csv``: a wedge, its split and its occupancy (0..1)."""

    wedge: WedgeId
    split: str
    occupancy: float


def _parse_int(text: str, column: str, where: str) -> int:
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f"{where}: column {column!r} must be an integer, got {text!r}") from None
    if not value.is_integer():
        raise ValueError(f"{where}: column {column!r} must be an integer, got {text!r}")
    return int(value)


def read_occupancy_table(root) -> list[OccupancyRecord]:
    """Read ``{root}/occupancy_by_wedge.csv`` into records, in file order.

    Raises FileNotFoundError when the file is missing and ValueError for a missing column or a
    malformed row (naming the line).
    """
    table = _check_root(root) / OCCUPANCY_TABLE
    if not table.is_file():
        raise FileNotFoundError(f"occupancy table not found: {table}")

    records = []
    with table.open(newline="", encoding="utf-8") as stream:
        reader = csv.DictReader(stream)
        missing = [column for column in OCCUPANCY_COLUMNS if column not in (reader.fieldnames or ())]
        if missing:
            raise ValueError(
                f"{table}: missing column(s) {missing}; expected {list(OCCUPANCY_COLUMNS)}"
            )
        for row in reader:
            where = f"{table}:{reader.line_num}"
            try:
                wedge = WedgeId(*(_parse_int(row[name], name, where) for name in OCCUPANCY_COLUMNS[:4]))
            except (TypeError, ValueError) as error:
                raise ValueError(f"{where}: invalid wedge id: {error}") from None
            split = row["split"].strip()
            try:
                occupancy = float(row["occupancy"])
            except ValueError:
                raise ValueError(f"{where}: occupancy must be a number, got {row['occupancy']!r}") from None
            if not 0.0 <= occupancy <= 1.0:
                raise ValueError(f"{where}: occupancy must be in 0..1, got {occupancy}")
            records.append(OccupancyRecord(wedge, split, occupancy))
    return records


def write_occupancy_table(root, records: Iterable[OccupancyRecord]) -> Path:
    """Write ``{root}/occupancy_by_wedge.csv`` with the columns of the public dataset."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(OCCUPANCY_COLUMNS)
    for record in records:
        wedge = record.wedge
        writer.writerow(
            [wedge.experiment, wedge.event, wedge.side, wedge.sector, record.split, f"{record.occupancy:.6f}"]
        )
    table = Path(root) / OCCUPANCY_TABLE
    write_atomic(table, buffer.getvalue().encode("utf-8"))
    return table

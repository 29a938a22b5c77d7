"""Wedge shape, axis conventions and the file naming of the public sPHENIX TPC dataset.

A wedge is one azimuthal sector (1/12 of the ring) of one TPC half (side) of the 16-layer outer
layer group, read out over one drift-time frame. The project keeps a wedge in memory as an
array of raw ADC counts with axes (layer, azimuth, time) = (16, 192, 249):

* layer: pad row 0..15 of the outer group, radius increasing with the index (layers 39..54 of
  the 2021 sPHENIX simulation geometry, ``Data_Layer32..47`` in the raw HDF5 frames).
* azimuth: pad 0..191 within the sector. Global pad ``192 * sector + azimuth`` covers azimuth
  angles ``phi`` with ``floor((phi + pi) * 2304 / (2 pi))`` equal to it.
* time: ADC sample (53 ns) index within the half, in the order the public files store it. The
  498 samples of a full frame are ordered by the beam coordinate z from -105.5 cm to +105.5 cm.
  Side 0 holds samples 0..248 (index 0 at the readout plane, so the index grows with drift
  time); side 1 holds samples 249..497 (index 0 at the central membrane, so the index shrinks
  with drift time).

The public files store the same wedge with axes (azimuth, time, layer) = (192, 249, 16).
:func:`to_file_layout` and :func:`from_file_layout` are the only places where the project
transposes between the two conventions.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import PurePath

import numpy as np

#: In-memory wedge shape: (layer, azimuth, time).
WEDGE_SHAPE = (16, 192, 249)
#: Axis names of :data:`WEDGE_SHAPE`, in order.
WEDGE_AXES = ("layer", "azimuth", "time")
#: Shape of a wedge in the public ``.npy`` files: (azimuth, time, layer).
FILE_SHAPE = (192, 249, 16)
#: Axis names of :data:`FILE_SHAPE`, in order.
FILE_AXES = ("azimuth", "time", "layer")
#: Voxels per wedge.
WEDGE_VOXELS = WEDGE_SHAPE[0] * WEDGE_SHAPE[1] * WEDGE_SHAPE[2]

#: Azimuthal sectors per TPC half, and TPC halves (sides).
NUM_SECTORS = 12
NUM_SIDES = 2
#: Wedges in one event (one drift-time frame of the whole outer layer group).
WEDGES_PER_EVENT = NUM_SECTORS * NUM_SIDES
#: (side, sector) of the wedges of an event, in the order every array of a whole event uses:
#: side 0 sectors 0..11, then side 1 sectors 0..11.
EVENT_WEDGE_ORDER = tuple((side, sector) for side in range(NUM_SIDES) for sector in range(NUM_SECTORS))

#: Largest value of the 10-bit ADC.
MAX_ADC = 1023

_FILE_NAME = "AuAu200_170kHz_10C_Iter2_{experiment}.xml_TPCMLDataInterface_{event}.npy"
_FOLDER_NAME = "12-2_{sector}-{side}"
_PATH_PATTERN = re.compile(
    r"(?:^|/)12-2_(?P<sector>\d+)-(?P<side>\d+)/"
    r"AuAu200_170kHz_10C_Iter2_(?P<experiment>\d+)\.xml_TPCMLDataInterface_(?P<event>\d+)\.npy$"
)


def _check_index(name: str, value, upper: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"WedgeId.{name} must be an int, got {value!r}")
    value = int(value)
    if value < 0 or (upper is not None and value >= upper):
        allowed = f"0..{upper - 1}" if upper is not None else ">= 0"
        raise ValueError(f"WedgeId.{name} must be in {allowed}, got {value}")
    return value


@dataclass(frozen=True, order=True)
class WedgeId:
    """Identity of one wedge: simulation job (experiment), event (frame) in it, side, sector.

    ``str(wedge_id)`` is ``"{experiment}-{event}-{side}-{sector}"``, a stable record id that
    :meth:`from_string` parses back. :meth:`relative_path` is the file's path in the public
    dataset layout, ``12-2_{sector}-{side}/AuAu200_170kHz_10C_Iter2_{experiment}.xml_
    TPCMLDataInterface_{event}.npy``.
    """

    experiment: int
    event: int
    side: int
    sector: int

    def __post_init__(self) -> None:
        object.__setattr__(self, "experiment", _check_index("experiment", self.experiment))
        object.__setattr__(self, "event", _check_index("event", self.event))
        object.__setattr__(self, "side", _check_index("side", self.side, NUM_SIDES))
        object.__setattr__(self, "sector", _check_index("sector", self.sector, NUM_SECTORS))

    def __str__(self) -> str:
        return f"{self.experiment}-{self.event}-{self.side}-{self.sector}"

    @classmethod
    def from_string(cls, text: str) -> WedgeId:
        """Parse the ``"{experiment}-{event}-{side}-{sector}"`` form written by ``str()``."""
        if not isinstance(text, str):
            raise TypeError(f"wedge id must be a str, got {type(text).__name__}")
        parts = text.strip().split("-")
        if len(parts) != 4 or not all(part.isdigit() for part in parts):
            raise ValueError(
                f"invalid wedge id {text!r}: expected 'experiment-event-side-sector' with four "
                f"non-negative integers, e.g. '0-3-1-11'"
            )
        return cls(*(int(part) for part in parts))

    @classmethod
    def from_path(cls, path) -> WedgeId:
        """Parse a path that follows the public layout (absolute or relative to the root)."""
        text = PurePath(path).as_posix()
        match = _PATH_PATTERN.search(text)
        if match is None:
            raise ValueError(
                f"file name {text!r} does not follow the public layout "
                f"'12-2_{{sector}}-{{side}}/{_FILE_NAME}'"
            )
        return cls(**{key: int(value) for key, value in match.groupdict().items()})

    def relative_path(self) -> PurePath:
        """Return the file's path relative to the dataset root, in the public layout."""
        folder = _FOLDER_NAME.format(sector=self.sector, side=self.side)
        return PurePath(folder, _FILE_NAME.format(experiment=self.experiment, event=self.event))


def to_file_layout(adc: np.ndarray) -> np.ndarray:
    """Transpose a wedge from (layer, azimuth, time) to the files' (azimuth, time, layer).

    Returns a C-contiguous copy, so ``np.save`` writes the public layout byte for byte.
    """
    if adc.shape != WEDGE_SHAPE:
        raise ValueError(f"wedge must have shape {WEDGE_SHAPE} (layer, azimuth, time), got {adc.shape}")
    return np.ascontiguousarray(adc.transpose(1, 2, 0))


def from_file_layout(stored: np.ndarray) -> np.ndarray:
    """Transpose a wedge from the files' (azimuth, time, layer) to (layer, azimuth, time).

    Returns a C-contiguous copy.
    """
    if stored.shape != FILE_SHAPE:
        raise ValueError(f"stored wedge must have shape {FILE_SHAPE} (azimuth, time, layer), got {stored.shape}")
    return np.ascontiguousarray(stored.transpose(2, 0, 1))

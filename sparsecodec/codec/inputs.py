"""Sources of the wedges to compress: ``.npy`` files, dataset roots, or the simulator.

A :class:`WedgeSource` yields (wedge id, raw ADC array (layer, azimuth, time)) pairs and can be
iterated more than once, so ``evaluate`` reads the inputs again to compare with the
reconstruction instead of holding every wedge in memory.

``.npy`` wedge files use the public dataset layout (azimuth, time, layer). Files of the TPC
wedge shape (16, 192, 249) are read and written by :mod:`sparsecodec.data`. Other wedge shapes
(a model built for another geometry) use the same axis order.
"""

from __future__ import annotations

import io
import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import numpy as np

from ..atomic import write_atomic

log = logging.getLogger(__name__)

SPLITS = ("train", "test", "all")


def count_of(count: int, noun: str) -> str:
    """Return "1 wedge", "2 wedges": ``count`` and ``noun`` with a plural s when needed."""
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"


@dataclass(frozen=True)
class WedgeSource:
    """A re-iterable sequence of (wedge id, uint16 ADC array (layer, azimuth, time)) pairs."""

    description: str
    count: int
    iterate: Callable[[], Iterator[tuple[str, np.ndarray]]]

    def __iter__(self) -> Iterator[tuple[str, np.ndarray]]:
        return self.iterate()

    def __len__(self) -> int:
        return self.count


def load_wedge_file(path: str | Path, shape: tuple[int, int, int]) -> np.ndarray:
    """Read a ``.npy`` wedge stored as (azimuth, time, layer); return uint16 (layer, azimuth, time)."""
    from ..data import WEDGE_SHAPE, load_wedge
    from ..data.validation import check_adc_array

    if tuple(shape) == WEDGE_SHAPE:
        return load_wedge(path)
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"wedge file not found: {path}")
    try:
        stored = np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError) as error:
        raise ValueError(f"{path}: not a readable .npy array ({error})") from error
    layers, azimuths, times = shape
    stored = check_adc_array(stored, (azimuths, times, layers), str(path))
    return np.ascontiguousarray(stored.transpose(2, 0, 1))


def save_wedge_file(path: str | Path, adc: np.ndarray) -> None:
    """Write a uint16 (layer, azimuth, time) wedge as a ``.npy`` file (azimuth, time, layer), atomically."""
    from ..data import WEDGE_SHAPE, to_file_layout
    from ..data.validation import check_adc_array

    adc = check_adc_array(adc, adc.shape, "adc")
    stored = to_file_layout(adc) if adc.shape == WEDGE_SHAPE else np.ascontiguousarray(adc.transpose(1, 2, 0))
    buffer = io.BytesIO()
    np.save(buffer, stored)
    write_atomic(path, buffer.getvalue())


def output_path_of(wedge_id: str) -> PurePosixPath:
    """Return the relative ``.npy`` path a decompressed wedge is written to.

    Ids of the public layout (``experiment-event-side-sector``) map to the public dataset file
    name, so a decompressed folder is laid out like the input dataset. Any other id is used as
    a relative path, with ``.npy`` appended unless it ends so.
    """
    from ..data import WedgeId

    try:
        return PurePosixPath(WedgeId.from_string(wedge_id).relative_path().as_posix())
    except ValueError:
        pass
    path = PurePosixPath(wedge_id.replace("\\", "/"))
    if path.is_absolute() or any(part in ("", ".", "..") for part in path.parts) or not path.parts:
        raise ValueError(f"wedge id {wedge_id!r} cannot be used as an output file name (absolute path or '..')")
    if any(not part.isprintable() for part in path.parts):
        raise ValueError(f"wedge id {wedge_id!r} contains control characters")
    return path if path.suffix == ".npy" else path.with_name(path.name + ".npy")


def _id_of_file(path: Path, root: Path | None) -> str:
    from ..data import WedgeId

    try:
        return str(WedgeId.from_path(path))
    except ValueError:
        pass
    if root is not None and path.is_relative_to(root):
        return path.relative_to(root).as_posix()
    return path.name


def _dataset_files(root: Path, split: str) -> list[Path]:
    from ..data import read_manifest

    splits = ("train", "test") if split == "all" else (split,)
    manifests = [name for name in splits if (root / f"{name}.txt").is_file()]
    if manifests:
        return [path for name in manifests for path in read_manifest(root, name)]
    if any((root / f"{name}.txt").is_file() for name in ("train", "test")):
        raise FileNotFoundError(f"dataset root {root} has no {split}.txt manifest")
    # A folder without manifests (for example the output of decompress): every .npy below it.
    return sorted(root.rglob("*.npy"))


def from_paths(paths: list[str | Path], shape: tuple[int, int, int], split: str = "all") -> WedgeSource:
    """Return the wedges of ``.npy`` files and dataset roots, in the order given.

    A dataset root contributes the files of its ``train.txt`` and/or ``test.txt`` manifest
    (``split``: train, test or all). A folder without manifests contributes every ``.npy``
    below it, sorted by path. Files are read when iterated, one at a time.
    """
    if split not in SPLITS:
        raise ValueError(f"split must be one of {', '.join(SPLITS)}, got {split!r}")
    entries: list[tuple[Path, str]] = []
    for given in paths:
        path = Path(given)
        if path.is_dir():
            entries.extend((file, _id_of_file(file, path)) for file in _dataset_files(path, split))
        elif path.is_file():
            if path.suffix != ".npy":
                raise ValueError(f"input {path} is not a .npy wedge file or a dataset folder")
            entries.append((path, _id_of_file(path, None)))
        else:
            raise FileNotFoundError(f"input not found: {path}")
    if not entries:
        raise ValueError(f"no wedge files found in {', '.join(map(str, paths))}")
    ids = [wedge_id for _, wedge_id in entries]
    if len(set(ids)) != len(ids):
        duplicate = next(wedge_id for wedge_id in ids if ids.count(wedge_id) > 1)
        raise ValueError(f"two inputs have the wedge id {duplicate!r}; give files with distinct names")

    def iterate() -> Iterator[tuple[str, np.ndarray]]:
        for file, wedge_id in entries:
            yield wedge_id, load_wedge_file(file, shape)

    return WedgeSource(count_of(len(entries), "wedge file"), len(entries), iterate)


def simulated_events(events: int, seed: int = 0, preset: str = "auau-central-170khz") -> WedgeSource:
    """Return the 24 wedges of each of ``events`` simulated events (frames).

    Wedge ids are ``experiment-event-side-sector`` with the simulation seed as the experiment
    number, so the same arguments always give the same wedges and ids. One event is simulated
    at a time.
    """
    from ..data import NUM_SECTORS, NUM_SIDES, PRESETS, WEDGES_PER_EVENT, WedgeId, simulate_event

    if isinstance(events, bool) or not isinstance(events, int) or events < 1:
        raise ValueError(f"number of simulated events must be a positive int, got {events!r}")
    if preset not in PRESETS:
        raise ValueError(f"unknown simulation preset {preset!r}; choose one of {', '.join(sorted(PRESETS))}")
    # simulate_event returns side 0 sectors 0..11, then side 1 sectors 0..11.
    order = [(side, sector) for side in range(NUM_SIDES) for sector in range(NUM_SECTORS)]

    def iterate() -> Iterator[tuple[str, np.ndarray]]:
        for event in range(events):
            log.debug("simulating event %d of %d (preset %s, seed %d)", event + 1, events, preset, seed)
            frame = simulate_event(preset, seed=seed, index=event)
            for (side, sector), adc in zip(order, frame, strict=True):
                yield str(WedgeId(seed, event, side, sector)), adc

    description = f"{count_of(events, 'simulated ' + preset + ' event')} (seed {seed}, {WEDGES_PER_EVENT} wedges each)"
    return WedgeSource(description, events * WEDGES_PER_EVENT, iterate)

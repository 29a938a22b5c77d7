"""Shared pieces of the codec, metrics and CLI tests: small wedges, headers and model files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from sparsecodec.codec import CompressedFileWriter, FileHeader

TPC_SHAPE = (16, 192, 249)
#: A wedge shape small enough that the dense decoders run in milliseconds.
SMALL_SHAPE = (4, 12, 16)

AUTHORS_CHECKPOINT = (Path(__file__).resolve().parents[1].parent / "shared" / "reference" / "bcae-vs-authors"
                      / "model_last.pth")


def require_authors_checkpoint() -> Path:
    if not AUTHORS_CHECKPOINT.is_file():
        pytest.skip(f"the BCAE-VS authors' checkpoint is not at {AUTHORS_CHECKPOINT}")
    return AUTHORS_CHECKPOINT


def small_model_file(folder: Path, shape=SMALL_SHAPE) -> Path:
    """Save the authors' weights in a model of wedge shape ``shape`` and return the file."""
    from sparsecodec.model import BCAEVS, load_model, save_model

    checkpoint = require_authors_checkpoint()
    authors, _, _ = load_model(checkpoint)
    model = BCAEVS(spatial_shape=shape)
    model.load_state_dict(authors.state_dict())
    path = folder / "authors-small.pt"
    save_model(model, path, "bcae-vs-authors-small")
    return path


def random_key_points(count: int, shape=TPC_SHAPE, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Return ``count`` distinct random (layer, azimuth, time) voxels in random order and values in (0, 1)."""
    rng = np.random.default_rng(seed)
    volume = shape[0] * shape[1] * shape[2]
    index = rng.choice(volume, size=count, replace=False)
    coords = np.stack(np.unravel_index(index, shape), axis=1).astype(np.int32)
    return coords, rng.random(count).astype(np.float32)


def track_wedge(shape=SMALL_SHAPE, tracks: int = 3, seed: int = 0) -> np.ndarray:
    """Return a uint16 ADC wedge (layer, azimuth, time) with a few straight tracks of ADC 80..1000."""
    rng = np.random.default_rng(seed)
    adc = np.zeros(shape, dtype=np.uint16)
    layers, azimuths, times = shape
    for _ in range(tracks):
        azimuth, time = rng.uniform(0, azimuths), rng.uniform(0, times)
        slope_azimuth, slope_time = rng.uniform(-1, 1), rng.uniform(-1.5, 1.5)
        for layer in range(layers):
            a = int(azimuth + slope_azimuth * layer)
            t = int(time + slope_time * layer)
            for da in (-1, 0, 1):
                for dt in range(-1, 3):
                    if 0 <= a + da < azimuths and 0 <= t + dt < times:
                        adc[layer, a + da, t + dt] = rng.integers(80, 1000)
    return adc


def make_header(shape=TPC_SHAPE, coordinate_coding="auto", value_coding="auto", **changes) -> FileHeader:
    fields = dict(model_name="test-model", model_sha256="ab" * 32, gate_mode="random", gate_value=None,
                  gate_seed=0, wedge_shape=tuple(shape), coordinate_coding=coordinate_coding,
                  value_coding=value_coding, created_by="tests")
    fields.update(changes)
    return FileHeader(**fields)


def write_sample_file(path: Path, counts=(0, 1, 40, 900, 3000), shape=TPC_SHAPE, **header_changes) -> list:
    """Write one record per entry of ``counts`` (kept voxels) and return [(id, signal, coords, values)]."""
    written = []
    with CompressedFileWriter(path, make_header(shape, **header_changes)) as writer:
        for number, count in enumerate(counts):
            coords, values = random_key_points(count, shape, seed=number)
            wedge_id = f"0-{number}-{number % 2}-{number % 12}"
            writer.write(wedge_id, count + 5 * number, coords, values)
            written.append((wedge_id, count + 5 * number, coords, values))
    return written


def sorted_expected(coords: np.ndarray, values: np.ndarray, shape=TPC_SHAPE) -> tuple[np.ndarray, np.ndarray]:
    """Return key points in ascending linear index with float16 values: what a reader returns."""
    index = np.ravel_multi_index(coords.T.astype(np.int64), shape) if len(coords) else np.zeros(0, np.int64)
    order = np.argsort(index)
    return coords[order].astype(np.int32), values[order].astype(np.float16)


def write_small_wedges(folder: Path, count: int = 3) -> list[tuple[str, np.ndarray]]:
    """Write ``count`` SMALL_SHAPE wedges as .npy files (azimuth, time, layer) into ``folder``."""
    from sparsecodec.codec.inputs import save_wedge_file

    wedges = []
    for number in range(count):
        adc = track_wedge(SMALL_SHAPE, tracks=2 + number, seed=number)
        save_wedge_file(folder / f"wedge{number}.npy", adc)
        wedges.append((f"wedge{number}.npy", adc))
    return wedges

"""Writing simulated events as a dataset in the public layout.

Events are grouped as in the public dataset, where one simulation job (an "experiment")
contains ten frames: event ``i`` of a run is frame ``i % 10`` of experiment ``first_experiment + i // 10``.
Whole events go to one split, the last ``round(test_fraction * events)`` to ``test``, so no
event contributes wedges to both splits.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ...atomic import write_atomic
from ..layout import EVENT_WEDGE_ORDER, WedgeId
from ..reader import (
    OCCUPANCY_TABLE,
    OccupancyRecord,
    save_wedge,
    write_manifest,
    write_occupancy_table,
)
from ..statistics import occupancy
from .engine import DATASET_STREAM, find_multiplicity_scale, resolve_config, seed_sequence, simulate_frame
from .presets import SimulationConfig

log = logging.getLogger(__name__)

EVENTS_PER_EXPERIMENT = 10
METADATA_FILE = "simulation.json"


@dataclass(frozen=True)
class SimulationSummary:
    """Summary of a :func:`simulate_dataset` run: the root, settings, and per-wedge occupancies."""

    root: Path
    config: SimulationConfig
    seed: int
    events: int
    records: tuple[OccupancyRecord, ...]
    seconds: float

    @property
    def occupancies(self) -> np.ndarray:
        return np.array([record.occupancy for record in self.records])


def wedge_ids_of_event(index: int, first_experiment: int = 0) -> list[WedgeId]:
    """Return the 24 wedge ids of event ``index`` in the order simulate_frame returns wedges."""
    experiment = first_experiment + index // EVENTS_PER_EXPERIMENT
    event = index % EVENTS_PER_EXPERIMENT
    return [WedgeId(experiment, event, side, sector) for side, sector in EVENT_WEDGE_ORDER]


def count_test_events(events: int, test_fraction: float) -> int:
    """Number of events that go to the test split.

    Both splits get at least one event when there are two or more events and the fraction is
    strictly between 0 and 1.
    """
    if test_fraction <= 0.0:
        return 0
    if test_fraction >= 1.0:
        return events
    count = int(round(test_fraction * events))
    if events >= 2:
        count = min(max(count, 1), events - 1)
    return count


def _simulate_and_write(root: Path, config: SimulationConfig, seed: int, index: int, first_experiment: int) -> list[tuple[WedgeId, float]]:
    frame = simulate_frame(config, seed_sequence(seed, DATASET_STREAM, index))
    ids = wedge_ids_of_event(index, first_experiment)
    for wedge_id, adc in zip(ids, frame.adc):
        save_wedge(root / wedge_id.relative_path(), adc)
    return list(zip(ids, occupancy(frame.adc).tolist()))


def _config_as_json(config: SimulationConfig) -> dict:
    return json.loads(json.dumps(dataclasses.asdict(config), default=str))


def simulate_dataset(
    root,
    preset="auau-central-170khz",
    events: int = 4,
    seed: int = 0,
    occupancy_target: float | None = None,
    test_fraction: float = 0.25,
    first_experiment: int = 0,
    workers: int = 1,
    progress: bool = True,
    overwrite: bool = False,
    **changes,
) -> SimulationSummary:
    """Simulate ``events`` events and write them under ``root`` in the public dataset layout.

    Writes the 24 wedge files of every event, ``train.txt``, ``test.txt``,
    ``occupancy_by_wedge.csv`` and ``simulation.json`` (the settings, for provenance).
    ``preset`` is a preset name or a :class:`SimulationConfig`; keyword ``changes`` override
    its fields (for example ``pileup_rate_khz=50.0``). ``occupancy_target`` rescales the track
    multiplicity so that the mean wedge occupancy is close to it. The same ``seed`` gives the
    same files, whatever the number of ``workers`` (processes).

    Raises FileExistsError when ``root`` already contains a dataset and ``overwrite`` is False.
    """
    config = resolve_config(preset, **changes)
    if isinstance(events, bool) or not isinstance(events, (int, np.integer)) or events < 1:
        raise ValueError(f"events must be a positive int, got {events!r}")
    if not 0.0 <= test_fraction <= 1.0:
        raise ValueError(f"test_fraction must be in 0..1, got {test_fraction}")
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise ValueError(f"workers must be a positive int, got {workers!r}")
    seed_sequence(seed, DATASET_STREAM, 0)  # validates the seed

    root = Path(root)
    existing = [name for name in ("train.txt", "test.txt", OCCUPANCY_TABLE) if (root / name).exists()]
    if existing and not overwrite:
        raise FileExistsError(
            f"{root} already contains a dataset ({', '.join(existing)}); choose another folder or pass "
            f"overwrite=True (--overwrite) to replace it"
        )
    if occupancy_target is not None:
        scale = find_multiplicity_scale(config, float(occupancy_target))
        config = config.replace(multiplicity_scale=config.collisions.multiplicity_scale * scale)
        log.info("occupancy target %.4g: track multiplicity scaled by %.4g", occupancy_target, scale)
    # Created only after every check, so a rejected setting leaves no empty folder behind.
    root.mkdir(parents=True, exist_ok=True)

    log.info("simulating %d events of %s (seed %d) into %s", events, config.name, seed, root)
    started = time.perf_counter()
    results = _run_events(root, config, seed, events, first_experiment, workers, progress)

    test_events = count_test_events(events, test_fraction)
    records = []
    for index, wedges in enumerate(results):
        split = "test" if index >= events - test_events else "train"
        records.extend(OccupancyRecord(wedge_id, split, value) for wedge_id, value in wedges)

    for split in ("train", "test"):
        write_manifest(root, split, [record.wedge.relative_path() for record in records if record.split == split])
    write_occupancy_table(root, records)
    metadata = {
        "generator": "sparsecodec.data.simulate",
        "preset": config.name,
        "seed": seed,
        "events": events,
        "first_experiment": first_experiment,
        "occupancy_target": occupancy_target,
        "config": _config_as_json(config),
    }
    write_atomic(root / METADATA_FILE, (json.dumps(metadata, indent=2) + "\n").encode("utf-8"))

    seconds = time.perf_counter() - started
    values = np.array([record.occupancy for record in records])
    log.info(
        "wrote %d wedges in %.1f s: occupancy mean %.4f, range %.4f..%.4f",
        len(records), seconds, values.mean(), values.min(), values.max(),
    )
    return SimulationSummary(root, config, seed, events, tuple(records), seconds)


def _run_events(root, config, seed, events, first_experiment, workers, progress):
    from tqdm import tqdm

    bar = tqdm(total=events, unit="event", desc="simulate", disable=not progress)
    try:
        if workers == 1:
            results = []
            for index in range(events):
                results.append(_simulate_and_write(root, config, seed, index, first_experiment))
                bar.update()
            return results

        workers = min(workers, events, os.cpu_count() or 1)
        with ProcessPoolExecutor(max_workers=workers) as pool:
            futures = [
                pool.submit(_simulate_and_write, root, config, seed, index, first_experiment) for index in range(events)
            ]
            results = []
            for future in futures:
                results.append(future.result())
                bar.update()
            return results
    finally:
        bar.close()

"""Speed of the wedge simulator (pytest-benchmark): whole events per preset, and single wedges.

Run ``pytest bench/test_simulate_speed.py --benchmark-only``. The simulator runs on one thread,
so the wall time per event is also its single-core cost. ``extra_info`` records the CPU time
of the last round next to it, which shows when other processes competed for the core. Each
round simulates a different event index, so no round repeats another's work.
"""

from __future__ import annotations

import itertools
import time

import numpy as np
import pytest

from sparsecodec.data.simulate import PRESETS, simulate_event, simulate_wedges
from sparsecodec.data.statistics import occupancy

ROUNDS = 5


@pytest.mark.benchmark(group="simulate event (24 wedges)")
@pytest.mark.parametrize("preset", sorted(PRESETS))
def test_simulate_event(benchmark, preset):
    simulate_event(preset, seed=0, index=0)  # compiles or loads the numba kernels
    indices = itertools.count(1)
    cpu = {}

    def run():
        started = time.process_time()
        event = simulate_event(preset, seed=0, index=next(indices))
        cpu["seconds"] = time.process_time() - started
        return event

    event = benchmark.pedantic(run, rounds=ROUNDS, iterations=1)
    assert event.shape == (24, 16, 192, 249)
    low, high = PRESETS[preset].occupancy_band
    mean = float(occupancy(event).mean())
    # One event may leave the band of the mean of many events, but not by a factor of 3.
    assert low / 3 <= mean <= high * 3
    benchmark.extra_info.update(preset=preset, wedges=24, occupancy=mean, cpu_seconds_last_round=cpu["seconds"])


@pytest.mark.benchmark(group="simulate one wedge")
@pytest.mark.parametrize("source", ["auau-central-170khz", 0.01])
def test_simulate_single_wedge(benchmark, source):
    simulate_wedges(source, 1, seed=0)  # compiles the kernels and calibrates a target occupancy
    seeds = itertools.count(1)

    def run():
        return simulate_wedges(source, 4, seed=next(seeds))

    wedges = benchmark.pedantic(run, rounds=ROUNDS, iterations=1)
    assert len(wedges) == 4
    benchmark.extra_info.update(source=str(source), wedges_per_round=4, occupancy=float(occupancy(np.stack(wedges)).mean()))

"""Fixtures and the ratio summary of the encoder benchmarks.

Run ``pytest bench/ --benchmark-only`` for the full sweep (13 minutes on 2 CPU cores with all five
backends) or
add ``--quick`` for two occupancies at batch 1 (under 2 minutes). Every case checks its output
against the float64 dense encoder before it is timed.
"""

from __future__ import annotations

from collections import defaultdict

import pytest
import torch

import sparsecodec.backends as backends
from sparsecodec.benchmark import CENTRAL_MIX, SWEEP_OCCUPANCIES, reference_encoder, simulated_input
from sparsecodec.benchmark.sweep import _oracle

QUICK_POINTS = (1e-3, 0.1)
_throughput: dict[str, dict[str, float]] = defaultdict(dict)


def pytest_addoption(parser):
    parser.addoption("--quick", action="store_true", help="two occupancies at batch 1 only (under 2 minutes)")


def pytest_generate_tests(metafunc):
    quick = metafunc.config.getoption("--quick")
    if "point" in metafunc.fixturenames:
        points = QUICK_POINTS if quick else SWEEP_OCCUPANCIES + (CENTRAL_MIX,)
        metafunc.parametrize("point", points, ids=[str(point) for point in points])
    if "batch_size" in metafunc.fixturenames:
        batches = (1,) if quick else (1, 8)
        metafunc.parametrize("batch_size", batches, ids=[f"batch{batch}" for batch in batches])


@pytest.fixture(params=tuple(backends.BACKENDS))
def backend_name(request):
    reason = backends.status(request.param)
    if reason != "ok":
        pytest.skip(f"backend {request.param!r} unavailable: {reason}")
    return request.param


@pytest.fixture(params=["cpu", "cuda"])
def device(request):
    if request.param == "cuda" and not torch.cuda.is_available():
        pytest.skip(f"CUDA not available (torch {torch.__version__})")
    return torch.device(request.param)


_inputs: dict = {}
_oracles: dict = {}


@pytest.fixture
def encoder_input():
    """Return (input, float64 oracle output) for a sweep point and batch size, simulated once."""

    def make(point, batch_size):
        key = (point, batch_size)
        if key not in _inputs:
            _inputs[key] = simulated_input(point, batch_size, seed=0)
            _oracles[key] = _oracle(reference_encoder(0), _inputs[key])
        return _inputs[key], _oracles[key]

    return make


def record_throughput(group: str, backend: str, wedges_per_second: float) -> None:
    _throughput[group][backend] = wedges_per_second


def pytest_terminal_summary(terminalreporter):
    if not _throughput:
        return
    terminalreporter.section("encoder wedges/s per group, and native over the fastest other library")
    for group in sorted(_throughput):
        speeds = _throughput[group]
        peers = {name: speed for name, speed in speeds.items() if name not in ("native", "dense")}
        text = ", ".join(f"{name} {speed:,.1f}" for name, speed in sorted(speeds.items()))
        if "native" in speeds and peers:
            best = max(peers, key=peers.get)
            text += f" | native / {best} = {speeds['native'] / peers[best]:.1f}x"
        terminalreporter.write_line(f"{group}: {text}")

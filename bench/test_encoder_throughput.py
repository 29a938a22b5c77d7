"""Encoder throughput per backend, occupancy, batch size and device (pytest-benchmark).

Timed regions start with the sparse input on the device and end with the kept coordinates and
values on the device; host-to-device transfer is not included. Each round encodes a fresh copy
of the coordinates, so no kernel map is reused between rounds.
"""

from __future__ import annotations

import time

import pytest
import torch

import sparsecodec.backends as backends
from sparsecodec.benchmark import reference_encoder
from sparsecodec.model import GateConfig, select_key_points
from conftest import record_throughput

TOLERANCE = 1e-5
MIN_TIME = 0.5
#: Calls longer than this (seconds) are timed once: their spread is small next to their length,
#: and three rounds of MinkowskiEngine or torchsparse at 0.3 occupancy and batch 8 would take
#: minutes.
SLOW_CALL = 2.0


def rounds_for(call, setup) -> int:
    """Number of rounds that fill about MIN_TIME, from one timed call; at least 3 unless slow.

    That call also warms the backend up (numba compilation, scratch buffers, library caches), so
    the benchmarks below need no separate warm-up round.
    """
    args, _ = setup()
    start = time.perf_counter()
    call(*args)
    elapsed = max(time.perf_counter() - start, 1e-6)
    if elapsed > SLOW_CALL:
        return 1
    return max(3, min(100, int(MIN_TIME / elapsed)))


def describe(benchmark, backend_name, device, data, batch_size):
    backend = backends.get(backend_name)
    benchmark.extra_info.update(
        backend=backend_name,
        library_version=backend.version,
        device=str(device),
        threads=torch.get_num_threads(),
        occupancy=data.mean_occupancy,
        voxels=data.voxels,
        batch_size=batch_size,
        point=data.label,
    )
    if backend_name == "native" and device.type == "cpu":
        from sparsecodec.kernels.openmp import runtime_description

        benchmark.extra_info["native_threads"] = runtime_description()


def test_encode(benchmark, backend_name, device, point, batch_size, encoder_input):
    data, oracle = encoder_input(point, batch_size)
    data = data.to(device)
    encoder = reference_encoder(0).to(device)
    volume = 16 * 192 * 249
    gate = GateConfig("random", seed=0)

    with torch.no_grad():
        output = encoder(data.coords, data.log_adc, batch_size, backend=backend_name)
    for name in ("probability", "value"):
        error = (getattr(output, name).double().cpu() - getattr(oracle, name)).abs().max().item()
        assert error <= TOLERANCE, f"{backend_name} {name} differs from the float64 dense encoder by {error:.3g}"

    def encode(coords):
        with torch.no_grad():
            result = encoder(coords, data.log_adc, batch_size, backend=backend_name)
            _, kept_coords, kept_values = select_key_points(result.probability, result.value, coords, gate, volume,
                                                            batch_size)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        return kept_coords, kept_values

    def setup():
        return (data.coords.clone(),), {}

    benchmark.group = f"encode {point} batch {batch_size} {device.type}"
    describe(benchmark, backend_name, device, data, batch_size)
    kept_coords, kept_values = benchmark.pedantic(encode, setup=setup, rounds=rounds_for(encode, setup), warmup_rounds=0)
    assert kept_coords.shape[0] == kept_values.shape[0] <= data.voxels

    wedges_per_second = batch_size / benchmark.stats.stats.median
    benchmark.extra_info["wedges_per_second"] = wedges_per_second
    benchmark.extra_info["voxels_per_second"] = data.voxels / benchmark.stats.stats.median
    record_throughput(benchmark.group, backend_name, wedges_per_second)


@pytest.mark.parametrize("dilation", [1, 2, 4])
def test_kernel_map(benchmark, backend_name, device, point, encoder_input, dilation):
    data, _ = encoder_input(point, 1)
    data = data.to(device)
    backend = backends.get(backend_name)

    def build(coords):
        kernel_map = backend.build_kernel_map(coords, (16, 192, 249), 3, dilation, batch_size=1, cache=False)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        return kernel_map

    def setup():
        return (data.coords.clone(),), {}

    benchmark.group = f"kernel map {point} d{dilation} {device.type}"
    describe(benchmark, backend_name, device, data, 1)
    kernel_map = benchmark.pedantic(build, setup=setup, rounds=rounds_for(build, setup), warmup_rounds=0)
    assert kernel_map.num_rows == data.voxels


@pytest.mark.parametrize("layer", [0, 1, 2, 3, 4])
def test_convolution(benchmark, backend_name, device, point, encoder_input, layer):
    data, _ = encoder_input(point, 1)
    data = data.to(device)
    backend = backends.get(backend_name)
    conv = reference_encoder(0).to(device).convs[layer]
    kernel_map = backend.build_kernel_map(data.coords, (16, 192, 249), conv.kernel_size, conv.dilation, batch_size=1)
    features = torch.rand(data.voxels, conv.in_channels, device=device)

    def convolve():
        with torch.no_grad():
            out = conv(features, kernel_map, backend, "relu")
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        return out

    benchmark.group = f"convolution {point} layer {layer} {device.type}"
    describe(benchmark, backend_name, device, data, 1)
    out = benchmark.pedantic(convolve, rounds=rounds_for(lambda: convolve(), lambda: ((), {})), warmup_rounds=0)
    assert out.shape == (data.voxels, conv.out_channels)

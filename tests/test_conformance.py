"""Every backend computes the same submanifold convolution as the float64 dense oracle."""

from __future__ import annotations

import pytest
import torch

import sparsecodec.backends as backends
from conftest import assert_close_to_oracle, oracle
from sparse_cases import (
    WEDGE_SHAPE,
    at_occupancy,
    batch_of,
    boundary_sites,
    random_sites,
    track_like,
)


def run_case(backend, device, coords, in_channels, out_channels, kernel_size, dilation, shape,
             dtype=torch.float32, batch_size=None, bias=False, seed=0):
    """Convolve random features on ``backend`` and on the oracle; return (output, reference)."""
    generator = torch.Generator().manual_seed(seed)
    features = torch.randn(coords.shape[0], in_channels, generator=generator, dtype=torch.float64)
    weight = torch.randn(out_channels, in_channels, kernel_size, kernel_size, kernel_size,
                         generator=generator, dtype=torch.float64)
    bias_tensor = torch.randn(out_channels, generator=generator, dtype=torch.float64) if bias else None

    kernel_map = backend.build_kernel_map(coords.to(device), shape, kernel_size, dilation, batch_size=batch_size)
    output = backend.conv(
        features.to(device, dtype),
        kernel_map,
        weight.to(device, dtype),
        None if bias_tensor is None else bias_tensor.to(device, dtype),
    )
    reference = oracle(coords, features, weight, dilation, shape, batch_size, bias_tensor)
    return output, reference


def label(backend, device, dtype, case):
    return f"{backend.name}/{device.type}/{str(dtype).removeprefix('torch.')}: {case}"


@pytest.mark.parametrize("occupancy", [1e-3, 1e-2, 0.1, 0.3])
@pytest.mark.parametrize("dilation", [1, 2, 4])
def test_random_wedge(backend, device, occupancy, dilation):
    coords = at_occupancy(occupancy, seed=int(occupancy * 1000) + dilation)
    output, reference = run_case(backend, device, coords, 1, 2, 3, dilation, WEDGE_SHAPE)
    assert_close_to_oracle(output, reference, torch.float32, label(backend, device, torch.float32, f"occupancy {occupancy} d{dilation}"))


@pytest.mark.parametrize("dilation", [1, 2, 4])
def test_track_like_wedge(backend, device, dilation):
    coords = track_like(tracks=60, seed=dilation)
    output, reference = run_case(backend, device, coords, 1, 2, 3, dilation, WEDGE_SHAPE)
    assert_close_to_oracle(output, reference, torch.float32, label(backend, device, torch.float32, f"tracks d{dilation}"))


@pytest.mark.parametrize("kernel_size", [1, 3])
@pytest.mark.parametrize("channels", [(1, 2), (2, 2), (3, 5)], ids=lambda c: f"{c[0]}to{c[1]}")
def test_kernel_size_and_channels(backend, device, kernel_size, channels):
    shape = (8, 40, 50)
    coords = at_occupancy(0.05, shape, seed=kernel_size)
    output, reference = run_case(backend, device, coords, *channels, kernel_size, 2, shape)
    assert_close_to_oracle(output, reference, torch.float32,
                           label(backend, device, torch.float32, f"k{kernel_size} {channels}"))


def test_float64(backend, device):
    if torch.float64 not in backend.dtypes:
        pytest.skip(f"backend {backend.name!r} has no float64 convolution")
    coords = track_like(tracks=10, seed=3)
    output, reference = run_case(backend, device, coords, 2, 2, 3, 2, WEDGE_SHAPE, dtype=torch.float64)
    assert output.dtype == torch.float64
    assert_close_to_oracle(output, reference, torch.float64, label(backend, device, torch.float64, "tracks"))


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16], ids=["float16", "bfloat16"])
def test_half_precision(backend, device, dtype):
    if dtype not in backend.dtypes:
        pytest.skip(f"backend {backend.name!r} has no {dtype} convolution")
    if device.type == "cpu" and dtype == torch.float16 and backend.name == "dense":
        pytest.skip("torch has no float16 conv3d on CPU")
    coords = at_occupancy(0.02, (8, 40, 50), seed=5)
    output, reference = run_case(backend, device, coords, 2, 2, 3, 1, (8, 40, 50), dtype=dtype)
    assert output.dtype == dtype
    assert_close_to_oracle(output, reference, dtype, label(backend, device, dtype, "occupancy 0.02"))


def test_bias(backend, device):
    coords = at_occupancy(0.05, (8, 40, 50), seed=6)
    output, reference = run_case(backend, device, coords, 2, 3, 3, 1, (8, 40, 50), bias=True)
    assert_close_to_oracle(output, reference, torch.float32, label(backend, device, torch.float32, "bias"))


def test_batch_of_three(backend, device):
    coords = batch_of(at_occupancy(1e-3, seed=1), at_occupancy(0.05, seed=2), track_like(20, seed=3))
    output, reference = run_case(backend, device, coords, 1, 2, 3, 2, WEDGE_SHAPE)
    assert_close_to_oracle(output, reference, torch.float32, label(backend, device, torch.float32, "batch of 3"))


def test_batch_with_empty_middle(backend, device):
    coords = batch_of(at_occupancy(0.01, seed=1), torch.zeros((0, 4), dtype=torch.int32), at_occupancy(0.01, seed=2))
    assert set(coords[:, 0].tolist()) == {0, 2}, "item 1 of the batch must be empty"
    output, reference = run_case(backend, device, coords, 1, 2, 3, 4, WEDGE_SHAPE, batch_size=3)
    assert_close_to_oracle(output, reference, torch.float32, label(backend, device, torch.float32, "empty middle item"))


@pytest.mark.parametrize("dilation", [1, 2, 4])
def test_boundary_voxels(backend, device, dilation):
    shape = (6, 7, 8)
    coords = boundary_sites(shape)
    output, reference = run_case(backend, device, coords, 1, 2, 3, dilation, shape)
    assert_close_to_oracle(output, reference, torch.float32, label(backend, device, torch.float32, f"boundary d{dilation}"))


def test_empty_input(backend, device):
    coords = torch.zeros((0, 4), dtype=torch.int32, device=device)
    features = torch.zeros((0, 2), device=device, requires_grad=True)
    weight = torch.randn(3, 2, 3, 3, 3, device=device, requires_grad=True)
    output = backends.submanifold_conv3d(coords, features, weight, dilation=2, backend=backend)
    assert output.shape == (0, 3)
    output.sum().backward()
    assert torch.equal(weight.grad, torch.zeros_like(weight))


def test_single_isolated_voxel(backend, device):
    coords = torch.tensor([[0, 7, 100, 120]], dtype=torch.int32)
    output, reference = run_case(backend, device, coords, 1, 2, 3, 1, WEDGE_SHAPE)
    # Alone, the voxel sees only the centre tap of the kernel.
    assert_close_to_oracle(output, reference, torch.float32, label(backend, device, torch.float32, "single voxel"))


def test_dilation_changes_result(backend, device):
    # Two voxels two sites apart: neighbours at dilation 2, strangers at dilation 1.
    coords = torch.tensor([[0, 3, 5, 5], [0, 3, 5, 7], [0, 5, 5, 5]], dtype=torch.int32)
    out_d1, ref_d1 = run_case(backend, device, coords, 1, 2, 3, 1, (8, 10, 10), seed=11)
    out_d2, ref_d2 = run_case(backend, device, coords, 1, 2, 3, 2, (8, 10, 10), seed=11)
    assert not torch.allclose(ref_d1, ref_d2), "test data must make dilation matter"
    assert_close_to_oracle(out_d1, ref_d1, torch.float32, label(backend, device, torch.float32, "dilation 1 vs 2"))
    assert_close_to_oracle(out_d2, ref_d2, torch.float32, label(backend, device, torch.float32, "dilation 1 vs 2"))


def test_maps_for_same_coords_stay_apart(backend, device):
    coords = track_like(tracks=30, seed=4).to(device)
    generator = torch.Generator().manual_seed(0)
    features = torch.randn(coords.shape[0], 2, generator=generator, dtype=torch.float64)
    weight3 = torch.randn(2, 2, 3, 3, 3, generator=generator, dtype=torch.float64)
    weight1 = torch.randn(2, 2, 1, 1, 1, generator=generator, dtype=torch.float64)

    results = {}
    for kernel_size, dilation, weight in [(3, 1, weight3), (3, 4, weight3), (1, 1, weight1), (3, 2, weight3), (3, 1, weight3)]:
        kernel_map = backend.build_kernel_map(coords, WEDGE_SHAPE, kernel_size, dilation)
        assert (kernel_map.kernel_size, kernel_map.dilation) == (kernel_size, dilation)
        output = backend.conv(features.float().to(device), kernel_map, weight.float().to(device))
        reference = oracle(coords, features, weight, dilation, WEDGE_SHAPE)
        assert_close_to_oracle(output, reference, torch.float32,
                               label(backend, device, torch.float32, f"shared coords k{kernel_size} d{dilation}"))
        results.setdefault((kernel_size, dilation), []).append(kernel_map)
    assert results[(3, 1)][0] is results[(3, 1)][1], "the cache must return the map built for the same key"


def test_shuffled_rows_follow_input_order(backend, device):
    coords = track_like(tracks=30, seed=8)
    generator = torch.Generator().manual_seed(1)
    features = torch.randn(coords.shape[0], 2, generator=generator)
    weight = torch.randn(2, 2, 3, 3, 3, generator=generator)
    order = torch.randperm(coords.shape[0], generator=generator)

    straight = backends.submanifold_conv3d(coords.to(device), features.to(device), weight.to(device), dilation=2, backend=backend)
    shuffled = backends.submanifold_conv3d(coords[order].to(device), features[order].to(device), weight.to(device),
                                           dilation=2, backend=backend)
    torch.testing.assert_close(shuffled.cpu(), straight.cpu()[order], rtol=1e-5, atol=1e-6)


def test_gradients_match_oracle(backend, device):
    shape = (5, 6, 7)
    coords = random_sites(60, shape, seed=9)
    generator = torch.Generator().manual_seed(2)
    features = torch.randn(coords.shape[0], 2, generator=generator, dtype=torch.float64)
    weight = torch.randn(3, 2, 3, 3, 3, generator=generator, dtype=torch.float64)
    upstream = torch.randn(coords.shape[0], 3, generator=generator, dtype=torch.float64)
    dtype = torch.float64 if torch.float64 in backend.dtypes else torch.float32

    def gradients(chosen, device, dtype):
        x = features.to(device, dtype).requires_grad_()
        w = weight.to(device, dtype).requires_grad_()
        out = backends.submanifold_conv3d(coords.to(device), x, w, dilation=2, spatial_shape=shape, backend=chosen)
        (out * upstream.to(device, dtype)).sum().backward()
        return x.grad.double().cpu(), w.grad.double().cpu()

    grad_x, grad_w = gradients(backend, device, dtype)
    ref_x, ref_w = gradients("dense", torch.device("cpu"), torch.float64)
    assert_close_to_oracle(grad_x, ref_x, dtype, label(backend, device, dtype, "grad features"))
    assert_close_to_oracle(grad_w, ref_w, dtype, label(backend, device, dtype, "grad weight"))


def test_weight_layout_round_trip(backend):
    weight = torch.randn(5, 3, 3, 3, 3)
    converted = backend.convert_weight(weight)
    assert torch.equal(backend.weight_from_library(converted), weight)


@pytest.mark.parametrize("activation", ["relu", "sigmoid"])
def test_activation_after_conv(backend, device, activation):
    coords = track_like(tracks=20, seed=12).to(device)
    generator = torch.Generator().manual_seed(4)
    features = torch.randn(coords.shape[0], 2, generator=generator, dtype=torch.float64)
    weight = torch.randn(2, 2, 3, 3, 3, generator=generator, dtype=torch.float64)
    kernel_map = backend.build_kernel_map(coords, WEDGE_SHAPE, 3, 2)
    output = backend.conv(features.float().to(device), kernel_map, weight.float().to(device), activation=activation)
    reference = getattr(torch, activation)(oracle(coords, features, weight, 2, WEDGE_SHAPE))
    assert_close_to_oracle(output, reference, torch.float32, label(backend, device, torch.float32, activation))


def test_conv_stack_matches_oracle(backend, device):
    coords = track_like(tracks=25, seed=13).to(device)
    generator = torch.Generator().manual_seed(7)
    features = torch.rand(coords.shape[0], 1, generator=generator, dtype=torch.float64)
    layers = [(1, 2, 3, 1), (2, 2, 3, 2), (2, 2, 3, 4), (2, 2, 1, 1)]
    weights = [torch.randn(c_out, c_in, k, k, k, generator=generator, dtype=torch.float64) for c_in, c_out, k, _ in layers]
    activations = ["relu", "relu", "relu", "sigmoid"]
    maps = [backend.build_kernel_map(coords, WEDGE_SHAPE, k, d) for _, _, k, d in layers]
    output = backend.conv_stack(features.float().to(device), maps, [w.float().to(device) for w in weights], activations)

    reference = features
    for (_, _, _, dilation), weight, activation in zip(layers, weights, activations):
        reference = getattr(torch, activation)(oracle(coords, reference, weight, dilation, WEDGE_SHAPE))
    assert_close_to_oracle(output, reference, torch.float32, label(backend, device, torch.float32, "conv stack"))

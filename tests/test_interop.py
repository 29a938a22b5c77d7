"""One set of canonical weights gives the same results on every backend.

A small stack of submanifold convolutions, written once against ``sparsecodec.backends``, runs on
each installed backend with the same ``torch.nn.Module`` parameters. Weight conversions to each
library's layout must round-trip exactly.
"""

from __future__ import annotations

import copy
from functools import lru_cache

import pytest
import torch

import sparsecodec.backends as backends
from conftest import TOLERANCE, assert_close_to_oracle
from sparse_cases import batch_of, track_like
from sparsecodec.backends.minkowski_backend import canonical_to_minkowski
from sparsecodec.backends.torchsparse_backend import canonical_to_torchsparse


class SubmanifoldStack(torch.nn.Module):
    """Submanifold convolutions with bias and ReLU between them, dilations 1, 2, 4, 1.

    Parameters use the canonical ``torch.nn.Conv3d`` layout (C_out, C_in, 3, 3, 3), so the same
    ``state_dict`` loads whichever backend runs the module.
    """

    def __init__(self, channels=(1, 3, 3, 3, 2), dilations=(1, 2, 4, 1), seed=0):
        super().__init__()
        generator = torch.Generator().manual_seed(seed)
        self.dilations = dilations
        self.weights = torch.nn.ParameterList()
        self.biases = torch.nn.ParameterList()
        for c_in, c_out in zip(channels[:-1], channels[1:]):
            scale = (c_in * 27) ** -0.5
            self.weights.append(torch.nn.Parameter(torch.randn(c_out, c_in, 3, 3, 3, generator=generator) * scale))
            self.biases.append(torch.nn.Parameter(torch.randn(c_out, generator=generator) * 0.1))

    def forward(self, coords, features, backend, spatial_shape):
        x = features
        last = len(self.weights) - 1
        for index, (weight, bias, dilation) in enumerate(zip(self.weights, self.biases, self.dilations)):
            x = backends.submanifold_conv3d(
                coords, x, weight, bias, dilation=dilation, spatial_shape=spatial_shape, backend=backend
            )
            if index < last:
                x = torch.relu(x)
        return x


#: A third of a wedge along every axis keeps the dense float64 reference fast.
STACK_SHAPE = (8, 64, 83)


def stack_inputs():
    coords = batch_of(track_like(tracks=8, shape=STACK_SHAPE, seed=31), track_like(tracks=4, shape=STACK_SHAPE, seed=32))
    generator = torch.Generator().manual_seed(7)
    features = torch.rand(coords.shape[0], 1, generator=generator) * 3
    return coords, features


def run_stack(module, backend, device, dtype):
    """Return the stack's output and the gradient of every parameter, on CPU in float64."""
    module = copy.deepcopy(module).to(device, dtype)
    coords, features = stack_inputs()
    output = module(coords.to(device), features.to(device, dtype), backend, STACK_SHAPE)
    generator = torch.Generator().manual_seed(11)
    upstream = torch.randn(output.shape, generator=generator, dtype=torch.float64).to(device, dtype)
    (output * upstream).sum().backward()
    gradients = [parameter.grad.double().cpu() for parameter in module.parameters()]
    return output.detach().double().cpu(), gradients


@lru_cache(maxsize=1)
def dense_reference():
    """The stack's float64 output and gradients on the dense backend (the module is seeded)."""
    return run_stack(SubmanifoldStack(), "dense", torch.device("cpu"), torch.float64)


def installed_backends() -> list[str]:
    return [name for name, reason in backends.available().items() if reason == "ok"]


def test_stack_matches_dense_float64(backend, device):
    module = SubmanifoldStack()
    dtype = torch.float32
    output, gradients = run_stack(module, backend, device, dtype)
    reference, reference_gradients = dense_reference()

    label = f"{backend.name}/{device.type}/float32"
    assert_close_to_oracle(output, reference, dtype, f"{label}: interop stack")
    for index, (gradient, expected) in enumerate(zip(gradients, reference_gradients)):
        assert_close_to_oracle(gradient, expected, dtype, f"{label}: interop stack grad {index}")


def test_stack_agrees_across_installed_backends():
    names = installed_backends()
    assert {"dense", "native"} <= set(names), f"dense and native need only torch, got {names}"
    module = SubmanifoldStack()
    before = copy.deepcopy(module.state_dict())

    outputs = {name: run_stack(module, name, torch.device("cpu"), torch.float32)[0] for name in names}
    scale = max(output.abs().max().item() for output in outputs.values())
    first = names[0]
    for name in names[1:]:
        difference = (outputs[name] - outputs[first]).abs().max().item()
        assert difference <= 2 * TOLERANCE[torch.float32] * scale, (
            f"{name} differs from {first} by {difference:.3g} (max |output| {scale:.3g})"
        )
    for key, value in module.state_dict().items():
        assert torch.equal(value, before[key]), f"running the stack changed parameter {key}"


@pytest.mark.parametrize("kernel_size", [1, 3, 5])
def test_weight_round_trip_exact(backend, kernel_size):
    for dtype in backend.dtypes:
        weight = torch.randn(4, 3, kernel_size, kernel_size, kernel_size).to(dtype)
        converted = backend.convert_weight(weight)
        restored = backend.weight_from_library(converted)
        assert restored.dtype == dtype
        assert torch.equal(restored, weight), f"{backend.name} {dtype} k{kernel_size}"


def test_minkowski_and_torchsparse_share_a_layout():
    # Both libraries store (k**3, C_in, C_out) with axis 0 fastest, so a kernel trained with one
    # loads into the other unchanged.
    weight = torch.randn(5, 3, 3, 3, 3)
    assert torch.equal(canonical_to_minkowski(weight), canonical_to_torchsparse(weight))

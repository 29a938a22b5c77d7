"""Bad input raises a clear ValueError or TypeError on every backend."""

from __future__ import annotations

import pytest
import torch

import sparsecodec.backends as backends
from sparse_cases import WEDGE_SHAPE


def good_inputs(device):
    coords = torch.tensor([[0, 1, 2, 3], [0, 1, 2, 4], [0, 2, 2, 3]], dtype=torch.int32, device=device)
    features = torch.randn(3, 2, device=device)
    weight = torch.randn(4, 2, 3, 3, 3, device=device)
    return coords, features, weight


def convolve(backend, coords, features, weight, **kwargs):
    return backends.submanifold_conv3d(coords, features, weight, backend=backend, **kwargs)


def test_duplicate_coordinates(backend, device):
    coords, features, weight = good_inputs(device)
    coords[2] = coords[0]
    with pytest.raises(ValueError, match=r"duplicate coordinate \[0, 1, 2, 3\] at rows 0 and 2"):
        convolve(backend, coords, features, weight)


@pytest.mark.parametrize("column, value, message", [
    (1, -1, "outside"),
    (1, 16, "outside"),
    (2, 192, "outside"),
    (3, 249, "outside"),
    (0, -1, "negative batch index"),
])
def test_coordinate_out_of_range(backend, device, column, value, message):
    coords, features, weight = good_inputs(device)
    coords[1, column] = value
    with pytest.raises(ValueError, match=message):
        convolve(backend, coords, features, weight)


def test_batch_index_beyond_batch_size(backend, device):
    coords, features, weight = good_inputs(device)
    coords[1, 0] = 2
    with pytest.raises(ValueError, match="batch index 2 but batch_size is 2"):
        convolve(backend, coords, features, weight, batch_size=2)


def test_float_coordinates(backend, device):
    coords, features, weight = good_inputs(device)
    with pytest.raises(TypeError, match="integer dtype"):
        convolve(backend, coords.float(), features, weight)


def test_coordinates_with_three_columns(backend, device):
    coords, features, weight = good_inputs(device)
    with pytest.raises(ValueError, match=r"shape \(N, 4\)"):
        convolve(backend, coords[:, 1:], features, weight)


def test_feature_rows_differ_from_coordinates(backend, device):
    coords, features, weight = good_inputs(device)
    with pytest.raises(ValueError, match="features have 2 rows but the kernel map was built for 3"):
        convolve(backend, coords, features[:2], weight)


def test_integer_features(backend, device):
    coords, features, weight = good_inputs(device)
    with pytest.raises(TypeError, match="features must be float"):
        convolve(backend, coords, features.to(torch.int32), weight)


@pytest.mark.parametrize("shape", [(4, 3, 3, 3, 3), (4, 2, 3, 3), (4, 2, 2, 2, 2)], ids=["c_in", "4d", "even"])
def test_wrong_weight_shape(backend, device, shape):
    coords, features, _ = good_inputs(device)
    weight = torch.randn(*shape, device=device)
    with pytest.raises(ValueError, match="weight|kernel_size"):
        convolve(backend, coords, features, weight)


def test_weight_dtype_differs(backend, device):
    coords, features, weight = good_inputs(device)
    with pytest.raises(TypeError, match="weight dtype torch.float64 differs"):
        convolve(backend, coords, features, weight.double())


def test_wrong_bias_shape(backend, device):
    coords, features, weight = good_inputs(device)
    with pytest.raises(ValueError, match=r"bias must have shape \(4,\)"):
        convolve(backend, coords, features, weight, bias=torch.zeros(3, device=device))


def test_map_from_other_kernel_size(backend, device):
    coords, features, weight = good_inputs(device)
    kernel_map = backend.build_kernel_map(coords, WEDGE_SHAPE, kernel_size=1)
    with pytest.raises(ValueError, match=r"\(C_out, 2, 1, 1, 1\)"):
        backend.conv(features, kernel_map, weight)


def test_map_from_other_backend(backend, device):
    coords, features, weight = good_inputs(device)
    other = "native" if backend.name == "dense" else "dense"
    kernel_map = backends.get(other).build_kernel_map(coords, WEDGE_SHAPE)
    with pytest.raises(ValueError, match=f"built by backend '{other}'"):
        backend.conv(features, kernel_map, weight)


@pytest.mark.parametrize("spatial_shape, error", [
    ((16, 192), ValueError),
    ((16, 0, 249), ValueError),
    ((16.0, 192, 249), TypeError),
], ids=["two_axes", "zero", "float"])
def test_bad_spatial_shape(backend, device, spatial_shape, error):
    coords, features, weight = good_inputs(device)
    with pytest.raises(error, match="spatial_shape"):
        convolve(backend, coords, features, weight, spatial_shape=spatial_shape)


@pytest.mark.parametrize("dilation", [0, -2])
def test_bad_dilation(backend, device, dilation):
    coords, features, weight = good_inputs(device)
    with pytest.raises(ValueError, match="dilation must be a positive int"):
        convolve(backend, coords, features, weight, dilation=dilation)


def test_unknown_activation(backend, device):
    coords, features, weight = good_inputs(device)
    kernel_map = backend.build_kernel_map(coords, WEDGE_SHAPE)
    with pytest.raises(ValueError, match="activation must be one of None, 'relu', 'sigmoid'"):
        backend.conv(features, kernel_map, weight, activation="tanh")


def test_conv_stack_lengths_differ(backend, device):
    coords, features, weight = good_inputs(device)
    kernel_map = backend.build_kernel_map(coords, WEDGE_SHAPE)
    with pytest.raises(ValueError, match="one kernel map, weight, activation and bias per layer, got 1, 2, 1 and 2"):
        backend.conv_stack(features, [kernel_map], [weight, weight], ["relu"])

"""MinkowskiEngine conventions the ``minkowski`` adapter relies on, checked against the library."""

from __future__ import annotations

import collections
import collections.abc

import pytest
import torch

import sparsecodec.backends as backends
from conftest import assert_close_to_oracle, oracle
from sparse_cases import track_like
from sparsecodec.backends.minkowski_backend import (
    _collections_sequence_alias,
    canonical_to_minkowski,
    minkowski_to_canonical,
)

REASON = backends.status("minkowski")
needs_minkowski = pytest.mark.skipif(REASON != "ok", reason=f"backend 'minkowski' unavailable: {REASON}")
SHAPE = (8, 40, 50)


def canonical_offset_at(kernel_index: int, kernel_size: int) -> tuple[int, int, int]:
    """Return the canonical offset whose weight ``canonical_to_minkowski`` puts at ``kernel_index``."""
    radius = kernel_size // 2
    kernel = torch.zeros(kernel_size**3, 1, 1)
    kernel[kernel_index] = 1
    weight = minkowski_to_canonical(kernel)
    position = (weight[0, 0] == 1).nonzero()[0].tolist()
    return tuple(p - radius for p in position)


@pytest.mark.parametrize("kernel_size", [1, 3, 5])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["float32", "float64"])
def test_layout_round_trip_is_exact(kernel_size, dtype):
    weight = torch.randn(4, 3, kernel_size, kernel_size, kernel_size, dtype=dtype)
    kernel = canonical_to_minkowski(weight)
    assert kernel.shape == (kernel_size**3, 3, 4)
    assert kernel.is_contiguous()
    assert torch.equal(minkowski_to_canonical(kernel), weight)


def test_layout_puts_axis_zero_fastest():
    # Kernel index 1 is one step along axis 0 from the corner (-1, -1, -1).
    assert canonical_offset_at(0, 3) == (-1, -1, -1)
    assert canonical_offset_at(1, 3) == (0, -1, -1)
    assert canonical_offset_at(3, 3) == (-1, 0, -1)
    assert canonical_offset_at(9, 3) == (-1, -1, 0)
    assert canonical_offset_at(13, 3) == (0, 0, 0)


def test_layout_rejects_non_cubic_volume():
    with pytest.raises(ValueError, match="kernel volume 26"):
        minkowski_to_canonical(torch.zeros(26, 2, 2))


def test_sequence_alias_only_during_import():
    had_alias = hasattr(collections, "Sequence")
    with _collections_sequence_alias():
        assert collections.Sequence is collections.abc.Sequence
    assert hasattr(collections, "Sequence") == had_alias


def test_status_leaves_collections_unchanged():
    had_alias = hasattr(collections, "Sequence")
    backends.status("minkowski")
    assert hasattr(collections, "Sequence") == had_alias


@needs_minkowski
@pytest.mark.parametrize("dilation", [1, 2])
def test_offset_order_matches_kernel_map(dilation):
    """Each kernel index pairs rows whose offset is the canonical offset the layout puts there."""
    engine = backends.get("minkowski")._engine
    grid = torch.arange(0, 3 * dilation, dilation)
    a0, a1, a2 = torch.meshgrid(grid, grid, grid, indexing="ij")
    coords = torch.stack([torch.zeros_like(a0), a0, a1, a2], dim=-1).reshape(-1, 4).int()

    manager = engine.CoordinateManager(D=3, coordinate_map_type=engine.CoordinateMapType.CPU)
    key, (unique_map, _) = manager.insert_and_map(coords, [1, 1, 1])
    map_coords = coords[unique_map.long()]
    kernel_map = manager.kernel_map(key, key, stride=1, kernel_size=3, dilation=dilation)

    assert sorted(kernel_map) == list(range(27))
    for kernel_index, (in_rows, out_rows) in kernel_map.items():
        offsets = (map_coords[in_rows.long(), 1:] - map_coords[out_rows.long(), 1:]) // dilation
        expected = torch.tensor(canonical_offset_at(kernel_index, 3), dtype=offsets.dtype)
        assert len(in_rows) > 0
        assert (offsets == expected).all(), f"kernel index {kernel_index}"


@needs_minkowski
@pytest.mark.parametrize("dilation", [1, 2])
# MinkowskiEngine 0.5.4 instantiates its autograd function, which torch deprecates.
@pytest.mark.filterwarnings("ignore:.*should not be instantiated:DeprecationWarning")
def test_library_module_with_converted_weight(dilation):
    """MinkowskiEngine's own MinkowskiConvolution layer accepts the converted weight as is."""
    engine = backends.get("minkowski")._engine
    coords = track_like(tracks=15, seed=21)
    generator = torch.Generator().manual_seed(3)
    features = torch.randn(coords.shape[0], 2, generator=generator, dtype=torch.float64)
    weight = torch.randn(3, 2, 3, 3, 3, generator=generator, dtype=torch.float64)

    layer = engine.MinkowskiConvolution(2, 3, kernel_size=3, stride=1, dilation=dilation, dimension=3).double()
    with torch.no_grad():
        layer.kernel.copy_(canonical_to_minkowski(weight))
    manager = engine.CoordinateManager(D=3, coordinate_map_type=engine.CoordinateMapType.CPU)
    tensor = engine.SparseTensor(features, coordinates=coords, coordinate_manager=manager)
    output = layer(tensor)

    # The library returns its own row order; put the rows back in input order to compare.
    position = {tuple(row): i for i, row in enumerate(output.C.tolist())}
    order = torch.tensor([position[tuple(row)] for row in coords.tolist()])
    reference = oracle(coords, features, weight, dilation, (16, 192, 249))
    assert_close_to_oracle(output.F.detach()[order], reference, torch.float64, f"minkowski/cpu/float64: library module d{dilation}")


@needs_minkowski
def test_rows_follow_input_order_when_library_reorders(monkeypatch):
    """Rows come back in input order even when the coordinate map stores them in another order."""
    backend = backends.get("minkowski")
    engine = backend._engine
    original = engine.CoordinateManager.insert_and_map

    def insert_reversed(self, coordinates, tensor_stride=1, string_id=""):
        reverse = torch.arange(coordinates.shape[0] - 1, -1, -1)
        key, (unique_map, _) = original(self, coordinates[reverse].contiguous(), tensor_stride, string_id)
        unique_map = reverse[unique_map.long()]
        return key, (unique_map, torch.argsort(unique_map))

    monkeypatch.setattr(engine.CoordinateManager, "insert_and_map", insert_reversed)
    coords = track_like(tracks=10, seed=5)
    generator = torch.Generator().manual_seed(4)
    features = torch.randn(coords.shape[0], 2, generator=generator, dtype=torch.float64)
    weight = torch.randn(2, 2, 3, 3, 3, generator=generator, dtype=torch.float64)

    kernel_map = backend.build_kernel_map(coords, (16, 192, 249), 3, 2, cache=False)
    assert kernel_map.data[3] is not None, "the reversed insert must make the adapter permute rows"
    output = backend.conv(features, kernel_map, weight)
    reference = oracle(coords, features, weight, 2, (16, 192, 249))
    assert_close_to_oracle(output, reference, torch.float64, "minkowski/cpu/float64: reordered map")


@needs_minkowski
def test_dilation_reaches_the_library():
    """The kernel map of dilation 2 pairs sites two apart, and dilation 1 does not."""
    backend = backends.get("minkowski")
    coords = torch.tensor([[0, 3, 5, 5], [0, 3, 5, 7]], dtype=torch.int32)
    features = torch.tensor([[1.0], [10.0]], dtype=torch.float64)
    weight = torch.ones(1, 1, 3, 3, 3, dtype=torch.float64)

    for dilation, expected in [(1, [[1.0], [10.0]]), (2, [[11.0], [11.0]])]:
        kernel_map = backend.build_kernel_map(coords, SHAPE, 3, dilation, cache=False)
        output = backend.conv(features, kernel_map, weight)
        assert output.tolist() == expected, f"dilation {dilation}"

"""Kept-row selection (sparsecodec.kernels.selection) against torch's boolean indexing."""

from __future__ import annotations

import pytest
import torch

from sparsecodec.kernels import capabilities
from sparsecodec.kernels.selection import select_rows


def rows(count: int, coords_dtype, values_dtype, kept: float, seed: int):
    generator = torch.Generator().manual_seed(seed)
    coords = torch.randint(0, 1000, (count, 4), generator=generator).to(coords_dtype)
    hidden = torch.rand(count, 2, generator=generator, dtype=values_dtype)
    keep = torch.rand(count, generator=generator) < kept
    # The encoder's v is a strided column of its (N, 2) output.
    return keep, coords, hidden[:, 1]


@pytest.mark.parametrize("torch_path", [False, True], ids=["numba", "torch"])
@pytest.mark.parametrize("coords_dtype", [torch.int32, torch.int64])
@pytest.mark.parametrize("values_dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("count,kept", [(0, 0.5), (1, 1.0), (5000, 0.0), (5000, 0.13), (5000, 1.0)])
def test_select_rows_matches_boolean_indexing(monkeypatch, torch_path, coords_dtype, values_dtype, count, kept):
    monkeypatch.setattr(capabilities, "FORCE_TORCH_PATH", torch_path)
    keep, coords, values = rows(count, coords_dtype, values_dtype, kept, seed=count)
    kept_coords, kept_values = select_rows(keep, coords, values)
    assert kept_coords.dtype == coords_dtype
    assert kept_values.dtype == values_dtype
    assert torch.equal(kept_coords, coords[keep])
    assert torch.equal(kept_values, values[keep])


def test_select_rows_other_widths_use_torch():
    keep = torch.tensor([True, False, True])
    coords = torch.arange(9, dtype=torch.int32).reshape(3, 3)
    kept_coords, _ = select_rows(keep, coords, torch.rand(3))
    assert torch.equal(kept_coords, coords[keep])


@pytest.mark.parametrize("keep,coords,values,error,message", [
    (torch.ones(3), torch.zeros(3, 4, dtype=torch.int32), torch.zeros(3), ValueError, "bool"),
    (torch.ones(3, dtype=torch.bool), torch.zeros(2, 4, dtype=torch.int32), torch.zeros(3), ValueError, "3 rows"),
    (torch.ones(3, dtype=torch.bool), torch.zeros(3, 4, dtype=torch.int32), torch.zeros(3, 1), ValueError, "3 rows"),
    ([True, True, True], torch.zeros(3, 4, dtype=torch.int32), torch.zeros(3), TypeError, "torch.Tensor"),
], ids=["float_mask", "coords_rows", "values_shape", "list_mask"])
def test_select_rows_rejects_bad_input(keep, coords, values, error, message):
    with pytest.raises(error, match=message):
        select_rows(keep, coords, values)

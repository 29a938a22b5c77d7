"""Dense <-> sparse conversion, batching, and use of a batch with the sparse-convolution backends."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from sparsecodec.backends.functional import submanifold_conv3d
from sparsecodec.data import (
    WEDGE_SHAPE,
    ZERO_SUPPRESSION_ADC,
    adc_from_log_adc,
    batch_sparse,
    log_adc,
    split_batch,
    to_dense,
    to_sparse,
)


def sample_wedge(seed: int, occupancy: float = 0.02) -> np.ndarray:
    rng = np.random.default_rng(seed)
    adc = rng.integers(0, 1024, WEDGE_SHAPE).astype(np.uint16)
    adc[rng.random(WEDGE_SHAPE) > occupancy] = 0
    return adc


def test_log_adc_convention():
    assert log_adc(np.array([0, 1, 1023])).tolist() == [0.0, 1.0, 10.0]
    assert log_adc(np.array([ZERO_SUPPRESSION_ADC]))[0] == pytest.approx(math.log2(65))
    assert log_adc(np.array([5])).dtype == np.float32


def test_sparse_round_trip():
    adc = sample_wedge(0)
    coords, values = to_sparse(adc)
    assert coords.dtype == np.int32
    assert coords.shape[1] == 3
    assert values.dtype == np.float32
    assert coords.shape[0] == np.count_nonzero(adc)
    assert np.array_equal(to_dense(coords, values), adc)


def test_sparse_coordinates_are_layer_azimuth_time():
    adc = np.zeros(WEDGE_SHAPE, np.uint16)
    adc[15, 191, 248] = 1023
    adc[0, 2, 7] = 64
    coords, values = to_sparse(adc)
    assert coords.tolist() == [[0, 2, 7], [15, 191, 248]]
    assert values.tolist() == pytest.approx([math.log2(65), 10.0])


def test_every_adc_value_survives_round_trip():
    adc = np.zeros(WEDGE_SHAPE, np.uint16)
    flat = adc.reshape(-1)
    flat[:1023] = np.arange(1, 1024)
    coords, values = to_sparse(adc)
    assert np.array_equal(to_dense(coords, values), adc)
    assert np.array_equal(adc_from_log_adc(values), np.arange(1, 1024))


def test_empty_wedge():
    coords, values = to_sparse(np.zeros(WEDGE_SHAPE, np.uint16))
    assert coords.shape == (0, 3)
    assert values.shape == (0,)
    assert not to_dense(coords, values).any()


def test_to_dense_rejects_bad_input():
    coords = np.array([[0, 0, 0], [15, 191, 248]], np.int32)
    values = np.array([6.5, 7.0], np.float32)
    with pytest.raises(ValueError, match=r"duplicate voxel \[1, 2, 3\]"):
        to_dense(np.array([[1, 2, 3], [1, 2, 3]], np.int32), values)
    with pytest.raises(ValueError, match=r"row 1 = \[16, 0, 0\] is outside the wedge shape"):
        to_dense(np.array([[0, 0, 0], [16, 0, 0]], np.int32), values)
    with pytest.raises(ValueError, match=r"row 0 = \[0, -1, 0\]"):
        to_dense(np.array([[0, -1, 0], [1, 1, 1]], np.int32), values)
    with pytest.raises(TypeError, match="integer dtype"):
        to_dense(coords.astype(np.float32), values)
    with pytest.raises(ValueError, match=r"values must have shape \(2,\)"):
        to_dense(coords, values[:1])
    with pytest.raises(ValueError, match=r"log ADC values must be in 0\.\.10"):
        to_dense(coords, np.array([6.0, 11.0], np.float32))
    with pytest.raises(ValueError, match="must be finite"):
        to_dense(coords, np.array([6.0, np.nan], np.float32))


def test_to_sparse_rejects_bad_wedge():
    with pytest.raises(ValueError, match=r"adc: expected shape \(16, 192, 249\)"):
        to_sparse(np.zeros((192, 249, 16), np.uint16))
    with pytest.raises(ValueError, match=r"must be in 0\.\.1023"):
        to_sparse(np.full(WEDGE_SHAPE, 4096, np.uint16))


def test_batch_numpy_round_trip():
    pairs = [to_sparse(sample_wedge(seed)) for seed in range(3)]
    coords, values = batch_sparse(pairs)
    assert coords.dtype == np.int32
    assert coords.shape == (sum(len(c) for c, _ in pairs), 4)
    assert np.array_equal(np.unique(coords[:, 0]), [0, 1, 2])
    for (original_coords, original_values), (back_coords, back_values) in zip(pairs, split_batch(coords, values)):
        assert np.array_equal(back_coords, original_coords)
        assert np.array_equal(back_values, original_values)


def test_batch_torch_keeps_type_and_device():
    pairs = [tuple(torch.from_numpy(a) for a in to_sparse(sample_wedge(seed))) for seed in range(2)]
    coords, values = batch_sparse(pairs)
    assert isinstance(coords, torch.Tensor)
    assert coords.dtype == torch.int32
    assert values.dtype == torch.float32
    assert coords[:, 0].unique().tolist() == [0, 1]


@pytest.mark.skipif(not torch.cuda.is_available(), reason=f"CUDA not available (torch {torch.__version__})")
def test_batch_torch_on_cuda_stays_on_device():
    pairs = [tuple(torch.from_numpy(a).cuda() for a in to_sparse(sample_wedge(seed))) for seed in range(2)]
    coords, values = batch_sparse(pairs)
    assert coords.device.type == "cuda"
    assert values.device.type == "cuda"
    back = split_batch(coords, values)
    assert torch.equal(back[1][0].cpu(), pairs[1][0].cpu().to(torch.int32))


def test_split_batch_keeps_trailing_empty_wedges():
    pairs = [to_sparse(sample_wedge(0)), to_sparse(np.zeros(WEDGE_SHAPE, np.uint16))]
    coords, values = batch_sparse(pairs)
    back = split_batch(coords, values, batch_size=2)
    assert len(back) == 2
    assert back[1][0].shape == (0, 3)


def test_batch_rejects_bad_items():
    good = to_sparse(sample_wedge(0))
    with pytest.raises(ValueError, match="at least one"):
        batch_sparse([])
    with pytest.raises(TypeError, match="mix of numpy and torch"):
        batch_sparse([good, (torch.from_numpy(good[0]), torch.from_numpy(good[1]))])
    with pytest.raises(ValueError, match="batch item 0: .* coordinate rows but .* value rows"):
        batch_sparse([(good[0], good[1][:-1])])
    with pytest.raises(ValueError, match=r"batch item 1 coords row 0 = \[16, 0, 0\]"):
        batch_sparse([good, (np.array([[16, 0, 0]], np.int32), np.ones(1, np.float32))])
    with pytest.raises(ValueError, match=r"batch item 0 coords row 0 = \[0, 192, 0\] is outside"):
        batch_sparse([(torch.tensor([[0, 192, 0]]), torch.ones(1))])
    with pytest.raises(TypeError, match="must be a"):
        batch_sparse([good[0]])


def test_batch_runs_on_backend_like_single_wedges():
    pairs = [tuple(torch.from_numpy(a) for a in to_sparse(sample_wedge(seed, 0.005))) for seed in range(2)]
    coords, values = batch_sparse(pairs)
    generator = torch.Generator().manual_seed(0)
    weight = torch.randn(2, 1, 3, 3, 3, generator=generator)
    batched = submanifold_conv3d(coords, values[:, None], weight, dilation=2, backend="dense", batch_size=2)

    for index, (single_coords, single_values) in enumerate(pairs):
        single = submanifold_conv3d(
            torch.nn.functional.pad(single_coords, (1, 0)), single_values[:, None], weight, dilation=2,
            backend="dense", batch_size=1,
        )
        rows = coords[:, 0] == index
        torch.testing.assert_close(batched[rows], single)

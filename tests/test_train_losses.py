"""Each BCAE-VS loss term against values worked out by hand on tiny tensors."""

from __future__ import annotations

import math

import pytest
import torch

from sparsecodec.train import ReconstructionLoss, compression_loss, focal_loss, regression_loss
from sparsecodec.train.losses import FOCAL_EPS


def test_focal_loss_at_one_half_is_one_quarter():
    # (1 - 0.5)^2 log2(0.5) = -0.25 for the signal voxel and the same for the background voxel.
    loss = focal_loss(torch.tensor([0.5, 0.5], dtype=torch.float64), torch.tensor([True, False]))
    assert loss.item() == pytest.approx(0.25, abs=1e-7)


def test_focal_loss_hand_values():
    segmentation = torch.tensor([[0.75, 0.25], [0.9, 0.2]], dtype=torch.float64)
    labels = torch.tensor([[True, False], [True, False]])
    # 0.25^2 log2(0.75) twice, 0.1^2 log2(0.9) and 0.2^2 log2(0.8); the mean of the four, negated.
    expected = -(2 * 0.0625 * math.log2(0.75) + 0.01 * math.log2(0.9) + 0.04 * math.log2(0.8)) / 4
    assert focal_loss(segmentation, labels).item() == pytest.approx(expected, rel=1e-6)


def test_focal_loss_eps_keeps_certain_mistakes_finite():
    loss = focal_loss(torch.tensor([0.0, 1.0], dtype=torch.float64), torch.tensor([True, False]))
    # p = 0 on a signal voxel: (1 + eps)^2 log2(eps); p = 1 on background: the same.
    expected = -((1 + FOCAL_EPS) ** 2) * math.log2(FOCAL_EPS)
    assert loss.item() == pytest.approx(expected, rel=1e-9)


def test_focal_loss_gamma_zero_is_cross_entropy():
    segmentation = torch.tensor([0.8, 0.3], dtype=torch.float64)
    labels = torch.tensor([True, False])
    expected = -(math.log2(0.8) + math.log2(0.7)) / 2
    assert focal_loss(segmentation, labels, gamma=0.0).item() == pytest.approx(expected, rel=1e-6)


def test_focal_loss_rejects_bad_labels():
    with pytest.raises(TypeError, match="labels must be a bool tensor"):
        focal_loss(torch.tensor([0.5]), torch.tensor([1.0]))
    with pytest.raises(ValueError, match="same shape"):
        focal_loss(torch.tensor([0.5, 0.5]), torch.tensor([True]))


def test_regression_loss_hand_values_and_gradient():
    regression = torch.tensor([[2.0, 3.0], [7.0, 1.0]], dtype=torch.float64, requires_grad=True)
    segmentation = torch.tensor([[0.9, 0.4], [0.6, 0.51]], dtype=torch.float64, requires_grad=True)
    truth = torch.tensor([[2.5, 0.0], [6.0, 0.0]], dtype=torch.float64)
    # Masked regression is [[2, 0], [7, 1]]: errors 0.5, 0, 1 and 1 over four voxels.
    loss = regression_loss(regression, segmentation, truth)
    assert loss.item() == pytest.approx(0.625)

    loss.backward()
    assert regression.grad.tolist() == [[-0.25, 0.0], [0.25, 0.25]]
    assert segmentation.grad is None


def test_regression_loss_threshold_is_strict():
    loss = regression_loss(torch.tensor([4.0]), torch.tensor([0.5]), torch.tensor([4.0]))
    assert loss.item() == pytest.approx(4.0)


def test_reconstruction_coefficient_follows_running_ratio():
    reconstruction = ReconstructionLoss()
    regression = torch.tensor([[2.0, 3.0], [7.0, 1.0]], dtype=torch.float64)
    segmentation = torch.tensor([[0.5, 0.5], [0.5, 0.5]], dtype=torch.float64)
    truth = torch.tensor([[2.5, 0.0], [6.0, 0.0]], dtype=torch.float64)
    # L_seg = 0.25 (every p is 0.5); nothing passes the strict 0.5 mask, so L_reg = mean(truth) = 2.125.
    terms = reconstruction(regression, segmentation, truth)
    first = (0.5 * 2000.0 + 2.125 / 0.25) / 1.5
    assert terms.coefficient == pytest.approx(first, rel=1e-6)
    assert terms.segmentation.item() == pytest.approx(0.25, abs=1e-7)
    assert terms.regression.item() == pytest.approx(2.125)
    assert terms.loss.item() == pytest.approx(2.125 + first * 0.25, rel=1e-6)

    second = reconstruction(regression, segmentation, truth).coefficient
    assert second == pytest.approx((0.5 * first + 8.5) / 1.5, rel=1e-6)


def test_reconstruction_coefficient_resets_after_nan():
    reconstruction = ReconstructionLoss(coefficient=5.0)
    assert reconstruction.update(1.0, float("nan")) == 2000.0
    assert reconstruction.update(3.0, 1.0) == pytest.approx((1000.0 + 3.0) / 1.5)


def test_reconstruction_state_round_trip():
    reconstruction = ReconstructionLoss(coefficient=12.5, focal_gamma=1.5)
    restored = ReconstructionLoss()
    restored.load_state_dict(reconstruction.state_dict())
    assert (restored.coefficient, restored.focal_gamma) == (12.5, 1.5)


def test_compression_loss_zero_below_bound():
    probability = torch.tensor([0.05, 0.05, 0.02], requires_grad=True)
    terms = compression_loss(probability, 3)
    assert terms.mean_importance.item() == pytest.approx(0.04)
    assert terms.coefficient == 0.0
    assert terms.loss.item() == 0.0
    terms.loss.backward()
    assert probability.grad.abs().sum().item() == 0.0


def test_compression_loss_hand_values_above_bound():
    probability = torch.tensor([0.5, 0.3, 0.1, 0.1], dtype=torch.float64, requires_grad=True)
    terms = compression_loss(probability, 4)
    # mu = 0.25; coefficient 30 (0.25 - 0.1) = 4.5; loss 4.5 x 0.25.
    assert terms.mean_importance.item() == pytest.approx(0.25)
    assert terms.coefficient == pytest.approx(4.5)
    assert terms.loss.item() == pytest.approx(1.125)
    # The coefficient is a constant, so each p gets 4.5 / 4.
    terms.loss.backward()
    assert probability.grad.tolist() == pytest.approx([1.125] * 4)


def test_compression_loss_counts_unscored_signal():
    terms = compression_loss(torch.tensor([0.5, 0.3], dtype=torch.float64), 4, weight=10.0, bound=0.0)
    assert terms.mean_importance.item() == pytest.approx(0.2)
    assert terms.loss.item() == pytest.approx(10.0 * 0.2 * 0.2)


def test_compression_loss_without_signal_is_zero():
    terms = compression_loss(torch.zeros(0), 0)
    assert terms.loss.item() == 0.0


def test_compression_loss_rejects_bad_counts():
    with pytest.raises(ValueError, match="smaller than the 2 scored voxels"):
        compression_loss(torch.tensor([0.5, 0.5]), 1)
    with pytest.raises(ValueError, match="signal_count must be a non-negative int"):
        compression_loss(torch.tensor([0.5]), 1.0)
    with pytest.raises(ValueError, match=r"shape \(N,\)"):
        compression_loss(torch.ones(2, 2), 4)

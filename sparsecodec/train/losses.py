"""The BCAE-VS training objective: focal segmentation loss, masked L1 regression loss, the
balanced reconstruction loss and the compression loss on the mean importance score.

All tensors are dense (B, layer, azimuth, time) in log ADC = log2(ADC + 1) unless a docstring
states otherwise. Every mean runs over all voxels of the batch, zeros included.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch

#: Focusing parameter gamma of the focal loss.
FOCAL_GAMMA = 2.0
#: Clamp inside the focal loss's logarithms, so p = 0 or 1 gives a finite loss.
FOCAL_EPS = 1e-8
#: Segmentation output above which a voxel counts as signal (also the model's inference rule).
SEGMENTATION_THRESHOLD = 0.5
#: Starting value of the segmentation-loss coefficient, and its value after a NaN loss.
INITIAL_SEGMENTATION_COEFFICIENT = 2000.0
#: Weight of the old coefficient in its running update (see :class:`ReconstructionLoss`).
COEFFICIENT_MEMORY = 0.5
#: Weight of the compression loss and the mean importance below which it vanishes.
COMPRESSION_WEIGHT = 30.0
COMPRESSION_BOUND = 0.1


def _check_same_shape(first: torch.Tensor, second: torch.Tensor, names: str) -> None:
    if first.shape != second.shape:
        raise ValueError(f"{names} must have the same shape, got {tuple(first.shape)} and {tuple(second.shape)}")


def focal_loss(segmentation: torch.Tensor, labels: torch.Tensor, gamma: float = FOCAL_GAMMA,
               eps: float = FOCAL_EPS) -> torch.Tensor:
    """Return the binary focal loss in bits, averaged over all voxels.

    ``-mean(p^gamma log2(1 - p + eps) (1 - y) + (1 - p)^gamma log2(p + eps) y)`` where p is the
    segmentation output in [0, 1] and y the bool signal label. The powers use ``p + eps`` and
    ``1 - p + eps`` like the logarithms, as the BCAE-VS authors' code does.
    """
    _check_same_shape(segmentation, labels, "segmentation and labels")
    if labels.dtype != torch.bool:
        raise TypeError(f"labels must be a bool tensor, got {labels.dtype}")
    signal_term = torch.pow(1.0 - segmentation + eps, gamma) * torch.log2(segmentation + eps)
    background_term = torch.pow(segmentation + eps, gamma) * torch.log2(1.0 - segmentation + eps)
    return -torch.where(labels, signal_term, background_term).mean()


def regression_loss(regression: torch.Tensor, segmentation: torch.Tensor, truth: torch.Tensor) -> torch.Tensor:
    """Return mean |regression x (segmentation > 0.5) - truth| over all voxels.

    The mask is a step function, so the gradient reaches only the regression head, and only
    where the segmentation output is above 0.5.
    """
    _check_same_shape(regression, truth, "regression and truth")
    _check_same_shape(segmentation, truth, "segmentation and truth")
    masked = regression * (segmentation > SEGMENTATION_THRESHOLD)
    return torch.nn.functional.l1_loss(masked, truth)


class ReconstructionTerms(NamedTuple):
    """The reconstruction loss L_reg + c L_seg, its two parts and the coefficient c it used."""

    loss: torch.Tensor
    regression: torch.Tensor
    segmentation: torch.Tensor
    coefficient: float


class ReconstructionLoss:
    """L_reg + c L_seg with c kept near the running ratio L_reg / L_seg.

    c starts at 2000. Each call first updates ``c <- (0.5 c + L_reg / L_seg) / 1.5`` from the
    current batch's detached losses (``c <- 2000`` when L_seg is NaN) and then uses the new c,
    which is the order of the BCAE-VS authors' code. ``reduce`` (optional) maps the detached
    pair (L_reg, L_seg) to the values that update c, so that data-parallel processes can
    average them and keep one c.
    """

    def __init__(self, coefficient: float = INITIAL_SEGMENTATION_COEFFICIENT,
                 focal_gamma: float = FOCAL_GAMMA) -> None:
        self.coefficient = float(coefficient)
        self.focal_gamma = float(focal_gamma)

    def __call__(self, regression: torch.Tensor, segmentation: torch.Tensor, truth: torch.Tensor,
                 reduce=None) -> ReconstructionTerms:
        labels = truth > 0
        segmentation_loss = focal_loss(segmentation, labels, self.focal_gamma)
        regression_term = regression_loss(regression, segmentation, truth)

        pair = torch.stack([regression_term.detach(), segmentation_loss.detach()])
        if reduce is not None:
            pair = reduce(pair)
        self.update(float(pair[0]), float(pair[1]))

        loss = regression_term + self.coefficient * segmentation_loss
        return ReconstructionTerms(loss, regression_term, segmentation_loss, self.coefficient)

    def update(self, regression_value: float, segmentation_value: float) -> float:
        """Move c towards ``regression_value / segmentation_value``; return the new c."""
        if math.isnan(segmentation_value):
            self.coefficient = INITIAL_SEGMENTATION_COEFFICIENT
        else:
            ratio = regression_value / segmentation_value
            self.coefficient = (COEFFICIENT_MEMORY * self.coefficient + ratio) / (COEFFICIENT_MEMORY + 1.0)
        return self.coefficient

    def state_dict(self) -> dict:
        return {"coefficient": self.coefficient, "focal_gamma": self.focal_gamma}

    def load_state_dict(self, state: dict) -> None:
        self.coefficient = float(state["coefficient"])
        self.focal_gamma = float(state["focal_gamma"])


class CompressionTerms(NamedTuple):
    """The compression loss, the mean importance mu it penalizes and its detached coefficient."""

    loss: torch.Tensor
    mean_importance: torch.Tensor
    coefficient: float


def compression_loss(probability: torch.Tensor, signal_count: int, weight: float = COMPRESSION_WEIGHT,
                     bound: float = COMPRESSION_BOUND) -> CompressionTerms:
    """Return the compression loss ``weight * max(0, mu - bound) * mu``.

    ``probability`` contains the importance score p of every signal voxel of the batch (the
    encoder scores only signal voxels, so p is zero elsewhere) and ``mu = sum(p) /
    signal_count``. The factor ``weight * max(0, mu - bound)`` is a detached constant, as in the
    BCAE-VS authors' code: the gradient is ``weight * max(0, mu - bound)`` times that of mu.
    A batch without signal voxels gives mu = 0 and a zero loss.
    """
    if probability.dim() != 1:
        raise ValueError(f"probability must have shape (N,), got {tuple(probability.shape)}")
    if isinstance(signal_count, bool) or not isinstance(signal_count, int) or signal_count < 0:
        raise ValueError(f"signal_count must be a non-negative int, got {signal_count!r}")
    if signal_count < probability.shape[0]:
        raise ValueError(f"signal_count {signal_count} is smaller than the {probability.shape[0]} scored voxels")
    mean_importance = probability.sum() / max(signal_count, 1)
    coefficient = weight * max(0.0, float(mean_importance.detach()) - bound)
    return CompressionTerms(coefficient * mean_importance, mean_importance, coefficient)

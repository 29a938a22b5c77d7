"""The gates of the training pass: the published soft gate and the straight-through gate.

Both draw theta ~ U(0, 1) per voxel and compute the soft mask
``m = sigmoid(alpha (logit p - logit theta))``. With the soft gate (``"soft"``, the published
objective) the decoders read ``v m``. A voxel that the hard gate of inference drops still passes
a small non-zero ``v m`` to the decoders, so they can learn to rely on input that inference never
gives them. With the straight-through gate (``"straight-through"``) the decoders read
``v (p > theta)``, exactly what inference gives them for the same theta. The backward pass uses
the soft mask's gradient, because the step function has none:
``m_st = hard + (m - m.detach())`` (a straight-through estimator). With the hard gate
(``"hard"``) the decoders read ``v (p > theta)`` too, but no reconstruction gradient reaches p:
only the compression loss trains p, and the reconstruction trains v on the kept voxels.

NOTE: in a run of 2 soft-gate epochs and then straight-through epochs (48 x 64 crops, encoder
learning rate 1e-3), the straight-through gradient drove the kept fraction from 0.12 to 0.001
within 250 steps. The hard gate has no such gradient, and the compression loss stops pushing p
down once the mean importance reaches its bound.
"""

from __future__ import annotations

import torch
from torch import nn

from ..model import BCAEVS
from ..model.bcaevs import TrainingOutput

SOFT = "soft"
STRAIGHT_THROUGH = "straight-through"
HARD = "hard"
#: Gates of the training pass, by their ``TrainConfig.training_gate`` name.
TRAINING_GATES = (SOFT, STRAIGHT_THROUGH, HARD)


def straight_through_mask(soft: torch.Tensor) -> torch.Tensor:
    """Return the hard mask ``soft > 0.5`` (values 0 and 1) with the gradient of ``soft``.

    ``sigmoid(alpha (logit p - logit theta)) > 0.5`` exactly when ``p > theta`` (both clamped
    to [eps, 1 - eps]), so the forward value is the hard gate of inference.
    """
    hard = (soft > 0.5).to(soft.dtype)
    # The bracket is exactly zero, so the value is exactly 0 or 1 (hard + soft - soft may round).
    return hard + (soft - soft.detach())


def hard_mask(soft: torch.Tensor) -> torch.Tensor:
    """Return the hard mask ``soft > 0.5`` (values 0 and 1) without gradient."""
    return (soft.detach() > 0.5).to(soft.dtype)


#: What each training gate does to the soft mask before the decoders see it (None: nothing).
MASK_TRANSFORMS = {SOFT: None, STRAIGHT_THROUGH: straight_through_mask, HARD: hard_mask}


class TrainingPass(nn.Module):
    """The training pass of ``model`` with the gate named by the attribute ``gate``.

    Calling it returns the :class:`~sparsecodec.model.bcaevs.TrainingOutput` of
    ``model(...)``. With ``gate = "soft"`` it is ``model(...)`` itself. With
    ``"straight-through"`` the ``mask`` is the straight-through mask, whose values are 0 and 1, and
    with ``"hard"`` it is the same mask without gradient.
    ``model`` is a submodule, so DistributedDataParallel can wrap this module, and ``gate`` may
    change between steps (for a soft-gate warm-up).
    """

    def __init__(self, model: BCAEVS, gate: str = SOFT) -> None:
        super().__init__()
        self.model = model
        self.gate = check_training_gate(gate)

    def extra_repr(self) -> str:
        return f"gate={self.gate!r}"

    def forward(self, coords: torch.Tensor, log_adc: torch.Tensor, batch_size: int,
                generator: torch.Generator | None = None, spatial_shape=None) -> TrainingOutput:
        """Run the encoder, gate and decode; the arguments are those of ``BCAEVS.forward``."""
        transform = MASK_TRANSFORMS[check_training_gate(self.gate)]
        return self.model(coords, log_adc, batch_size, generator=generator, spatial_shape=spatial_shape,
                          mask_transform=transform)


def check_training_gate(gate: str) -> str:
    """Return ``gate`` if it names a training gate; raise ValueError otherwise."""
    if gate not in TRAINING_GATES:
        raise ValueError(f"training gate must be one of {', '.join(TRAINING_GATES)}, got {gate!r}")
    return gate

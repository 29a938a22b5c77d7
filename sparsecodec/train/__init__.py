"""Training BCAE-VS: the loss terms, random crops of wedges, the epoch loop, checkpoints and DDP.

:func:`train` runs a whole training job from a :class:`TrainConfig`; ``sparsecodec train`` is
its command line, and the same command runs data-parallel under ``torchrun``. The loss terms
(:func:`focal_loss`, :func:`regression_loss`, :class:`ReconstructionLoss`,
:func:`compression_loss`) are usable on their own.
"""

from .config import SCRATCH, SCRATCH_PLAIN, TrainConfig, read_config_file
from .crops import Batch, CropBatches, crop_shape
from .initialization import initialize_for_scratch
from .loop import TrainResult, learning_rate_factor, train
from .losses import CompressionTerms, ReconstructionLoss, ReconstructionTerms, compression_loss, focal_loss, regression_loss

__all__ = [
    "Batch",
    "CompressionTerms",
    "CropBatches",
    "ReconstructionLoss",
    "ReconstructionTerms",
    "SCRATCH",
    "SCRATCH_PLAIN",
    "TrainConfig",
    "TrainResult",
    "compression_loss",
    "crop_shape",
    "focal_loss",
    "initialize_for_scratch",
    "learning_rate_factor",
    "read_config_file",
    "regression_loss",
    "train",
]

"""BatchNorm running statistics recomputed on hard-gated inputs after training.

In eval mode the decoders' BatchNorm layers normalize with running statistics, which training
gathers as an exponential average over its batches. Those batches may be soft-gated, and the
early ones come from a model that has changed since. :func:`recalibrate_batch_norm` resets the
statistics and recomputes them as the plain average over a few batches that pass through the
hard gate ``p > theta`` with theta ~ U(0, 1), the input the decoders get from the random gate
of inference. It changes no weights.
"""

from __future__ import annotations

import logging

import torch
from torch import nn

from ..model import BCAEVS

log = logging.getLogger(__name__)


def batch_norm_layers(model: nn.Module) -> list[nn.modules.batchnorm._BatchNorm]:
    """Return the BatchNorm layers of ``model`` in module order."""
    return [module for module in model.modules() if isinstance(module, nn.modules.batchnorm._BatchNorm)]


@torch.no_grad()
def recalibrate_batch_norm(model: BCAEVS, batches, steps, generators, progress: bool = False) -> int:
    """Recompute the decoders' BatchNorm running statistics on hard-gated batches; return the batch count.

    Args:
        model: the model; it is left in the mode it was in.
        batches: indexable by step, each a :class:`~sparsecodec.train.crops.Batch`.
        steps: the step indices of ``batches`` to use.
        generators: callable ``step -> torch.Generator`` of the gate thresholds theta of a step.
        progress: show a progress bar.

    Each BatchNorm layer's running mean and variance become the average of the per-batch mean
    and unbiased variance over the batches (momentum None, the cumulative average).
    """
    from tqdm import tqdm

    norms = batch_norm_layers(model)
    steps = list(steps)
    if not norms or not steps:
        return 0

    was_training = model.training
    momenta = [norm.momentum for norm in norms]
    for norm in norms:
        norm.reset_running_stats()
        norm.momentum = None
    model.train()
    device = model.regression.head.weight.device
    try:
        for step in tqdm(steps, desc="BatchNorm recalibration", unit="batch", disable=None if progress else True):
            batch = batches[step]
            coords = batch.coords.to(device)
            encoded = model.encoder(coords, batch.log_adc.to(device), batch.batch_size,
                                    spatial_shape=batch.spatial_shape)
            theta = torch.rand(encoded.probability.shape, generator=generators(step), device=device,
                               dtype=encoded.probability.dtype)
            keep = encoded.probability > theta
            dense = model.scatter(coords, encoded.value * keep, batch.batch_size, batch.spatial_shape)
            model.regression(dense)
            model.segmentation(dense)
    finally:
        for norm, momentum in zip(norms, momenta):
            norm.momentum = momentum
        model.train(was_training)
    log.info("recomputed the running statistics of %d BatchNorm layers on %d hard-gated batches",
             len(norms), len(steps))
    return len(steps)

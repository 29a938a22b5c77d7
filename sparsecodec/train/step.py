"""One optimization step of BCAE-VS and the per-epoch sums of its losses and metrics."""

from __future__ import annotations

import math
from collections import defaultdict

import numpy as np
import torch

from ..model import reconstruct
from .crops import Batch
from .distributed import Distributed, all_reduce_mean, all_reduce_sum
from .gates import SOFT
from .losses import ReconstructionLoss, compression_loss, focal_loss, regression_loss

#: Stream number that separates the soft gate's thresholds from other uses of the run seed.
GATE_STREAM = 2
#: Stream of the gate thresholds of BatchNorm recalibration after training.
RECALIBRATION_GATE_STREAM = 4
#: The two gates whose metrics are logged: the soft training gate and the hard gate of inference.
GATES = ("soft", "hard")


def gate_generator(seed: int, rank: int, step: int, device: torch.device,
                   stream: int = GATE_STREAM) -> torch.Generator:
    """Return the generator of the gate thresholds theta for one step on one rank."""
    state = np.random.SeedSequence([seed, stream, rank, step]).generate_state(2, dtype=np.uint32)
    generator = torch.Generator(device=device)
    generator.manual_seed((int(state[0]) << 31) ^ int(state[1]))
    return generator


def _gate_sums(regression: torch.Tensor, segmentation: torch.Tensor, truth: torch.Tensor,
               kept: torch.Tensor) -> dict[str, float]:
    # Counts, not ratios, so that an epoch's recall, precision and L1 weigh every voxel equally.
    output = reconstruct(regression, segmentation)
    signal = truth > 0
    predicted = output != 0
    return {
        "kept": float(kept),
        "true_positive": float((predicted & signal).sum()),
        "predicted": float(predicted.sum()),
        "absolute_error": float((output - truth).abs().sum(dtype=torch.float64)),
    }


def train_step(model, network, batch: Batch, reconstruction: ReconstructionLoss, optimizers,
               generator: torch.Generator, context: Distributed, compression_weight: float,
               compression_bound: float, gate: str = SOFT) -> dict[str, float]:
    """Run one training step, and with the soft gate also the hard gate for metrics; return the step's values.

    ``model`` is the :class:`~sparsecodec.model.BCAEVS`, and ``network`` is the module to call
    for the training pass of ``gate`` (a :class:`~sparsecodec.train.gates.TrainingPass`,
    possibly in a DistributedDataParallel wrapper). With the soft gate, a hard-gate pass follows
    without gradients. It uses the same thresholds theta as the soft gate and runs before the
    weights change. It keeps BatchNorm in training mode as the BCAE-VS authors' loop does. The
    running statistics thus also see hard-gated inputs, which is what the decoders get at
    inference. With the straight-through or the hard gate the training pass is the hard gate
    already: its values fill the ``hard_*`` entries, and the ``soft_*`` entries are NaN.
    """
    device = model.regression.head.weight.device
    coords = batch.coords.to(device)
    values = batch.log_adc.to(device)
    size, shape = batch.batch_size, batch.spatial_shape

    output = network(coords, values, size, generator=generator, spatial_shape=shape)
    truth = model.scatter(coords, values, size, shape)[:, 0]
    soft = reconstruction(output.regression, output.segmentation, truth,
                          reduce=lambda pair: all_reduce_mean(pair, context))
    compression = compression_loss(output.encoded.probability, int(coords.shape[0]), compression_weight,
                                   compression_bound)
    loss = soft.loss + compression.loss

    with torch.no_grad():
        # sigmoid(alpha (logit p - logit theta)) > 0.5 exactly when p > theta: the hard gate.
        keep = output.mask > 0.5
        if gate == SOFT:
            dense = model.scatter(coords, output.encoded.value * keep, size, shape)
            hard_regression = model.regression(dense)[:, 0]
            hard_segmentation = model.segmentation(dense)[:, 0]
            hard_segmentation_loss = focal_loss(hard_segmentation, truth > 0, reconstruction.focal_gamma)
            hard_regression_loss = regression_loss(hard_regression, hard_segmentation, truth)
        else:
            hard_regression, hard_segmentation = output.regression.detach(), output.segmentation.detach()
            hard_segmentation_loss, hard_regression_loss = soft.segmentation.detach(), soft.regression.detach()

    for optimizer in optimizers:
        optimizer.zero_grad(set_to_none=True)
    loss.backward()
    for optimizer in optimizers:
        optimizer.step()

    soft_gate = gate == SOFT
    values_of_step = {
        "loss": float(loss.detach()),
        "compression_loss": float(compression.loss.detach()),
        "mean_importance": float(compression.mean_importance.detach()),
        "compression_coefficient": compression.coefficient,
        "reconstruction_coefficient": soft.coefficient,
        "soft_segmentation_loss": float(soft.segmentation.detach()) if soft_gate else math.nan,
        "soft_regression_loss": float(soft.regression.detach()) if soft_gate else math.nan,
        "hard_segmentation_loss": float(hard_segmentation_loss),
        "hard_regression_loss": float(hard_regression_loss),
        "signal": float(coords.shape[0]),
        "above_half": float((output.encoded.probability.detach() > 0.5).sum()),
        "voxels": float(truth.numel()),
    }
    with torch.no_grad():
        if soft_gate:
            soft_sums = _gate_sums(output.regression, output.segmentation, truth, output.mask.sum())
        else:
            soft_sums = dict.fromkeys(("kept", "true_positive", "predicted", "absolute_error"), math.nan)
        hard_sums = _gate_sums(hard_regression, hard_segmentation, truth, keep.sum())
    values_of_step.update({f"soft_{key}": value for key, value in soft_sums.items()})
    values_of_step.update({f"hard_{key}": value for key, value in hard_sums.items()})
    return values_of_step


#: Per-step values that an epoch averages over steps; the others are summed counts.
AVERAGED = ("loss", "compression_loss", "mean_importance", "compression_coefficient",
            "soft_segmentation_loss", "soft_regression_loss", "hard_segmentation_loss", "hard_regression_loss")


class EpochStats:
    """Sums of step values over an epoch, reduced over processes into one CSV row."""

    def __init__(self) -> None:
        self.sums: dict[str, float] = defaultdict(float)
        self.steps = 0
        self.last_coefficient = float("nan")

    def add(self, values: dict[str, float]) -> None:
        for key, value in values.items():
            if key != "reconstruction_coefficient":
                self.sums[key] += value
        self.last_coefficient = values["reconstruction_coefficient"]
        self.steps += 1

    def running(self) -> dict[str, float]:
        """Return this process's loss, hard-gate kept fraction and recall so far (for the progress bar)."""
        signal = max(self.sums["signal"], 1.0)
        return {"loss": self.sums["loss"] / max(self.steps, 1), "kept": self.sums["hard_kept"] / signal,
                "recall": self.sums["hard_true_positive"] / signal}

    def row(self, context: Distributed, device: torch.device) -> dict[str, float]:
        """Return the epoch's means and ratios over all processes (collective: every rank calls it)."""
        keys = sorted(self.sums)
        totals = torch.tensor([self.sums[key] for key in keys] + [float(self.steps)], dtype=torch.float64,
                              device=device)
        totals = all_reduce_sum(totals, context).tolist()
        total = dict(zip(keys, totals[:-1]))
        steps = max(totals[-1], 1.0)

        row = {key: total[key] / steps for key in AVERAGED}
        row["reconstruction_coefficient"] = self.last_coefficient
        signal = total["signal"]
        # The BCAE-VS authors' checkpoint gives p > 0.5 to about 14 % of the voxels of simulated
        # central wedges and p < 0.01 to 82 %. A model whose p never passes 0.5 keeps a random subset.
        row["importance_above_half"] = total["above_half"] / signal if signal else float("nan")
        for gate in GATES:
            predicted = total[f"{gate}_predicted"]
            row[f"{gate}_kept_fraction"] = total[f"{gate}_kept"] / signal if signal else float("nan")
            row[f"{gate}_recall"] = total[f"{gate}_true_positive"] / signal if signal else float("nan")
            row[f"{gate}_precision"] = total[f"{gate}_true_positive"] / predicted if predicted else float("nan")
            row[f"{gate}_l1"] = total[f"{gate}_absolute_error"] / total["voxels"]
        return row

"""Encoder inputs for benchmarks: simulated wedges at a target occupancy, as one sparse batch."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

#: Occupancies of the sweep: proton-proton running up to the densest heavy-ion wedges.
SWEEP_OCCUPANCIES = (1e-3, 1e-2, 5e-2, 0.1, 0.2, 0.3)
#: Name of the sweep point that uses the central Au+Au preset's own occupancy mix.
CENTRAL_MIX = "auau-central-170khz"


@dataclass
class EncoderInput:
    """A batch of wedges in sparse form.

    ``coords`` int32 (N, 4) = (batch, layer, azimuth, time); ``log_adc`` float32 (N,);
    ``occupancies`` the non-zero fraction of each wedge; ``label`` the sweep point.
    """

    coords: torch.Tensor
    log_adc: torch.Tensor
    batch_size: int
    occupancies: list[float]
    label: str

    @property
    def voxels(self) -> int:
        return int(self.coords.shape[0])

    @property
    def mean_occupancy(self) -> float:
        return float(np.mean(self.occupancies))

    def to(self, device) -> EncoderInput:
        return EncoderInput(self.coords.to(device), self.log_adc.to(device), self.batch_size,
                            self.occupancies, self.label)


#: Candidates simulated per wedge kept at a float occupancy target.
CANDIDATES_PER_WEDGE = 3


def simulated_input(point: float | str, batch_size: int, seed: int = 0) -> EncoderInput:
    """Simulate ``batch_size`` wedges at occupancy ``point`` (a float) or from a preset name.

    Single simulated wedges scatter widely around a float target (a factor of several at
    1e-3), so the wedges closest to it out of three times as many candidates are kept. A preset
    name keeps its own occupancy mix.
    """
    from ..data import batch_sparse, simulate_wedges, to_sparse

    if isinstance(point, str):
        wedges = simulate_wedges(point, count=batch_size, seed=seed)
    else:
        candidates = simulate_wedges(point, count=CANDIDATES_PER_WEDGE * batch_size, seed=seed)
        distance = [abs(np.log(max(np.count_nonzero(wedge), 1) / (point * wedge.size))) for wedge in candidates]
        wedges = [candidates[index] for index in np.argsort(distance, kind="stable")[:batch_size]]
    items = [to_sparse(wedge) for wedge in wedges]
    coords, values = batch_sparse(items)
    volume = float(np.prod(wedges[0].shape))
    occupancies = [float(np.count_nonzero(wedge)) / volume for wedge in wedges]
    label = point if isinstance(point, str) else f"{point:g}"
    return EncoderInput(torch.as_tensor(coords), torch.as_tensor(values, dtype=torch.float32), batch_size,
                        occupancies, label)

"""Time the BCAE-VS encoder on one backend: the whole encode, and kernel maps versus convolutions.

Timed regions start with the sparse input already on the device and end when the kept
coordinates and values exist on that device (CUDA is synchronized before the clock stops), so
host-to-device transfer is not included. Every repetition encodes a fresh copy of the
coordinates, so no kernel map is reused from the cache of an earlier repetition.
"""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass

import torch

from .. import backends
from ..model import BCAEVSEncoder, GateConfig, select_key_points
from .inputs import EncoderInput


@dataclass
class Timing:
    """Median seconds per call of each timed region, and how many calls were timed."""

    encode: float
    kernel_maps: float
    convolutions: float
    repetitions: int

    @property
    def kernel_map_share(self) -> float:
        return self.kernel_maps / (self.kernel_maps + self.convolutions)


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _median_time(call, copies, device) -> float:
    samples = []
    for coords in copies:
        synchronize(device)
        start = time.perf_counter()
        call(coords)
        synchronize(device)
        samples.append(time.perf_counter() - start)
    return statistics.median(samples)


def _repetitions(call, coords, device, min_time: float, max_repetitions: int) -> int:
    """Estimate how many calls fill ``min_time`` from one warm call (after one warm-up)."""
    call(coords.clone())
    synchronize(device)
    start = time.perf_counter()
    call(coords.clone())
    synchronize(device)
    elapsed = max(time.perf_counter() - start, 1e-6)
    return max(3, min(max_repetitions, int(min_time / elapsed)))


def time_encoder(encoder: BCAEVSEncoder, backend_name: str, data: EncoderInput, device: torch.device,
                 min_time: float = 0.5, max_repetitions: int = 200, gate: GateConfig | None = None) -> Timing:
    """Time ``encoder`` on ``data`` with backend ``backend_name``; ``data`` must be on ``device``."""
    backend = backends.get(backend_name)
    gate = gate or GateConfig("random", seed=0)
    shape = encoder.spatial_shape
    volume = shape[0] * shape[1] * shape[2]
    keys = {(conv.kernel_size, conv.dilation) for conv in encoder.convs}

    def encode(coords):
        output = encoder(coords, data.log_adc, data.batch_size, backend=backend)
        _, kept_coords, kept_values = select_key_points(output.probability, output.value, coords, gate, volume,
                                                        data.batch_size)
        return kept_coords, kept_values

    def build_maps(coords):
        return {key: backend.build_kernel_map(coords, shape, *key, batch_size=data.batch_size) for key in keys}

    with torch.no_grad():
        repetitions = _repetitions(encode, data.coords, device, min_time, max_repetitions)
        encode_time = _median_time(encode, [data.coords.clone() for _ in range(repetitions)], device)
        map_time = _median_time(build_maps, [data.coords.clone() for _ in range(repetitions)], device)

        maps = build_maps(data.coords)
        features = data.log_adc[:, None].to(encoder.convs[0].weight.dtype)

        def convolve(_coords):
            hidden = features
            last = len(encoder.convs) - 1
            for index, conv in enumerate(encoder.convs):
                activation = "relu" if index < last else "sigmoid"
                hidden = conv(hidden, maps[(conv.kernel_size, conv.dilation)], backend, activation)
            return hidden

        conv_time = _median_time(convolve, [None] * repetitions, device)
    return Timing(encode_time, map_time, conv_time, repetitions)

"""The throughput sweep: every backend x occupancy x batch size x dtype, within a time budget."""

from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass, field

import torch

from .. import backends
from ..model import BCAEVSEncoder
from .floors import MachineRates, measure_rates
from .inputs import CENTRAL_MIX, SWEEP_OCCUPANCIES, EncoderInput, simulated_input
from .timing import time_encoder

log = logging.getLogger(__name__)

#: Largest max abs difference of p or v from the float64 dense encoder accepted per dtype. For
#: half precision the bound only catches wrong results. Rounding log ADC values of 8 to 10 to
#: the dtype alone moves them by up to 2**-5 (bfloat16) or 2**-8 (float16). Five layers amplify
#: that, and some libraries also accumulate in half precision, so the report lists the errors.
TOLERANCE = {torch.float32: 1e-5, torch.float64: 1e-10, torch.bfloat16: 0.15, torch.float16: 0.05}


@dataclass
class Record:
    """One measured case: what ran, how fast, and how far from the float64 reference."""

    backend: str
    version: str
    device: str
    threads: int
    dtype: str
    point: str
    occupancy: float
    batch_size: int
    voxels: int
    seconds: float
    wedges_per_second: float
    voxels_per_second: float
    kernel_map_seconds: float
    convolution_seconds: float
    kernel_map_share: float
    max_error: float
    floor_seconds: float
    repetitions: int

    @property
    def times_floor(self) -> float:
        return self.seconds / self.floor_seconds


@dataclass
class SweepConfig:
    """What to sweep. ``points`` are occupancies (floats) or the central Au+Au preset's name."""

    backends: tuple[str, ...] = ()
    points: tuple = SWEEP_OCCUPANCIES + (CENTRAL_MIX,)
    batch_sizes: tuple[int, ...] = (1, 8)
    dtypes: tuple[torch.dtype, ...] = (torch.float32,)
    device: str = "cpu"
    time_budget: float = 600.0
    min_time: float = 0.5
    seed: int = 0
    encoder_seed: int = 0
    skipped: list[str] = field(default_factory=list)


def reference_encoder(seed: int) -> BCAEVSEncoder:
    """An encoder with seeded random weights, scaled so that p and v spread over (0, 1)."""
    generator = torch.Generator().manual_seed(seed)
    encoder = BCAEVSEncoder()
    with torch.no_grad():
        for conv in encoder.convs:
            conv.weight.copy_(torch.randn(conv.weight.shape, generator=generator) * 0.5)
    return encoder.eval()


def _oracle(encoder: BCAEVSEncoder, data: EncoderInput):
    reference = BCAEVSEncoder(backend="dense").double()
    reference.load_state_dict(encoder.state_dict())
    with torch.no_grad():
        return reference(data.coords, data.log_adc.double(), data.batch_size)


def _max_error(encoder, backend_name, data, device, dtype, oracle) -> float:
    with torch.no_grad():
        output = encoder(data.coords, data.log_adc.to(dtype), data.batch_size, backend=backend_name)
    errors = [(getattr(output, name).double().cpu() - getattr(oracle, name)).abs().max().item()
              for name in ("probability", "value")]
    return max(errors) if data.voxels else 0.0


def run_sweep(config: SweepConfig, progress=None) -> tuple[list[Record], MachineRates]:
    """Measure every case of ``config`` that fits in its time budget.

    Cases run in priority order: batch 1 in float32 for every backend and point first, then
    larger batches, then other dtypes. Cases that no longer fit are listed in
    ``config.skipped``. Raises ValueError when a backend's output leaves the tolerance.
    """
    device = torch.device(config.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {config.device!r} requested but torch {torch.__version__} has no CUDA")
    names = config.backends or tuple(name for name, status in backends.available().items() if status == "ok")
    for name in names:
        reason = backends.status(name)
        if reason != "ok":
            raise ValueError(f"backend {name!r} cannot run here: {reason}")

    started = time.monotonic()
    rates = measure_rates(device)
    log.info("machine: %.1f GFLOP/s float32 matmul, %.1f GB/s copy, %d threads on %s",
             rates.matmul_flops / 1e9, rates.copy_bandwidth / 1e9, rates.threads, device)
    encoder = reference_encoder(config.encoder_seed)

    cases = [(dtype, batch, point, name)
             for dtype in config.dtypes
             for batch in config.batch_sizes
             for point in config.points
             for name in names
             if dtype in backends.get(name).dtypes]
    cases.sort(key=lambda case: (config.dtypes.index(case[0]) > 0, case[1] != 1))

    inputs: dict = {}
    oracles: dict = {}
    records = []
    for index, (dtype, batch, point, name) in enumerate(cases):
        if time.monotonic() - started > config.time_budget:
            config.skipped.append(f"{name} {str(dtype).removeprefix('torch.')} batch {batch} at {point}")
            continue
        key = (point, batch)
        if key not in inputs:
            inputs[key] = simulated_input(point, batch, config.seed)
            oracles[key] = _oracle(encoder, inputs[key])
        data = inputs[key].to(device)
        data.log_adc = data.log_adc.to(dtype)
        model = reference_encoder(config.encoder_seed).to(device=device, dtype=dtype)

        error = _max_error(model, name, data, device, dtype, oracles[key])
        if error > TOLERANCE[dtype]:
            raise ValueError(f"backend {name!r} differs from the float64 dense encoder by {error:.3g} "
                             f"at {point} (tolerance {TOLERANCE[dtype]:g} for {dtype})")
        timing = time_encoder(model, name, data, device, config.min_time)
        backend = backends.get(name)
        record = Record(
            backend=name, version=backend.version, device=str(device), threads=torch.get_num_threads(),
            dtype=str(dtype).removeprefix("torch."), point=data.label, occupancy=data.mean_occupancy,
            batch_size=batch, voxels=data.voxels, seconds=timing.encode,
            wedges_per_second=batch / timing.encode, voxels_per_second=data.voxels / timing.encode,
            kernel_map_seconds=timing.kernel_maps, convolution_seconds=timing.convolutions,
            kernel_map_share=timing.kernel_map_share, max_error=error,
            floor_seconds=rates.floor(data.voxels), repetitions=timing.repetitions,
        )
        records.append(record)
        log.info("%s %s batch %d at %s: %.1f wedges/s, kernel maps %.0f %%", name, record.dtype, batch,
                 data.label, record.wedges_per_second, 100 * record.kernel_map_share)
        if progress is not None:
            progress(index + 1, len(cases))
    return records, rates


def records_as_dicts(records: list[Record]) -> list[dict]:
    return [dict(asdict(record), times_floor=record.times_floor) for record in records]

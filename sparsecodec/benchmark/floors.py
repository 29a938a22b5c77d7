"""Lower bounds on encoder time from this machine's measured arithmetic and memory rates.

* Compute floor: the encoder's floating-point operations divided by the measured float32
  matrix-multiply rate. Each parameter is one multiply-add per active voxel, so the encoder
  costs 2 x 382 = 764 FLOP per voxel.
* Memory floor: the bytes that must be read and written once divided by the measured copy
  bandwidth: per voxel 16 bytes of int32 coordinates and 4 bytes of float32 log ADC in, and 8
  bytes of float32 p and v out.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import torch

FLOP_PER_VOXEL = 2 * 382
BYTES_PER_VOXEL = 4 * 4 + 4 + 2 * 4


@dataclass
class MachineRates:
    """Measured float32 matmul rate (FLOP/s) and copy bandwidth (bytes read + written per s)."""

    matmul_flops: float
    copy_bandwidth: float
    device: str
    threads: int

    def compute_floor(self, voxels: int) -> float:
        return FLOP_PER_VOXEL * voxels / self.matmul_flops

    def memory_floor(self, voxels: int) -> float:
        return BYTES_PER_VOXEL * voxels / self.copy_bandwidth

    def floor(self, voxels: int) -> float:
        return max(self.compute_floor(voxels), self.memory_floor(voxels))


def _best_time(call, device: torch.device, repetitions: int) -> float:
    call()
    best = float("inf")
    for _ in range(repetitions):
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        start = time.perf_counter()
        call()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        best = min(best, time.perf_counter() - start)
    return best


def measure_rates(device: torch.device, matmul_size: int = 1024, copy_megabytes: int = 256) -> MachineRates:
    """Measure the float32 matmul rate and the copy bandwidth of ``device`` (best of 5 runs)."""
    a = torch.randn(matmul_size, matmul_size, device=device)
    b = torch.randn(matmul_size, matmul_size, device=device)
    matmul_time = _best_time(lambda: torch.mm(a, b), device, 5)

    source = torch.empty(copy_megabytes * 2**20 // 4, dtype=torch.float32, device=device).fill_(1.0)
    target = torch.empty_like(source)
    copy_time = _best_time(lambda: target.copy_(source), device, 5)

    return MachineRates(
        matmul_flops=2 * matmul_size**3 / matmul_time,
        copy_bandwidth=2 * source.numel() * 4 / copy_time,
        device=str(device),
        threads=torch.get_num_threads(),
    )

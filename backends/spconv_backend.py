"""The ``spconv`` backend: spconv 2.x ``SubMConv3d`` arithmetic through its functional API.

The two interface steps map onto spconv's own: :func:`spconv.pytorch.ops.get_indice_pairs`
builds the kernel map ("indice pairs") and :func:`spconv.pytorch.functional.indice_subm_conv`
convolves. spconv's weight layout is (C_out, k0, k1, k2, C_in) and it computes the same
cross-correlation as ``torch.nn.Conv3d`` (checked against the dense backend in the tests).
Each map is built for one kernel size and dilation, so the silent reuse that a shared spconv
``indice_key`` allows across layers of different dilation cannot happen here.

On CPU, spconv 2.3.8's gather-GEMM-scatter loop gives wrong rows (different ones on every call)
when OpenMP runs with more than one thread: the conformance suite saw about 20 wrong rows of
76,492 at 10 % occupancy with 2 threads and none with 1. The adapter therefore runs spconv's CPU
forward and backward with one intra-op thread and restores the setting afterwards. spconv
2.3.8's CPU backward also asks torch for the current CUDA stream, which fails on a CPU-only
torch although the CPU branch never uses the stream; the adapter answers that call with 0 for
the duration of the backward.
"""

from __future__ import annotations

from contextlib import contextmanager

import torch

from .base import KernelMap, SparseConvBackend

MINIMUM_VERSION = (2, 3)


def _version_tuple(text: str) -> tuple[int, ...]:
    parts = []
    for piece in text.split(".")[:3]:
        digits = "".join(ch for ch in piece if ch.isdigit())
        parts.append(int(digits) if digits else 0)
    return tuple(parts)


def probe() -> str:
    """Import spconv and return "ok", or why this spconv cannot be used."""
    import spconv
    import spconv.pytorch  # noqa: F401  (the torch bindings are what the adapter needs)

    version = getattr(spconv, "__version__", "0")
    if _version_tuple(version) < MINIMUM_VERSION:
        return f"unsupported version: spconv {version} found, {'.'.join(map(str, MINIMUM_VERSION))} or newer needed"
    return "ok"


@contextmanager
def _one_cpu_thread():
    previous = torch.get_num_threads()
    if previous == 1:
        yield
        return
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


@contextmanager
def _no_cuda_stream(ops_module):
    original = ops_module.get_current_stream
    ops_module.get_current_stream = lambda: 0
    try:
        yield
    finally:
        ops_module.get_current_stream = original


class _CpuSubmConv(torch.autograd.Function):
    """spconv's own CPU submanifold convolution and its backward, each on one OpenMP thread."""

    @staticmethod
    def forward(ctx, features, weight, pairs, pair_counts, algo):
        from spconv.pytorch import ops

        ctx.save_for_backward(features, weight, pairs, pair_counts)
        ctx.algo = algo
        with _one_cpu_thread():
            return ops.indice_conv(features, weight, pairs, pair_counts, features.shape[0], False, True, algo=algo)

    @staticmethod
    def backward(ctx, grad_output):
        from spconv.pytorch import ops

        features, weight, pairs, pair_counts = ctx.saved_tensors
        with _one_cpu_thread(), _no_cuda_stream(ops):
            grad_features, grad_weight = ops.indice_conv_backward(
                features, weight, grad_output.contiguous(), pairs, pair_counts, False, True, algo=ctx.algo
            )
        return grad_features, grad_weight, None, None, None


class SpconvBackend(SparseConvBackend):
    """Submanifold convolution with spconv's native (gather–GEMM–scatter) algorithm."""

    name = "spconv"
    dtypes = (torch.float16, torch.float32, torch.float64)

    def __init__(self) -> None:
        super().__init__()
        from spconv.core import ConvAlgo
        from spconv.pytorch import functional, ops

        self._algo = ConvAlgo.Native
        self._ops = ops
        self._functional = functional

    @property
    def version(self) -> str:
        import spconv

        return spconv.__version__

    def convert_weight(self, weight: torch.Tensor) -> torch.Tensor:
        return weight.permute(0, 2, 3, 4, 1).contiguous()

    def weight_from_library(self, converted: torch.Tensor) -> torch.Tensor:
        return converted.permute(0, 4, 1, 2, 3)

    def _build(self, coords, spatial_shape, batch_size, kernel_size, dilation):
        self._check_unique(coords, spatial_shape)
        if kernel_size == 1:
            # spconv itself runs 1x1x1 convolutions as a plain matmul without indice pairs.
            return None
        padding = dilation * (kernel_size // 2)
        _, pairs, pair_counts = self._ops.get_indice_pairs(
            coords,
            batch_size,
            list(spatial_shape),
            self._algo,
            [kernel_size] * 3,
            [1] * 3,
            [padding] * 3,
            [dilation] * 3,
            [0] * 3,
            True,
            False,
        )
        return pairs, pair_counts

    def _conv(self, features: torch.Tensor, kernel_map: KernelMap, weight: torch.Tensor) -> torch.Tensor:
        if kernel_map.kernel_size == 1:
            return features @ weight.reshape(weight.shape[0], weight.shape[-1]).transpose(0, 1)
        pairs, pair_counts = kernel_map.data
        if features.device.type == "cpu":
            return _CpuSubmConv.apply(features, weight, pairs, pair_counts, self._algo)
        return self._functional.indice_subm_conv(
            features, weight, pairs, pair_counts, kernel_map.num_rows, self._algo
        )

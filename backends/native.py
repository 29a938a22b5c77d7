"""The ``native`` backend: this project's own kernels (:mod:`sparsecodec.kernels`).

Kernel map: each row's position in a padded grid plus the flat steps of the kernel offsets
(direct addressing, no hash table). Convolution: on CPU without autograd, a numba stencil over a
zero-padded feature grid with the activation fused in; with autograd, on CUDA, in half precision
or without numba, a torch gather and matmul over the neighbour table. Both paths give
bit-identical results on repeated calls.
"""

from __future__ import annotations

import torch

from ..kernels import (
    build_padded_grid,
    canonical_to_offset_major,
    capabilities,
    find_duplicate,
    grid_positions,
    offset_major_to_canonical,
    padding_for,
)
from ..kernels.gather_conv import gather_conv
from .base import KernelMap, SparseConvBackend
from .cache import TensorKeyedCache
from .validation import raise_duplicate


def probe() -> str:
    """Return "ok": the native backend needs only torch (numba is an optional speed-up)."""
    return "ok"


class NativeBackend(SparseConvBackend):
    """Submanifold convolution with the project's own kernels, on CPU and CUDA."""

    name = "native"
    dtypes = (torch.float16, torch.bfloat16, torch.float32, torch.float64)
    fused_activations = frozenset({"relu", "sigmoid"})

    def convert_weight(self, weight: torch.Tensor) -> torch.Tensor:
        return canonical_to_offset_major(weight).contiguous()

    def weight_from_library(self, converted: torch.Tensor) -> torch.Tensor:
        return offset_major_to_canonical(converted)

    def __init__(self) -> None:
        super().__init__()
        self._positions = TensorKeyedCache()

    def clear_cache(self) -> None:
        super().clear_cache()
        self._positions.clear()

    def _build(self, coords, spatial_shape, batch_size, kernel_size, dilation):
        use_numba = capabilities.numba_enabled()
        pad = padding_for(kernel_size, dilation)

        def positions() -> torch.Tensor:
            padded = tuple(size + 2 * pad for size in spatial_shape)
            flat = grid_positions(coords, padded, pad, use_numba)
            duplicate = find_duplicate(flat, batch_size * padded[0] * padded[1] * padded[2], use_numba)
            if duplicate is not None:
                raise_duplicate(coords, *duplicate)
            return flat

        # ``coords`` is the validated set shared by every map over the same input, so the
        # positions and the duplicate check are computed once per padding.
        flat = self._positions.get_or_build(coords, (spatial_shape, batch_size, pad), positions)
        return build_padded_grid(coords, spatial_shape, batch_size, kernel_size, dilation, use_numba, flat)

    def _use_numba(self, features: torch.Tensor, weight: torch.Tensor) -> bool:
        return (
            features.device.type == "cpu"
            and features.dtype in (torch.float32, torch.float64)
            and not (torch.is_grad_enabled() and (features.requires_grad or weight.requires_grad))
            and capabilities.numba_enabled()
        )

    def _conv(self, features: torch.Tensor, kernel_map: KernelMap, weight: torch.Tensor) -> torch.Tensor:
        padded_grid = kernel_map.data
        if self._use_numba(features, weight):
            from ..kernels.cpu_numba import stencil_conv

            return stencil_conv(features, padded_grid.flat, padded_grid.deltas, weight, padded_grid.grid_size)
        return gather_conv(features, padded_grid.neighbors(), weight)

    def conv_stack(self, features, kernel_maps, weights, activations, biases=None) -> torch.Tensor:
        """Run the whole stack in one kernel call per layer when the numba path applies.

        That needs CPU float32/float64 without autograd, no bias, at most two channels per layer
        and maps that share one coordinate set and padding, which every BCAE-VS encoder layer
        does. Otherwise the layers run one :meth:`conv` at a time.
        """
        from ..kernels.stencil_codegen import STACK_MAX_CHANNELS

        # NOTE: at occupancy 1e-3 the stencil takes about 0.08 ms of a 0.4 to 0.6 ms encoder call.
        # Per-call Python and torch work (checks, caches, gate) takes the rest, so native is only
        # about 4x the fastest other library there (docs/benchmarks.md).
        fusable = (
            len(kernel_maps) > 0
            and len(kernel_maps) == len(weights) == len(activations)
            and (biases is None or all(bias is None for bias in biases))
            and all(isinstance(kernel_map, KernelMap) and kernel_map.backend == self.name for kernel_map in kernel_maps)
            and all(kernel_map.data is not None and kernel_map.data.flat is kernel_maps[0].data.flat
                    for kernel_map in kernel_maps)
            and all(isinstance(weight, torch.Tensor) and weight.dim() == 5
                    and max(weight.shape[:2]) <= STACK_MAX_CHANNELS for weight in weights)
            and self._use_numba(features, weights[0])
            and not any(weight.requires_grad and torch.is_grad_enabled() for weight in weights)
        )
        if not fusable:
            return super().conv_stack(features, kernel_maps, weights, activations, biases)

        from ..kernels.cpu_numba import stencil_stack

        channels = None
        for kernel_map, weight, activation in zip(kernel_maps, weights, activations):
            self._check_layer(features, kernel_map, weight, None, activation, channels)
            channels = weight.shape[0]
        padded_grid = kernel_maps[0].data
        return stencil_stack(
            features.contiguous(),
            padded_grid.flat,
            [kernel_map.data.deltas for kernel_map in kernel_maps],
            [self._converted(weight) for weight in weights],
            list(activations),
            padded_grid.grid_size,
        )

    def _conv_fused(self, features, kernel_map: KernelMap, weight, activation: str) -> torch.Tensor:
        padded_grid = kernel_map.data
        if self._use_numba(features, weight):
            from ..kernels.cpu_numba import stencil_conv

            return stencil_conv(
                features, padded_grid.flat, padded_grid.deltas, weight, padded_grid.grid_size, activation
            )
        out = gather_conv(features, padded_grid.neighbors(), weight)
        return torch.relu(out) if activation == "relu" else torch.sigmoid(out)

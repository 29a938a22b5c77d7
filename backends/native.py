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
    offset_deltas,
    offset_major_to_canonical,
    padding_for,
)
from ..kernels.gather_conv import gather_conv
from .base import ACTIVATIONS, KernelMap, SparseConvBackend
from .cache import TensorKeyedCache
from .validation import check_features, check_kernel_geometry, check_spatial_shape, check_weight, raise_duplicate


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
        self._plans: dict = {}

    def clear_cache(self) -> None:
        super().clear_cache()
        self._positions.clear()
        self._plans.clear()

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
        first = kernel_maps[0] if len(kernel_maps) > 0 else None
        shared = (
            isinstance(first, KernelMap) and first.data is not None and len(kernel_maps) == len(weights)
            and all(isinstance(kernel_map, KernelMap) and kernel_map.backend == self.name
                    and kernel_map.data is not None and kernel_map.data.flat is first.data.flat
                    for kernel_map in kernel_maps)
        )
        plan = None
        if shared:
            geometries = [(kernel_map.kernel_size, kernel_map.dilation) for kernel_map in kernel_maps]
            plan = self._stack_plan(features, weights, geometries, activations, biases, first.spatial_shape)
        if plan is None:
            return super().conv_stack(features, kernel_maps, weights, activations, biases)

        from ..kernels.cpu_numba import run_stack_plan

        check_features(features, first.num_rows, first.device)
        return run_stack_plan(plan, features.contiguous(), first.data.flat, first.data.grid_size)

    def submanifold_stack(self, coords, spatial_shape, features, weights, geometries, activations,
                          batch_size=None, biases=None) -> torch.Tensor:
        """Compute the stack from coordinates to output in one step when the numba stack applies.

        The conditions are those of :meth:`conv_stack`. One pass range-checks the coordinates
        and places them in the padded grid, and no kernel map object is formed. Duplicates are
        searched only when the positions do not strictly increase (unsorted coordinates).
        On sparse wedges, building four cached maps costs almost as much as the convolutions.
        Bad input falls back to the general path, which raises the usual errors.
        """
        plan = None
        if (isinstance(coords, torch.Tensor) and coords.dtype == torch.int32 and coords.dim() == 2
                and coords.shape[0] > 0 and coords.shape[1] == 4 and coords.device.type == "cpu"
                and coords.is_contiguous() and len(geometries) == len(weights)
                and (batch_size is None or (type(batch_size) is int and batch_size > 0))):
            shape = check_spatial_shape(spatial_shape)
            plan = self._stack_plan(features, weights, [tuple(geometry) for geometry in geometries], activations,
                                    biases, shape)
        if plan is None:
            return super().submanifold_stack(coords, spatial_shape, features, weights, geometries, activations,
                                             batch_size, biases)

        from ..kernels.cpu_numba import checked_positions, find_duplicate, run_stack_plan

        flat, batches, increasing = checked_positions(coords, shape, plan.pad, batch_size)
        if flat is None:
            # Out of range or a bad batch index: the general path names the offending value.
            return super().submanifold_stack(coords, spatial_shape, features, weights, geometries, activations,
                                             batch_size, biases)
        grid_size = batches * plan.padded_shape[0] * plan.padded_shape[1] * plan.padded_shape[2]
        duplicate = None if increasing else find_duplicate(flat, grid_size)
        if duplicate is not None:
            raise_duplicate(coords, *duplicate)
        check_features(features, coords.shape[0], coords.device)
        return run_stack_plan(plan, features.contiguous(), flat, grid_size)

    def _stack_plan(self, features, weights, geometries, activations, biases, spatial_shape):
        """Return the numba plan of a fusable stack, or None. Weights are checked once per plan."""
        from ..kernels.stencil_codegen import STACK_MAX_CHANNELS

        # The checks that a cached plan cannot decide come first; on small inputs this lookup is
        # a noticeable part of the whole call.
        if not (isinstance(features, torch.Tensor) and features.dim() == 2 and len(weights) > 0
                and len(geometries) == len(weights) == len(activations)
                and all(isinstance(weight, torch.Tensor) for weight in weights)):
            return None
        if biases is not None and any(bias is not None for bias in biases):
            return None
        if not self._use_numba(features, weights[0]) or (
                torch.is_grad_enabled() and any(weight.requires_grad for weight in weights)):
            return None
        key = (tuple(map(id, weights)), tuple(weight._version for weight in weights), tuple(activations),
               tuple(geometries), tuple(spatial_shape), features.dtype, features.shape[1])
        plan = self._plans.get(key)
        if plan is not None and all(source() is weight for source, weight in zip(plan.sources, weights)):
            return plan
        if not all(weight.dim() == 5 and max(weight.shape[:2]) <= STACK_MAX_CHANNELS for weight in weights):
            return None

        from ..kernels.cpu_numba import StackPlan

        geometries = [check_kernel_geometry(*geometry) for geometry in geometries]
        pads = {padding_for(*geometry) for geometry in geometries}
        if len(pads) != 1 or any(activation not in ACTIVATIONS for activation in activations):
            return None
        pad = pads.pop()
        padded = tuple(size + 2 * pad for size in spatial_shape)
        channels = features.shape[1]
        for weight, (kernel_size, _) in zip(weights, geometries):
            check_weight(weight, None, channels, kernel_size, features)
            channels = weight.shape[0]
        plan = StackPlan.build(
            [offset_deltas(kernel_size, dilation, padded) for kernel_size, dilation in geometries],
            [self._converted(weight) for weight in weights],
            list(activations),
            features.shape[1],
            sources=weights,
            padded_shape=padded,
            pad=pad,
        )
        if len(self._plans) >= 64:
            self._plans.clear()
        self._plans[key] = plan
        return plan

    def _conv_fused(self, features, kernel_map: KernelMap, weight, activation: str) -> torch.Tensor:
        padded_grid = kernel_map.data
        if self._use_numba(features, weight):
            from ..kernels.cpu_numba import stencil_conv

            return stencil_conv(
                features, padded_grid.flat, padded_grid.deltas, weight, padded_grid.grid_size, activation
            )
        out = gather_conv(features, padded_grid.neighbors(), weight)
        return torch.relu(out) if activation == "relu" else torch.sigmoid(out)

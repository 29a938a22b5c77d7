"""The backend-neutral contract: a kernel map step and a convolution step.

Conventions shared by every backend:

* Coordinates: integer tensor (N, 4) = (batch, axis 0, axis 1, axis 2); for a TPC wedge the
  spatial axes are (layer, azimuth, time). ``spatial_shape`` gives the three axis sizes.
* Features: float tensor (N, C), row i belongs to coordinate row i.
* Weights: ``torch.nn.Conv3d`` layout (C_out, C_in, k, k, k). The convolution is a
  cross-correlation: ``out[c] = sum_o W[:, :, o] @ x[c + d * o]`` over offsets
  ``o = (o0, o1, o2)`` in ``{-(k//2) .. k//2}^3``, where ``W[:, :, o]`` means
  ``W[:, :, o0 + k//2, o1 + k//2, o2 + k//2]`` and sites outside the active set contribute 0.
  Flattened, offset index ``((o0 + r) * k + (o1 + r)) * k + (o2 + r)`` with ``r = k // 2`` is
  the C-order index of the kernel's last three axes.
* Submanifold: the output sites are exactly the input sites, and :meth:`conv` returns one row
  per input row in input row order.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import torch

from .cache import TensorKeyedCache
from .validation import (
    check_coordinates,
    check_features,
    check_kernel_geometry,
    check_spatial_shape,
    check_unique_keys,
    check_weight,
    linear_keys,
)


#: Activations :meth:`SparseConvBackend.conv` can apply after the convolution.
ACTIVATIONS = {None: None, "relu": torch.relu, "sigmoid": torch.sigmoid}


@dataclass(eq=False)
class KernelMap:
    """A backend's neighbour structure for one coordinate set, kernel size and dilation.

    ``coords`` are the validated int32 coordinates on the device the map lives on; ``data`` is
    the backend's own representation and is only meaningful to the backend named ``backend``.
    """

    backend: str
    coords: torch.Tensor
    spatial_shape: tuple[int, int, int]
    batch_size: int
    kernel_size: int
    dilation: int
    data: Any

    @property
    def num_rows(self) -> int:
        return int(self.coords.shape[0])

    @property
    def device(self) -> torch.device:
        return self.coords.device


class SparseConvBackend(ABC):
    """Base class of every backend adapter.

    Subclasses implement :meth:`_build` (library kernel map from validated coordinates) and
    :meth:`_conv` (convolution on a non-empty input with a weight already converted by
    :meth:`convert_weight`). Validation, the empty-input case, bias and both caches live here so
    that every backend behaves the same way on bad input.
    """

    name: ClassVar[str] = ""
    #: Feature dtypes the library can convolve; others raise TypeError.
    dtypes: ClassVar[tuple[torch.dtype, ...]] = (torch.float32, torch.float64)
    #: Device types the library can run on ("cpu", "cuda").
    device_types: ClassVar[tuple[str, ...]] = ("cpu", "cuda")
    #: Activations that :meth:`_conv_fused` computes inside the convolution kernel.
    fused_activations: ClassVar[frozenset[str]] = frozenset()

    def __init__(self) -> None:
        self._map_cache = TensorKeyedCache()
        self._weight_cache = TensorKeyedCache()
        # Maps of different kernel size or dilation over one coordinate set share its validated
        # copy, so range and duplicate checks run once per set.
        self._coords_cache = TensorKeyedCache()
        self._unique_cache = TensorKeyedCache()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} name={self.name!r}>"

    @property
    def version(self) -> str:
        """Version of the underlying library (or of this package for its own backends)."""
        from importlib.metadata import version

        return version("sparsecodec")

    def clear_cache(self) -> None:
        """Drop every cached kernel map, converted weight and validated coordinate set."""
        for cache in (self._map_cache, self._weight_cache, self._coords_cache, self._unique_cache):
            cache.clear()

    def build_kernel_map(
        self,
        coords: torch.Tensor,
        spatial_shape,
        kernel_size: int = 3,
        dilation: int = 1,
        batch_size: int | None = None,
        cache: bool = True,
    ) -> KernelMap:
        """Build (or fetch from the cache) the kernel map of a submanifold convolution.

        The cache key is the identity and in-place version of ``coords`` together with
        ``spatial_shape``, ``kernel_size``, ``dilation`` and ``batch_size``, so a map is never
        reused for another kernel size or dilation. Pass ``cache=False`` to time a fresh build,
        validation included.
        """
        shape = check_spatial_shape(spatial_shape)
        kernel_size, dilation = check_kernel_geometry(kernel_size, dilation)
        if not cache or not isinstance(coords, torch.Tensor):
            self._coords_cache.clear()
            self._unique_cache.clear()
            return self._build_checked(coords, shape, kernel_size, dilation, batch_size)

        def build() -> KernelMap:
            return self._build_checked(coords, shape, kernel_size, dilation, batch_size)

        return self._map_cache.get_or_build(coords, (shape, kernel_size, dilation, batch_size), build)

    def _build_checked(self, coords, shape, kernel_size, dilation, batch_size) -> KernelMap:
        def check():
            checked, checked_batch_size = check_coordinates(coords, shape, batch_size)
            if checked.numel() and checked.data_ptr() == coords.data_ptr():
                # The caches are keyed on the caller's tensor, so a map must not keep it alive
                # (the entry would then never expire) nor see later in-place edits of it.
                checked = checked.clone()
            self._check_device(checked.device)
            return checked, checked_batch_size

        if isinstance(coords, torch.Tensor):
            checked, batch_size = self._coords_cache.get_or_build(coords, (shape, batch_size), check)
        else:
            checked, batch_size = check()
        data = None
        if checked.shape[0] > 0:
            data = self._build(checked, shape, batch_size, kernel_size, dilation)
        return KernelMap(self.name, checked, shape, batch_size, kernel_size, dilation, data)

    def conv(
        self,
        features: torch.Tensor,
        kernel_map: KernelMap,
        weight: torch.Tensor,
        bias: torch.Tensor | None = None,
        activation: str | None = None,
    ) -> torch.Tensor:
        """Apply the submanifold convolution; return (N, C_out) rows in input row order.

        ``activation`` ("relu", "sigmoid" or None) is applied after the bias. A backend listed
        in :attr:`fused_activations` computes it inside its kernel; the others call torch.
        """
        self._check_layer(features, kernel_map, weight, bias, activation, None)

        if kernel_map.num_rows == 0:
            # An empty sum: only the centre tap can touch an empty set, and it touches nothing.
            # Going through matmul keeps the autograd graph, so weight.grad becomes zeros.
            centre = kernel_map.kernel_size // 2
            out = features @ weight[:, :, centre, centre, centre].transpose(0, 1)
        elif bias is None and activation is not None and activation in self.fused_activations:
            return self._conv_fused(features.contiguous(), kernel_map, self._converted(weight), activation)
        else:
            out = self._conv(features.contiguous(), kernel_map, self._converted(weight))
        if bias is not None:
            out = out + bias
        return out if activation is None else ACTIVATIONS[activation](out)

    def _check_layer(self, features, kernel_map, weight, bias, activation, in_channels: int | None) -> None:
        """Validate one layer's inputs; ``in_channels`` overrides ``features.shape[1]`` for layers
        whose input exists only inside a fused kernel."""
        if activation not in ACTIVATIONS:
            raise ValueError(f"activation must be one of {', '.join(map(repr, ACTIVATIONS))}, got {activation!r}")
        if not isinstance(kernel_map, KernelMap):
            raise TypeError(f"kernel_map must be a KernelMap, got {type(kernel_map).__name__}")
        if kernel_map.backend != self.name:
            raise ValueError(
                f"kernel map was built by backend {kernel_map.backend!r} and cannot be used with "
                f"backend {self.name!r}"
            )
        check_features(features, kernel_map.num_rows, kernel_map.device)
        channels = features.shape[1] if in_channels is None else in_channels
        check_weight(weight, bias, channels, kernel_map.kernel_size, features)
        if features.dtype not in self.dtypes:
            names = ", ".join(str(dtype).removeprefix("torch.") for dtype in self.dtypes)
            raise TypeError(f"backend {self.name!r} supports feature dtypes {names}, got {features.dtype}")

    def conv_stack(
        self,
        features: torch.Tensor,
        kernel_maps: Sequence[KernelMap],
        weights: Sequence[torch.Tensor],
        activations: Sequence[str | None],
        biases: Sequence[torch.Tensor | None] | None = None,
    ) -> torch.Tensor:
        """Apply several convolutions in sequence over one coordinate set; return the last output.

        Layer l is ``conv(x, kernel_maps[l], weights[l], biases[l], activations[l])``. This
        implementation calls :meth:`conv` per layer; a backend may run the whole stack at once.
        """
        biases = [None] * len(weights) if biases is None else list(biases)
        if not len(kernel_maps) == len(weights) == len(activations) == len(biases):
            raise ValueError(
                f"conv_stack needs one kernel map, weight, activation and bias per layer, got "
                f"{len(kernel_maps)}, {len(weights)}, {len(activations)} and {len(biases)}"
            )
        hidden = features
        for kernel_map, weight, activation, bias in zip(kernel_maps, weights, activations, biases):
            hidden = self.conv(hidden, kernel_map, weight, bias, activation)
        return hidden

    def submanifold_stack(
        self,
        coords: torch.Tensor,
        spatial_shape,
        features: torch.Tensor,
        weights: Sequence[torch.Tensor],
        geometries: Sequence[tuple[int, int]],
        activations: Sequence[str | None],
        batch_size: int | None = None,
        biases: Sequence[torch.Tensor | None] | None = None,
    ) -> torch.Tensor:
        """Apply several submanifold convolutions over one coordinate set, from coordinates to output.

        Layer l has kernel size and dilation ``geometries[l]``; the rest is as in
        :meth:`conv_stack`. This implementation builds one kernel map per geometry (layers that
        share one share the map, and the maps are cached as in :meth:`build_kernel_map`) and
        calls :meth:`conv_stack`. A backend may go from coordinates to output in one step.
        """
        if len(geometries) != len(weights):
            raise ValueError(f"submanifold_stack needs one (kernel_size, dilation) per weight, got "
                             f"{len(geometries)} for {len(weights)} weights")
        geometries = [check_kernel_geometry(*geometry) for geometry in geometries]
        maps: dict = {}
        for geometry in geometries:
            if geometry not in maps:
                maps[geometry] = self.build_kernel_map(coords, spatial_shape, *geometry, batch_size=batch_size)
        return self.conv_stack(features, [maps[geometry] for geometry in geometries], weights, activations, biases)

    def _conv_fused(self, features, kernel_map: KernelMap, weight, activation: str) -> torch.Tensor:
        """Convolve and apply ``activation`` in one kernel; only for :attr:`fused_activations`."""
        raise NotImplementedError(f"backend {self.name!r} fuses no activation")

    def _converted(self, weight: torch.Tensor) -> Any:
        # A converted weight that carries an autograd graph must be rebuilt on every call,
        # otherwise a second backward pass would run through a graph that was already freed.
        if weight.requires_grad and torch.is_grad_enabled():
            return self.convert_weight(weight)
        return self._weight_cache.get_or_build(
            weight, (weight.dtype, weight.device), lambda: self.convert_weight(weight.detach())
        )

    def _check_device(self, device: torch.device) -> None:
        if device.type not in self.device_types:
            raise ValueError(
                f"backend {self.name!r} runs on {', '.join(self.device_types)}, not on {device}"
            )

    def _check_unique(self, coords: torch.Tensor, shape: tuple[int, int, int]) -> torch.Tensor:
        """Raise on duplicate coordinates; return the linear keys the check computed.

        The result is cached on the validated ``coords``, so maps that share them check once.
        """

        def check() -> torch.Tensor:
            keys = linear_keys(coords, shape)
            check_unique_keys(coords, keys)
            return keys

        return self._unique_cache.get_or_build(coords, shape, check)

    # --- implemented by each backend ------------------------------------------------------

    @abstractmethod
    def convert_weight(self, weight: torch.Tensor) -> Any:
        """Convert a canonical (C_out, C_in, k, k, k) weight to the library's layout."""

    @abstractmethod
    def weight_from_library(self, converted: Any) -> torch.Tensor:
        """Convert a weight in the library's layout back to the canonical layout."""

    @abstractmethod
    def _build(self, coords, spatial_shape, batch_size, kernel_size, dilation) -> Any:
        """Build the library's kernel map for non-empty, range-checked int32 ``coords``.

        Implementations must reject duplicate coordinates, for example with
        :meth:`_check_unique`.
        """

    @abstractmethod
    def _conv(self, features, kernel_map: KernelMap, weight) -> torch.Tensor:
        """Convolve non-empty contiguous ``features`` with a converted weight."""

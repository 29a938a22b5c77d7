"""The ``minkowski`` backend: MinkowskiEngine 0.5 ``MinkowskiConvolution`` arithmetic.

MinkowskiEngine is on PyPI only as a source archive; ``scripts/install-minkowskiengine.sh``
builds and installs it. A stride-1 ``MinkowskiConvolution`` keeps the input coordinates, so it
is a submanifold convolution. The adapter calls its autograd function
``MinkowskiConvolutionFunction`` with one ``CoordinateManager`` per kernel map.

Conventions of MinkowskiEngine 0.5.4 that the adapter translates:

* Coordinates are (batch, axis 0, axis 1, axis 2) int32 rows, the same columns as here.
* Row order: the coordinate map may order rows differently from the input (it differs between
  its CPU and GPU maps), so the adapter permutes features into map order with the ``unique_map``
  returned by ``insert_and_map`` and permutes the output back with ``inverse_map``.
* Weights are (kernel volume, C_in, C_out). For an odd kernel size the kernel index runs over
  offsets with axis 0 fastest: ``((o2 + r) * k + (o1 + r)) * k + (o0 + r)``, the reverse of the
  canonical C order (checked against ``CoordinateManager.kernel_map`` in the tests).
* The convolution is the same cross-correlation as ``torch.nn.Conv3d``, without bias. The CPU
  kernels exist for float32 and float64 only.

MinkowskiEngine 0.5.4 runs ``from collections import Sequence``, which fails on Python 3.10 and
newer. The adapter provides ``collections.Sequence`` only while it imports the library and
removes it again. Importing MinkowskiEngine also changes the process, as the library itself
does: it appends its package folder to ``sys.path``, and it sets ``OMP_NUM_THREADS=16`` when
that variable is unset and the machine has more than 16 CPUs.

NOTE: with more than one OpenMP thread, MinkowskiEngine's CPU kernels are not bit-reproducible:
four training steps from the same seed ended with weights up to 7e-9 apart. ``torch.set_num_threads``
does not reach those threads, so set ``OMP_NUM_THREADS=1`` before Python starts when a training
run on this backend must repeat exactly.
"""

from __future__ import annotations

import collections
import collections.abc
import warnings
from contextlib import contextmanager

import torch

from .base import KernelMap, SparseConvBackend

MINIMUM_VERSION = (0, 5)


def _version_tuple(text: str) -> tuple[int, ...]:
    parts = []
    for piece in text.split(".")[:3]:
        digits = "".join(ch for ch in piece if ch.isdigit())
        parts.append(int(digits) if digits else 0)
    return tuple(parts)


@contextmanager
def _collections_sequence_alias():
    """Provide ``collections.Sequence`` (removed in Python 3.10) for the duration of an import."""
    if hasattr(collections, "Sequence"):
        yield
        return
    collections.Sequence = collections.abc.Sequence
    try:
        yield
    finally:
        if getattr(collections, "Sequence", None) is collections.abc.Sequence:
            del collections.Sequence


def import_minkowski():
    """Import and return the ``MinkowskiEngine`` module on any supported Python version."""
    with _collections_sequence_alias(), warnings.catch_warnings():
        # A CPU-only build warns on every import; the adapter reports that as device_types.
        warnings.filterwarnings("ignore", message=".*compiled with CPU_ONLY", category=UserWarning)
        import MinkowskiEngine

    return MinkowskiEngine


def probe() -> str:
    """Import MinkowskiEngine and return "ok", or why it cannot be used."""
    engine = import_minkowski()
    version = getattr(engine, "__version__", "0")
    if _version_tuple(version)[:2] < MINIMUM_VERSION:
        return (
            f"unsupported version: MinkowskiEngine {version} found, "
            f"{'.'.join(map(str, MINIMUM_VERSION))} or newer needed"
        )
    return "ok"


def canonical_to_minkowski(weight: torch.Tensor) -> torch.Tensor:
    """Reorder a (C_out, C_in, k, k, k) weight to MinkowskiEngine's (k**3, C_in, C_out).

    The kernel index of the result runs with axis 0 fastest, as MinkowskiEngine's hyper-cube
    region enumerates offsets for odd kernel sizes.
    """
    c_out, c_in, k = weight.shape[0], weight.shape[1], weight.shape[2]
    return weight.permute(4, 3, 2, 1, 0).reshape(k * k * k, c_in, c_out).contiguous()


def minkowski_to_canonical(kernel: torch.Tensor) -> torch.Tensor:
    """Invert :func:`canonical_to_minkowski`."""
    volume, c_in, c_out = kernel.shape
    k = round(volume ** (1 / 3))
    if k * k * k != volume:
        raise ValueError(f"kernel volume {volume} of a (K, C_in, C_out) weight is not a cube")
    return kernel.reshape(k, k, k, c_in, c_out).permute(4, 3, 2, 1, 0)


class MinkowskiBackend(SparseConvBackend):
    """Submanifold convolution with MinkowskiEngine's coordinate manager and convolution."""

    name = "minkowski"
    dtypes = (torch.float32, torch.float64)

    def __init__(self) -> None:
        super().__init__()
        self._engine = import_minkowski()
        from MinkowskiEngineBackend._C import ConvolutionMode

        self._default_mode = ConvolutionMode.DEFAULT
        # A CPU-only build (the default of the install script) has no CUDA coordinate maps.
        self.device_types = ("cpu", "cuda") if self._engine.is_cuda_available() else ("cpu",)

    @property
    def version(self) -> str:
        return self._engine.__version__

    def convert_weight(self, weight: torch.Tensor) -> torch.Tensor:
        return canonical_to_minkowski(weight)

    def weight_from_library(self, converted: torch.Tensor) -> torch.Tensor:
        return minkowski_to_canonical(converted)

    def _build(self, coords, spatial_shape, batch_size, kernel_size, dilation):
        self._check_unique(coords, spatial_shape)
        engine = self._engine

        # NOTE: the CUDA path (CUDA coordinate map, needs a CUDA build of MinkowskiEngine) has
        # not been run yet. The conformance suite covers it on a machine with a GPU.
        map_type = engine.CoordinateMapType.CUDA if coords.is_cuda else engine.CoordinateMapType.CPU
        manager = engine.CoordinateManager(D=3, coordinate_map_type=map_type)
        key, (unique_map, inverse_map) = manager.insert_and_map(coords, [1, 1, 1])

        # Coordinates are unique, so unique_map is a permutation and map row i contains input
        # row unique_map[i]. The CPU map keeps input order in practice, and then both gathers
        # are skipped.
        unique_map = unique_map.to(device=coords.device, dtype=torch.int64)
        inverse_map = inverse_map.to(device=coords.device, dtype=torch.int64)
        if torch.equal(unique_map, torch.arange(coords.shape[0], device=coords.device)):
            unique_map = inverse_map = None

        generator = engine.KernelGenerator(
            kernel_size=kernel_size, stride=1, dilation=dilation, dimension=3
        )
        # Build the library's kernel map now, so that the convolution step only convolves. The
        # manager caches it under the same key the convolution looks up; this call also copies
        # the map into tensors, which are dropped.
        manager.kernel_map(key, key, stride=1, kernel_size=kernel_size, dilation=dilation)
        return manager, key, generator, unique_map, inverse_map

    def _conv(self, features: torch.Tensor, kernel_map: KernelMap, weight: torch.Tensor) -> torch.Tensor:
        manager, key, generator, unique_map, inverse_map = kernel_map.data
        engine = self._engine

        if unique_map is not None:
            features = features[unique_map]
        output = engine.MinkowskiConvolutionFunction.apply(
            features,
            weight,
            generator,
            self._default_mode,
            key,
            key,
            manager,
        )
        if inverse_map is not None:
            output = output[inverse_map]
        return output

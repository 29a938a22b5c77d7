"""The ``torchsparse`` backend: TorchSparse 2.x coordinate hashing and gather–scatter kernels.

TorchSparse is not on PyPI; users build it from its upstream source (mit-han-lab/torchsparse).
The adapter uses only the compiled extension module ``torchsparse.backend`` and builds the
kernel map itself from that module's own primitives, which avoids two upstream traps:

* ``torchsparse.nn.functional.conv3d`` in 2.0.0 and 2.1.0 accepts ``dilation`` but never uses
  it when it builds the kernel map, so dilated layers silently compute an undilated
  convolution. Here the kernel offsets are multiplied by the dilation before hashing.
* ``import torchsparse`` in 2.1.0 calls ``torch.cuda.get_device_capability()``, which raises on
  a CPU-only torch. The adapter loads the extension file directly and never runs the package's
  ``__init__``.

Kernel map (CPU): ``hash_cpu`` hashes the (axis 0, axis 1, axis 2, batch) rows.
``kernel_hash_cpu`` hashes every row shifted by each dilated offset, adding the offset to the
first three columns and keeping the fourth. ``hash_query_cpu`` then finds the row behind each
shifted hash. The result is torchsparse's own neighbour-map format: int32 (input row, output
row) pairs grouped by offset, plus the pair count of each offset. The convolution runs
torchsparse's CPU gather–matmul–scatter forward and backward kernels on that map.

Conventions of torchsparse 2.0.0 and 2.1.0 that the adapter follows:

* Weights are (kernel volume, C_in, C_out). For an odd kernel size the offsets run with axis 0
  fastest (``get_kernel_offsets`` in ``torchsparse.nn.utils``), the reverse of the canonical
  C order and the same order as MinkowskiEngine.
* The CPU kernels read and write float32 only; other dtypes raise ``TypeError`` in the base
  class instead of a library error.
* A 1x1x1 kernel is a plain matrix product, as in torchsparse's own ``conv3d``; its CPU kernel
  reads past the end of the pair counts for a kernel volume of 1.
* Output rows are the input rows in input order, because the input rows are the queries.

The CPU gather and scatter kernels open an OpenMP parallel region for every row, split over
channels. With the encoder's one or two channels that costs far more than it saves: on 2 busy
CPU cores one convolution of 229,478 rows (30 % occupancy, dilation 2) took 28 s with 2 threads
and 1.1 s with 1. The adapter therefore runs torchsparse's kernels on one OpenMP thread (the
extension uses torch's OpenMP runtime, so ``torch.set_num_threads`` applies) and restores the
setting afterwards.
"""

from __future__ import annotations

import importlib.machinery
import importlib.metadata
import importlib.util
import re
from contextlib import contextmanager
from functools import lru_cache
from pathlib import Path

import torch

from .base import KernelMap, SparseConvBackend

SUPPORTED_MAJOR = 2
VERIFIED_VERSIONS = ("2.0.0", "2.1.0")

_HASH_FUNCTIONS = ("hash_cpu", "kernel_hash_cpu", "hash_query_cpu")
# Names of the CPU gather–scatter convolution kernels: 2.1 renamed the 2.0 functions.
_CONV_FUNCTIONS = (
    ("conv_forward_gather_scatter_cpu", "conv_backward_gather_scatter_cpu"),
    ("convolution_forward_cpu", "convolution_backward_cpu"),
)


def _package_dir() -> Path:
    spec = importlib.util.find_spec("torchsparse")
    if spec is None or not spec.submodule_search_locations:
        raise ImportError("Python package 'torchsparse' not found")
    return Path(next(iter(spec.submodule_search_locations)))


def installed_version() -> str:
    """Return the version of the torchsparse package that would be loaded.

    ``version.py`` of that package comes first, so that a source checkout on ``sys.path`` in
    front of an installed copy reports its own version. The distribution metadata is the
    fallback.
    """
    version_file = _package_dir() / "version.py"
    if version_file.is_file():
        match = re.search(r"__version__\s*=\s*['\"]([^'\"]+)['\"]", version_file.read_text())
        if match is not None:
            return match.group(1)
    return importlib.metadata.version("torchsparse")


@lru_cache(maxsize=1)
def load_extension():
    """Load torchsparse's compiled extension ``torchsparse.backend`` without its package.

    Raises ``ImportError`` when the package has no extension built for this Python.
    """
    directory = _package_dir()
    candidates = [directory / f"backend{suffix}" for suffix in importlib.machinery.EXTENSION_SUFFIXES]
    path = next((candidate for candidate in candidates if candidate.is_file()), None)
    if path is None:
        raise ImportError(
            f"torchsparse at {directory} has no compiled extension {candidates[0].name}; "
            f"build torchsparse from its source for this Python and torch"
        )

    # CPython caches extension modules by file and name, so a later `import torchsparse` in
    # the same process reuses this module instead of initialising the library twice.
    spec = importlib.util.spec_from_file_location("torchsparse.backend", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _conv_functions(extension):
    for forward, backward in _CONV_FUNCTIONS:
        if hasattr(extension, forward) and hasattr(extension, backward):
            return getattr(extension, forward), getattr(extension, backward)
    return None


def probe() -> str:
    """Return "ok" when torchsparse's CPU kernels can be used here, otherwise why not."""
    version = installed_version()
    major = re.match(r"\d+", version)
    if major is None or int(major.group()) != SUPPORTED_MAJOR:
        return (
            f"unsupported version: torchsparse {version} found, {SUPPORTED_MAJOR}.x needed "
            f"(verified: {', '.join(VERIFIED_VERSIONS)})"
        )

    try:
        extension = load_extension()
    except (ImportError, OSError) as error:
        if "cuda" in str(error).lower() and torch.version.cuda is None:
            return (
                f"import failed: this torchsparse {version} extension was built with CUDA and "
                f"torch {torch.__version__} has no CUDA; rebuild torchsparse for this torch "
                f"({type(error).__name__}: {error})"
            )
        return f"import failed: torchsparse {version} extension: {type(error).__name__}: {error}"

    missing = [name for name in _HASH_FUNCTIONS if not hasattr(extension, name)]
    if _conv_functions(extension) is None:
        missing.append(" or ".join(pair[0] for pair in _CONV_FUNCTIONS))
    if missing:
        return f"unsupported version: torchsparse {version} extension lacks the CPU kernels {', '.join(missing)}"
    return "ok"


def kernel_offsets(kernel_size: int, dilation: int) -> torch.Tensor:
    """Return the (k**3, 3) int32 offsets ``dilation * o`` in torchsparse's order (axis 0 fastest)."""
    radius = kernel_size // 2
    steps = torch.arange(-radius, radius + 1, dtype=torch.int32) * dilation
    axis2, axis1, axis0 = torch.meshgrid(steps, steps, steps, indexing="ij")
    return torch.stack([axis0.reshape(-1), axis1.reshape(-1), axis2.reshape(-1)], dim=1).contiguous()


def canonical_to_torchsparse(weight: torch.Tensor) -> torch.Tensor:
    """Reorder a (C_out, C_in, k, k, k) weight to torchsparse's (k**3, C_in, C_out)."""
    c_out, c_in, k = weight.shape[0], weight.shape[1], weight.shape[2]
    return weight.permute(4, 3, 2, 1, 0).reshape(k * k * k, c_in, c_out).contiguous()


def torchsparse_to_canonical(kernel: torch.Tensor) -> torch.Tensor:
    """Invert :func:`canonical_to_torchsparse`."""
    volume, c_in, c_out = kernel.shape
    k = round(volume ** (1 / 3))
    if k * k * k != volume:
        raise ValueError(f"kernel volume {volume} of a (K, C_in, C_out) weight is not a cube")
    return kernel.reshape(k, k, k, c_in, c_out).permute(4, 3, 2, 1, 0)


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


class _GatherScatterConv(torch.autograd.Function):
    """torchsparse's CPU gather–matmul–scatter convolution and its backward."""

    @staticmethod
    def forward(ctx, features, weight, neighbour_map, pair_counts, kernels):
        forward_kernel, _ = kernels
        ctx.save_for_backward(features, weight, neighbour_map, pair_counts)
        ctx.kernels = kernels
        output = features.new_zeros(features.shape[0], weight.shape[2])
        with _one_cpu_thread():
            forward_kernel(features, output, weight, neighbour_map, pair_counts, False)
        return output

    @staticmethod
    def backward(ctx, grad_output):
        features, weight, neighbour_map, pair_counts = ctx.saved_tensors
        _, backward_kernel = ctx.kernels
        grad_features = torch.zeros_like(features)
        grad_weight = torch.zeros_like(weight)
        with _one_cpu_thread():
            backward_kernel(
                features, grad_features, grad_output.contiguous(), weight, grad_weight,
                neighbour_map, pair_counts, False,
            )
        return grad_features, grad_weight, None, None, None


class TorchSparseBackend(SparseConvBackend):
    """Submanifold convolution with torchsparse 2.x CPU hashing and gather–scatter kernels."""

    name = "torchsparse"
    dtypes = (torch.float32,)
    # TODO: torchsparse's CUDA hashing and gather–scatter kernels differ in name and arguments
    # between 2.0 and 2.1 and are not wired up; CUDA tensors raise a ValueError.
    device_types = ("cpu",)

    def __init__(self) -> None:
        super().__init__()
        self._extension = load_extension()
        self._kernels = _conv_functions(self._extension)

    @property
    def version(self) -> str:
        return installed_version()

    def convert_weight(self, weight: torch.Tensor) -> torch.Tensor:
        return canonical_to_torchsparse(weight)

    def weight_from_library(self, converted: torch.Tensor) -> torch.Tensor:
        return torchsparse_to_canonical(converted)

    def _build(self, coords, spatial_shape, batch_size, kernel_size, dilation):
        self._check_unique(coords, spatial_shape)
        if kernel_size == 1:
            return None
        extension = self._extension
        rows = coords.shape[0]

        # torchsparse 2.x hashes (x, y, z, batch) rows and shifts the first three columns.
        points = coords[:, [1, 2, 3, 0]].contiguous()
        offsets = kernel_offsets(kernel_size, dilation)
        with _one_cpu_thread():
            references = extension.hash_cpu(points)
            queries = extension.kernel_hash_cpu(points, offsets)
            found = extension.hash_query_cpu(
                queries.reshape(-1), references, torch.arange(rows, dtype=torch.int64)
            )
        neighbours = found.reshape(offsets.shape[0], rows) - 1

        # Pairs in row-major order of (offset, output row): grouped by offset, as the
        # gather–scatter kernels expect.
        offset_index, out_rows = (neighbours >= 0).nonzero(as_tuple=True)
        in_rows = neighbours[offset_index, out_rows]
        self._check_hash_collisions(points, references, offsets, offset_index, in_rows, out_rows)

        pair_counts = torch.bincount(offset_index, minlength=offsets.shape[0]).to(torch.int32)
        neighbour_map = torch.stack([in_rows, out_rows], dim=1).to(torch.int32).contiguous()
        return neighbour_map, pair_counts

    @staticmethod
    def _check_hash_collisions(points, references, offsets, offset_index, in_rows, out_rows) -> None:
        # torchsparse keys its hash table by a 60-bit hash of each row and never compares the
        # rows themselves, and the key 0 marks an empty slot. A collision is very unlikely but
        # would silently drop or invent neighbours, so both cases are checked here.
        if (references == 0).any() or torch.unique(references).numel() != references.numel():
            raise RuntimeError(
                "torchsparse's coordinate hash collided for two input sites; this kernel map "
                "cannot be built with torchsparse"
            )
        shifted = points[out_rows, :3] + offsets[offset_index]
        if not torch.equal(shifted, points[in_rows, :3]) or not torch.equal(points[in_rows, 3], points[out_rows, 3]):
            raise RuntimeError(
                "torchsparse's coordinate hash matched a site that is not the requested "
                "neighbour; this kernel map cannot be built with torchsparse"
            )

    def _conv(self, features: torch.Tensor, kernel_map: KernelMap, weight: torch.Tensor) -> torch.Tensor:
        if kernel_map.data is None:
            return features @ weight[0]
        neighbour_map, pair_counts = kernel_map.data
        return _GatherScatterConv.apply(features, weight, neighbour_map, pair_counts, self._kernels)

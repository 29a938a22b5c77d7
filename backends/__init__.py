"""Backend-neutral submanifold sparse 3D convolution over several libraries.

Pick a backend by name with :func:`get` (or the ``SPARSE_BACKEND`` environment variable); see
which ones can run here with :func:`available`. Each backend builds a kernel map
(:meth:`~SparseConvBackend.build_kernel_map`) and convolves with it
(:meth:`~SparseConvBackend.conv`) as two separate steps, so their costs can be timed apart.
Conventions (coordinate columns, weight layout, offset order, row order) are documented in
:mod:`sparsecodec.backends.base`. Optional libraries are imported only when a backend is probed
or loaded.
"""

from .base import KernelMap, SparseConvBackend
from .functional import submanifold_conv3d
from .registry import (
    BACKENDS,
    ENV_VAR,
    PREFERENCE_ORDER,
    BackendUnavailableError,
    available,
    get,
    status,
)

__all__ = [
    "BACKENDS",
    "ENV_VAR",
    "PREFERENCE_ORDER",
    "BackendUnavailableError",
    "KernelMap",
    "SparseConvBackend",
    "available",
    "get",
    "status",
    "submanifold_conv3d",
]

"""Run native kernels on torch's own OpenMP threads.

After a parallel operation, torch's OpenMP threads keep spinning for a few milliseconds (the
OpenMP default wait policy). On a machine with few cores, threads of any other pool then wait
for a free core. On 2 cores, the second of two Python threads that ran right after a torch
operation started 3.3 ms late, so the two halves of the work ran one after the other. A
parallel region opened with ``GOMP_parallel`` of the runtime that torch uses puts the work on
those spinning threads instead, and they start at once.

The runtime is the one that torch's own library binds to (Linux only, torch built with the
OpenMP parallel backend): ``GOMP_parallel`` looked up through the handle of the mapped
``libtorch_cpu.so`` resolves in that library's dependencies, so another package's OpenMP
runtime (spconv's wheels bring their own libgomp) is never taken for torch's. Where
``libtorch_cpu.so`` is not mapped, exactly one OpenMP runtime must be. Anywhere else
:func:`parallel_region` is None and callers use Python threads. ``SPARSECODEC_OPENMP=0`` in the
environment turns this path off.

NOTE: only GNU libgomp (the one in torch's Linux wheels) has run here. LLVM's libomp and Intel's
libiomp5 also export GOMP entry points for GCC-compiled code, so they are accepted, untested.
"""

from __future__ import annotations

import ctypes
import functools
import os
import re
import sys
from typing import Callable

import torch

_RUNTIME_NAME = re.compile(r"^lib(g|i|)omp[0-9a-f.-]*\.so|^libiomp5")
_TORCH_LIBRARY_NAME = re.compile(r"^libtorch_cpu\.so")


def _mapped_libraries(pattern: re.Pattern) -> set[str]:
    """Return the paths of the shared libraries mapped into this process whose file name matches ``pattern``."""
    paths = set()
    with open("/proc/self/maps") as maps:
        for line in maps:
            fields = line.split(maxsplit=5)
            if len(fields) == 6:
                path = fields[5].strip()
                if pattern.match(os.path.basename(path)):
                    paths.add(path)
    return paths


def _mapped_runtimes() -> set[str]:
    """Return the paths of the OpenMP runtimes mapped into this process."""
    return _mapped_libraries(_RUNTIME_NAME)


def _torch_bound_function():
    """Return the ``GOMP_parallel`` that libtorch_cpu.so binds to, or None when it cannot be found."""
    try:
        libraries = _mapped_libraries(_TORCH_LIBRARY_NAME)
    except OSError:
        return None
    if len(libraries) != 1:
        return None
    try:
        # dlsym through this handle searches libtorch_cpu.so and then its dependencies, where
        # torch's own references to GOMP_parallel were resolved unless a runtime was preloaded
        # (LD_PRELOAD, or loaded globally before torch). Then the stack would run on a second
        # thread pool, with the same results.
        return ctypes.CDLL(libraries.pop()).GOMP_parallel
    except (OSError, AttributeError):
        return None


@functools.lru_cache(maxsize=1)
def _gomp_parallel() -> Callable | None:
    if not sys.platform.startswith("linux") or "parallel backend: OpenMP" not in torch.__config__.parallel_info():
        return None
    function = _torch_bound_function()
    if function is None:
        try:
            runtimes = _mapped_runtimes()
        except OSError:
            return None
        if len(runtimes) != 1:
            # With two runtimes loaded and no libtorch_cpu.so to ask, there is no telling which
            # one torch's threads belong to, so Python threads are used instead.
            return None
        try:
            # The library is mapped already, so this returns the handle that torch uses.
            function = ctypes.CDLL(runtimes.pop()).GOMP_parallel
        except (OSError, AttributeError):
            return None
    function.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_uint, ctypes.c_uint]
    function.restype = None
    return function


def parallel_region() -> Callable[[int, int, int], None] | None:
    """Return ``run(entry_address, data_address, threads)``, or None when not available.

    ``run`` calls the C function ``void entry(void *data)`` on ``threads`` threads of torch's
    OpenMP pool, the calling thread included, and returns when all have returned. The GIL is
    released meanwhile, so ``entry`` must not touch Python objects.
    """
    if os.environ.get("SPARSECODEC_OPENMP", "1").strip() == "0":
        return None
    function = _gomp_parallel()
    if function is None:
        return None

    def run(entry_address: int, data_address: int, threads: int) -> None:
        function(entry_address, data_address, threads, 0)

    return run


def runtime_description() -> str:
    """Return how the native kernels run in parallel here, for benchmark records."""
    return "torch's OpenMP threads" if parallel_region() is not None else "Python threads"

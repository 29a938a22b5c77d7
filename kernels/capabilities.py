"""Switches for the optional acceleration paths of the native kernels, read at call time.

``SPARSECODEC_NUMBA=0`` in the environment turns the numba CPU kernels off, so the pure-torch
path runs everywhere; tests flip :data:`FORCE_TORCH_PATH` to compare both paths in one process.
"""

from __future__ import annotations

import importlib.util
import os

#: When True, the native backend uses only torch operations, whatever is installed.
FORCE_TORCH_PATH = False

_numba_found: bool | None = None


def numba_enabled() -> bool:
    """Return True when the numba CPU kernels may be used."""
    global _numba_found
    if FORCE_TORCH_PATH or os.environ.get("SPARSECODEC_NUMBA", "1").strip() == "0":
        return False
    if _numba_found is None:
        _numba_found = importlib.util.find_spec("numba") is not None
    return _numba_found

"""The table of known backends, their availability, and backend selection.

Nothing here imports an optional library at module import time: a library is imported only when
:func:`available` probes it or :func:`get` loads it. ``SPARSE_BACKEND`` is read on every
:func:`get` call without a name, so a test or a user may change it at run time.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
from dataclasses import dataclass

from .base import SparseConvBackend

ENV_VAR = "SPARSE_BACKEND"
OK = "ok"


@dataclass(frozen=True)
class BackendSpec:
    """One row of the backend table."""

    name: str
    #: Module under ``sparsecodec.backends`` holding the adapter class and its ``probe()``.
    module: str
    class_name: str
    #: Import name of the third-party library, or None for backends built on torch alone.
    library: str | None
    install_hint: str


BACKENDS: dict[str, BackendSpec] = {
    spec.name: spec
    for spec in (
        BackendSpec("dense", "dense", "DenseBackend", None, "part of sparsecodec (needs only torch)"),
        BackendSpec("native", "native", "NativeBackend", None, "part of sparsecodec"),
        BackendSpec(
            "spconv",
            "spconv_backend",
            "SpconvBackend",
            "spconv",
            "pip install spconv (CPU) or the spconv-cu12x wheel matching your CUDA torch",
        ),
        BackendSpec(
            "minkowski",
            "minkowski_backend",
            "MinkowskiBackend",
            "MinkowskiEngine",
            "bash scripts/install-minkowskiengine.sh (builds MinkowskiEngine 0.5.4 from its PyPI source archive)",
        ),
        BackendSpec(
            "torchsparse",
            "torchsparse_backend",
            "TorchSparseBackend",
            "torchsparse",
            "build torchsparse 2.0 or 2.1 from https://github.com/mit-han-lab/torchsparse (it is not on PyPI)",
        ),
    )
}

#: Order in which :func:`get` picks a backend when neither a name nor SPARSE_BACKEND is given.
#: ``native`` needs no extra library, so it is the default wherever this package is installed.
PREFERENCE_ORDER: tuple[str, ...] = ("native", "spconv", "minkowski", "torchsparse", "dense")

_instances: dict[str, SparseConvBackend] = {}


class BackendUnavailableError(ImportError):
    """A known backend was requested but cannot run here; the message says why and how to fix it."""


def _adapter_module(spec: BackendSpec):
    return importlib.import_module(f"{__package__}.{spec.module}")


def status(name: str) -> str:
    """Return "ok" when backend ``name`` can run here, otherwise the reason it cannot."""
    spec = _spec(name)
    if spec.library is not None and importlib.util.find_spec(spec.library) is None:
        return f"not installed: Python package {spec.library!r} not found; install with: {spec.install_hint}"
    try:
        return _adapter_module(spec).probe()
    except Exception as error:  # a broken install must be reported, not hidden
        return f"import failed: {type(error).__name__}: {error}"


def available() -> dict[str, str]:
    """Return every known backend name mapped to "ok" or the reason it cannot run here."""
    return {name: status(name) for name in BACKENDS}


def _spec(name: str) -> BackendSpec:
    if not isinstance(name, str):
        raise TypeError(f"backend name must be a str, got {type(name).__name__}")
    spec = BACKENDS.get(name.strip().lower())
    if spec is None:
        raise ValueError(f"unknown sparse-convolution backend {name!r}; valid names: {', '.join(BACKENDS)}")
    return spec


def get(name: str | SparseConvBackend | None = None) -> SparseConvBackend:
    """Return the backend named ``name``, else the one named by SPARSE_BACKEND, else the first
    available one in :data:`PREFERENCE_ORDER`.

    Raises ``ValueError`` for an unknown name and :class:`BackendUnavailableError` for a known
    backend that cannot run here.
    """
    if isinstance(name, SparseConvBackend):
        return name
    source = "argument"
    if name is None:
        name = os.environ.get(ENV_VAR, "").strip() or None
        source = f"environment variable {ENV_VAR}"
    if name is None:
        for candidate in PREFERENCE_ORDER:
            if status(candidate) == OK:
                return get(candidate)
        raise BackendUnavailableError(f"no sparse-convolution backend can run here: {available()}")

    try:
        spec = _spec(name)
    except ValueError as error:
        raise ValueError(f"{error} (from {source})") from None
    if spec.name in _instances:
        return _instances[spec.name]

    reason = status(spec.name)
    if reason != OK:
        raise BackendUnavailableError(f"sparse-convolution backend {spec.name!r} is unavailable: {reason}")
    instance = getattr(_adapter_module(spec), spec.class_name)()
    _instances[spec.name] = instance
    return instance

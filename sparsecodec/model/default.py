"""The default model shipped inside the package, used when no model file is given."""

from __future__ import annotations

from pathlib import Path

from ..backends import SparseConvBackend
from .bcaevs import BCAEVS
from .files import load_model

#: File name of the default weights under ``sparsecodec/model/weights/``.
DEFAULT_MODEL_FILE = "bcae-vs-default.pt"


class NoDefaultModelError(FileNotFoundError):
    """This installation ships no default model; a model file must be given explicitly."""


def default_model_path() -> Path:
    """Return where the default model file lives in the installed package (it may be missing)."""
    return Path(__file__).resolve().parent / "weights" / DEFAULT_MODEL_FILE


def load_default_model(backend: str | SparseConvBackend | None = None) -> tuple[BCAEVS, str, dict]:
    """Load the default model: (model in eval mode, name, metadata), as :func:`load_model` returns.

    NOTE: the shipped model marks 73 % of the signal voxels of simulated central Au+Au test
    wedges as signal, against 99 % for the BCAE-VS authors' checkpoint (docs/model-card.md).

    Raises:
        NoDefaultModelError: the package ships no default weights; the message says how to pass
            a model file instead.
    """
    path = default_model_path()
    if not path.is_file():
        raise NoDefaultModelError(
            f"no default model is shipped with this sparsecodec yet (expected {path}); pass a model "
            "file with --model PATH: a sparsecodec model file or the BCAE-VS authors' model_last.pth"
        )
    return load_model(path, backend=backend)

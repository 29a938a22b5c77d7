"""Save and load BCAE-VS models, and name a model by a hash of its weights."""

from __future__ import annotations

import hashlib
import io
from pathlib import Path

import torch

from ..atomic import write_atomic
from ..backends import SparseConvBackend
from .authors_checkpoint import convert_state_dict, is_authors_state_dict
from ..data.layout import WEDGE_SHAPE
from .bcaevs import BCAEVS

MODEL_FORMAT = "sparsecodec-bcaevs"
MODEL_FORMAT_VERSION = 1


def weights_hash(model: torch.nn.Module) -> str:
    """Return the sha256 (hex) of the model's parameters and buffers, in key order.

    Two models with the same hash compute the same function, whatever file they came from.
    """
    digest = hashlib.sha256()
    for key, tensor in sorted(model.state_dict().items()):
        digest.update(key.encode())
        digest.update(str(tuple(tensor.shape)).encode())
        digest.update(str(tensor.dtype).encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


def save_model(model: BCAEVS, path: str | Path, name: str, metadata: dict | None = None) -> None:
    """Write ``model`` to ``path`` atomically with its configuration, name and metadata."""
    path = Path(path)
    payload = {
        "format": MODEL_FORMAT,
        "version": MODEL_FORMAT_VERSION,
        "name": name,
        "config": dict(model.config),
        "metadata": dict(metadata or {}),
        "state_dict": {key: value.detach().cpu() for key, value in model.state_dict().items()},
    }
    buffer = io.BytesIO()
    torch.save(payload, buffer)
    write_atomic(path, buffer.getvalue())


def load_model(path: str | Path, backend: str | SparseConvBackend | None = None) -> tuple[BCAEVS, str, dict]:
    """Load a model file written by :func:`save_model` or the authors' published checkpoint.

    Returns (model in eval mode, model name, metadata). The authors' checkpoint gets the name
    ``bcae-vs-authors`` and the published decoder options (reflection padding, BatchNorm3d).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"model file not found: {path}")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises several types for a damaged pickle/zip
        raise ValueError(f"cannot read {path} as a model file: {error}") from error

    if is_authors_state_dict(payload):
        model = BCAEVS(backend=backend)
        _load_state(model, convert_state_dict(payload), path)
        return model.eval(), "bcae-vs-authors", {"source": "checkpoint published by the BCAE-VS authors"}

    if not isinstance(payload, dict) or payload.get("format") != MODEL_FORMAT:
        raise ValueError(f"{path} is neither a sparsecodec model file nor the BCAE-VS authors' checkpoint")
    version = payload.get("version")
    if version != MODEL_FORMAT_VERSION:
        raise ValueError(
            f"{path} is model file version {version}; this sparsecodec reads version {MODEL_FORMAT_VERSION}"
        )
    config = dict(payload["config"])
    model = BCAEVS(
        backend=backend,
        spatial_shape=tuple(config.get("spatial_shape", WEDGE_SHAPE)),
        padding_mode=config.get("padding_mode", "reflect"),
        batch_norm=bool(config.get("batch_norm", True)),
        alpha=float(config.get("alpha", 4.0)),
        eps=float(config.get("eps", 1e-6)),
    )
    _load_state(model, payload["state_dict"], path)
    return model.eval(), str(payload.get("name", path.stem)), dict(payload.get("metadata", {}))


def _load_state(model: BCAEVS, state: dict, path: Path) -> None:
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as error:
        raise ValueError(f"{path} does not match the BCAE-VS architecture: {error}") from error

"""Training checkpoints: everything a run needs to continue as if it had never stopped.

A checkpoint contains the model, both optimizers and learning-rate schedulers, the running
segmentation-loss coefficient, the global random states (Python, numpy, torch and CUDA), the
finished epoch and global step, the per-epoch log so far and the training time spent. Batches
and gate thresholds are seeded from (seed, rank, step), so with deterministic algorithms on (the
default) restoring these is enough for a resumed run to reproduce the weights of an
uninterrupted one.
"""

from __future__ import annotations

import io
import random
from pathlib import Path

import numpy as np
import torch

from ..atomic import write_atomic

CHECKPOINT_FORMAT = "sparsecodec-train-checkpoint"
CHECKPOINT_VERSION = 1
#: File name of the latest checkpoint inside a run folder.
CHECKPOINT_FILE = "checkpoint.pt"


def random_states() -> dict:
    """Return the global random states as values ``torch.load(weights_only=True)`` accepts."""
    numpy_state = np.random.get_state()
    states = {
        "python": random.getstate(),
        "numpy": {
            "name": numpy_state[0],
            "key": torch.from_numpy(numpy_state[1].astype(np.int64)),
            "pos": int(numpy_state[2]),
            "has_gauss": int(numpy_state[3]),
            "cached_gaussian": float(numpy_state[4]),
        },
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        states["cuda"] = torch.cuda.get_rng_state_all()
    return states


def restore_random_states(states: dict) -> None:
    """Restore the states :func:`random_states` returned."""
    python_state = states["python"]
    random.setstate((python_state[0], tuple(python_state[1]), python_state[2]))
    numpy_state = states["numpy"]
    np.random.set_state((numpy_state["name"], numpy_state["key"].numpy().astype(np.uint32), numpy_state["pos"],
                         numpy_state["has_gauss"], numpy_state["cached_gaussian"]))
    torch.set_rng_state(states["torch"])
    if "cuda" in states and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["cuda"])


def save_checkpoint(path: str | Path, state: dict) -> None:
    """Write ``state`` (see :func:`load_checkpoint` for the keys) to ``path`` atomically."""
    payload = {"format": CHECKPOINT_FORMAT, "version": CHECKPOINT_VERSION, **state}
    buffer = io.BytesIO()
    torch.save(payload, buffer)
    write_atomic(path, buffer.getvalue())


def load_checkpoint(path: str | Path) -> dict:
    """Read a checkpoint written by :func:`save_checkpoint` onto the CPU.

    Keys: ``config`` (the run's settings), ``epoch`` (epochs finished), ``step`` (global steps
    finished), ``model``, ``optimizers`` and ``schedulers`` (state dicts by name),
    ``reconstruction_loss``, ``random_states``, ``history`` (CSV rows) and ``seconds``
    (training time so far). Raises ValueError for a file that is not such a checkpoint.
    """
    path = Path(path)
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises several types for a damaged pickle/zip
        raise ValueError(f"cannot read {path} as a training checkpoint: {error}") from error
    if not isinstance(payload, dict) or payload.get("format") != CHECKPOINT_FORMAT:
        raise ValueError(f"{path} is not a sparsecodec training checkpoint")
    if payload.get("version") != CHECKPOINT_VERSION:
        raise ValueError(f"{path} is checkpoint version {payload.get('version')}; "
                         f"this sparsecodec reads version {CHECKPOINT_VERSION}")
    missing = [key for key in ("config", "epoch", "step", "model", "optimizers", "schedulers",
                               "reconstruction_loss", "random_states", "history", "seconds")
               if key not in payload]
    if missing:
        raise ValueError(f"{path} lacks checkpoint entries: {', '.join(missing)}")
    return payload

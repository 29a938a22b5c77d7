"""Map the BCAE-VS checkpoint published by the model's authors into this project's layout.

The authors' code (BNL-DAQ-LDRD/NeuralCompression_v3, BSD-3-Clause) orders a wedge's spatial
axes as (azimuth, time, layer) and runs the encoder on MinkowskiEngine. Their checkpoint is a
plain ``state_dict``:

* ``encoder.model.{0,2,4,6}.kernel``: (27, C_in, C_out) MinkowskiEngine kernels. MinkowskiEngine
  enumerates the offsets of a 3x3x3 kernel with the FIRST spatial axis changing fastest
  (``kernel_index % 3`` is the offset along axis 0, see ``coordinate_at`` in its
  ``src/kernel_region.hpp``): ``k = (o_azimuth + 1) + 3 (o_time + 1) + 9 (o_layer + 1)``, and
  the kernel multiplies the input at ``coordinate + dilation * offset``. The ``minkowski``
  backend uses the same convention and converts with the same functions.
* ``encoder.model.8.kernel``: (C_in, C_out) of the 1x1x1 convolution.
* ``decoder.{reg,clf}.model.{0..7}.{weight,bias}``: ``nn.Conv3d`` weights over (azimuth, time,
  layer), and ``...norm.*`` their BatchNorm3d; ``decoder.{reg,clf}.model.8.*`` the final 1x1x1
  convolution.

This project's canonical layout is ``nn.Conv3d``'s (C_out, C_in, k_layer, k_azimuth, k_time)
over (layer, azimuth, time) with offsets in C order.
"""

from __future__ import annotations

import re
from pathlib import Path

import torch

from ..backends.minkowski_backend import canonical_to_minkowski, minkowski_to_canonical

ENCODER_KEYS = ("encoder.model.0.kernel", "encoder.model.2.kernel", "encoder.model.4.kernel",
                "encoder.model.6.kernel", "encoder.model.8.kernel")
DECODER_NAMES = {"reg": "regression", "clf": "segmentation"}
_DECODER_KEY = re.compile(r"^decoder\.(reg|clf)\.model\.(\d)\.(weight|bias|norm\.\w+)$")

#: Position of the authors' (azimuth, time, layer) axes in this project's (layer, azimuth, time).
AUTHORS_AXES = ("azimuth", "time", "layer")
PROJECT_AXES = ("layer", "azimuth", "time")


def minkowski_kernel_to_canonical(kernel: torch.Tensor) -> torch.Tensor:
    """Convert a (27, C_in, C_out) kernel over (azimuth, time, layer) to (C_out, C_in, 3, 3, 3)
    over (layer, azimuth, time)."""
    volume = kernel.shape[0]
    if volume != 27:
        raise ValueError(f"expected a 3x3x3 MinkowskiEngine kernel with 27 offsets, got {volume}")
    return dense_weight_to_project_axes(minkowski_to_canonical(kernel))


def canonical_to_minkowski_kernel(weight: torch.Tensor) -> torch.Tensor:
    """Inverse of :func:`minkowski_kernel_to_canonical`."""
    return canonical_to_minkowski(weight.permute(0, 1, 3, 4, 2))


def dense_weight_to_project_axes(weight: torch.Tensor) -> torch.Tensor:
    """Reorder an ``nn.Conv3d`` weight over (azimuth, time, layer) to (layer, azimuth, time)."""
    return weight.permute(0, 1, 4, 2, 3).contiguous()


def convert_state_dict(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Return the authors' ``state_dict`` renamed and reordered for :class:`~sparsecodec.BCAEVS`."""
    if not isinstance(state, dict):
        raise TypeError(f"an authors' checkpoint must hold a state_dict (dict), got {type(state).__name__}")
    missing = [key for key in ENCODER_KEYS if key not in state]
    if missing:
        raise ValueError(f"not a BCAE-VS checkpoint of the authors' layout: missing {', '.join(missing)}")

    converted: dict[str, torch.Tensor] = {}
    for index, key in enumerate(ENCODER_KEYS[:4]):
        converted[f"encoder.convs.{index}.weight"] = minkowski_kernel_to_canonical(state[key])
    pointwise = state[ENCODER_KEYS[4]]
    if pointwise.shape != (2, 2):
        raise ValueError(f"{ENCODER_KEYS[4]} must have shape (2, 2), got {tuple(pointwise.shape)}")
    converted["encoder.convs.4.weight"] = pointwise.t().reshape(2, 2, 1, 1, 1).contiguous()

    unexpected = []
    for key, tensor in state.items():
        if key in ENCODER_KEYS:
            continue
        match = _DECODER_KEY.match(key)
        if match is None:
            unexpected.append(key)
            continue
        head, block, name = match.groups()
        prefix = DECODER_NAMES[head]
        if block == "8":
            target = f"{prefix}.head.{name}"
        elif name in ("weight", "bias"):
            target = f"{prefix}.blocks.{block}.conv.{name}"
        else:
            target = f"{prefix}.blocks.{block}.{name}"
        if name == "weight" and tensor.dim() == 5:
            tensor = dense_weight_to_project_axes(tensor)
        converted[target] = tensor
    if unexpected:
        raise ValueError(f"unexpected keys in the authors' checkpoint: {', '.join(unexpected[:5])}")
    return converted


def is_authors_state_dict(state) -> bool:
    """Return True when ``state`` has the key layout of the authors' published checkpoint."""
    return isinstance(state, dict) and all(key in state for key in ENCODER_KEYS)


def read_authors_checkpoint(path: str | Path) -> dict[str, torch.Tensor]:
    """Read the authors' ``model_last.pth`` (a plain state_dict) and return it converted."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises several types for a damaged pickle/zip
        raise ValueError(f"cannot read {path} as a PyTorch checkpoint: {error}") from error
    return convert_state_dict(state)

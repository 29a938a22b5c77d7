"""The BCAE-VS sparse encoder, written once against :mod:`sparsecodec.backends`."""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import torch
from torch import nn

from .. import backends
from ..backends import SparseConvBackend
from ..data.layout import WEDGE_SHAPE
from .layers import SubmanifoldConv3d

#: (in_channels, out_channels, kernel_size, dilation) of the five submanifold convolutions.
ENCODER_LAYERS = ((1, 2, 3, 1), (2, 2, 3, 2), (2, 2, 3, 4), (2, 2, 3, 2), (2, 2, 1, 1))


def _has_nan(values: torch.Tensor) -> bool:
    # numpy returns in a few microseconds on a small CPU array, where torch's reduction takes
    # about 10. This check runs on every encoder call.
    if values.device.type == "cpu" and values.dtype in (torch.float32, torch.float64) and not values.requires_grad:
        return bool(np.isnan(values.numpy()).any())
    return bool(torch.isnan(values).any())


class EncoderOutput(NamedTuple):
    """Per-voxel encoder output, one entry per input row in input order.

    ``probability`` is the importance score p in (0, 1); ``value`` is the code v in (0, 1) that
    the decoders read for a kept voxel.
    """

    probability: torch.Tensor
    value: torch.Tensor


class BCAEVSEncoder(nn.Module):
    """BCAE-VS encoder: five submanifold convolutions scoring every non-zero voxel.

    conv(1->2, k3, d1) ReLU conv(2->2, k3, d2) ReLU conv(2->2, k3, d4) ReLU conv(2->2, k3, d2)
    ReLU conv(2->2, k1) sigmoid; no bias; 382 parameters. Output channel 0 is p, channel 1 is v.

    Args:
        backend: backend name or object; None means ``SPARSE_BACKEND`` or the preferred
            installed backend, resolved at every forward call.
        spatial_shape: (layer, azimuth, time) size of one wedge.
    """

    def __init__(self, backend: str | SparseConvBackend | None = None, spatial_shape=WEDGE_SHAPE) -> None:
        super().__init__()
        self.backend = backend
        self.spatial_shape = tuple(spatial_shape)
        self.convs = nn.ModuleList(
            SubmanifoldConv3d(c_in, c_out, kernel_size, dilation, bias=False)
            for c_in, c_out, kernel_size, dilation in ENCODER_LAYERS
        )

    def extra_repr(self) -> str:
        name = self.backend.name if isinstance(self.backend, SparseConvBackend) else self.backend
        return f"backend={name!r}, spatial_shape={self.spatial_shape}"

    def forward(self, coords: torch.Tensor, log_adc: torch.Tensor, batch_size: int | None = None,
                backend: str | SparseConvBackend | None = None, spatial_shape=None) -> EncoderOutput:
        """Score every voxel.

        Args:
            coords: int (N, 4) = (batch, layer, azimuth, time) of the non-zero voxels.
            log_adc: (N,) or (N, 1) values log2(ADC + 1).
            batch_size: number of wedges; None means max batch index + 1.
            backend: overrides the backend chosen at construction for this call.
            spatial_shape: overrides the wedge shape for this call, e.g. for a crop of a wedge.
        """
        chosen = backends.get(backend if backend is not None else self.backend)
        weight = self.convs[0].weight
        if not isinstance(log_adc, torch.Tensor):
            raise TypeError(f"log_adc must be a torch.Tensor, got {type(log_adc).__name__}")
        if log_adc.dim() == 1:
            log_adc = log_adc[:, None]
        if log_adc.dim() != 2 or log_adc.shape[1] != 1:
            raise ValueError(f"log_adc must have shape (N,) or (N, 1), got {tuple(log_adc.shape)}")
        if log_adc.dtype.is_floating_point and _has_nan(log_adc):
            raise ValueError("log_adc contains NaN")
        features = log_adc.to(weight.dtype)

        # One call for the whole stack: the backend builds one kernel map per (kernel size,
        # dilation), so layers 2 and 4 share the dilation-2 map, and may run the layers back to
        # back (native fuses them). The result is the same as calling each SubmanifoldConv3d.
        convs = list(self.convs)
        last = len(convs) - 1
        hidden = chosen.submanifold_stack(
            coords,
            tuple(spatial_shape or self.spatial_shape),
            features,
            [conv.weight for conv in convs],
            [(conv.kernel_size, conv.dilation) for conv in convs],
            ["relu" if index < last else "sigmoid" for index in range(len(convs))],
            batch_size=batch_size,
            biases=[conv.bias for conv in convs],
        )
        return EncoderOutput(hidden[:, 0], hidden[:, 1])

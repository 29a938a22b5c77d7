"""The dense BCAE-VS decoders."""

from __future__ import annotations

import torch
from torch import nn

#: Output channels of the eight 3x3x3 blocks before the final 1x1x1 convolution.
DECODER_CHANNELS = (16, 16, 16, 8, 8, 8, 4, 2)
PADDING_MODES = ("reflect", "zeros", "replicate", "circular")


class DecoderBlock(nn.Module):
    """Padding 1, 3x3x3 convolution, optional BatchNorm3d, LeakyReLU(0.1)."""

    def __init__(self, in_channels: int, out_channels: int, padding_mode: str, batch_norm: bool) -> None:
        super().__init__()
        self.conv = nn.Conv3d(in_channels, out_channels, 3, padding=1, padding_mode=padding_mode)
        self.norm = nn.BatchNorm3d(out_channels) if batch_norm else nn.Identity()
        self.activation = nn.LeakyReLU(0.1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.activation(self.norm(self.conv(x)))


class BCAEVSDecoder(nn.Module):
    """One dense decoder: eight :class:`DecoderBlock` then a 1x1x1 convolution to one channel.

    Input and output are (B, 1, layer, azimuth, time). The regression head has no output
    activation; the segmentation head ends in a sigmoid (``output_activation="sigmoid"``).

    Args:
        padding_mode: ``torch.nn.Conv3d`` padding mode; the published BCAE-VS decoders reflect.
        batch_norm: insert BatchNorm3d after each block's convolution, as the published decoders do.
        output_activation: None or "sigmoid".
    """

    def __init__(self, padding_mode: str = "reflect", batch_norm: bool = True,
                 output_activation: str | None = None) -> None:
        super().__init__()
        if padding_mode not in PADDING_MODES:
            raise ValueError(f"padding_mode must be one of {', '.join(PADDING_MODES)}, got {padding_mode!r}")
        if output_activation not in (None, "sigmoid"):
            raise ValueError(f"output_activation must be None or 'sigmoid', got {output_activation!r}")
        channels = (1,) + DECODER_CHANNELS
        self.blocks = nn.Sequential(
            *(DecoderBlock(c_in, c_out, padding_mode, batch_norm) for c_in, c_out in zip(channels, channels[1:]))
        )
        self.head = nn.Conv3d(DECODER_CHANNELS[-1], 1, 1)
        self.output_activation = output_activation

    def extra_repr(self) -> str:
        return f"output_activation={self.output_activation!r}"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 5 or x.shape[1] != 1:
            raise ValueError(f"decoder input must have shape (B, 1, layer, azimuth, time), got {tuple(x.shape)}")
        out = self.head(self.blocks(x))
        return torch.sigmoid(out) if self.output_activation == "sigmoid" else out

"""Pure-torch submanifold convolution over a neighbour table (gather, then one matmul).

Runs on any device and dtype torch supports and is differentiable through autograd, so it is the
path for training, for CUDA and for half precision.
"""

from __future__ import annotations

import torch


def gather_conv(features: torch.Tensor, neighbors: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """Convolve (N, C_in) ``features`` over an (N, K) ``neighbors`` table.

    ``neighbors[i, k]`` is the row of the k-th neighbour of row i, or N for a missing one.
    ``weight`` is offset-major (K, C_in, C_out). Returns (N, C_out).
    """
    count, in_channels = features.shape
    volume, _, out_channels = weight.shape
    padded = torch.cat([features, features.new_zeros((1, in_channels))])
    columns = padded[neighbors].reshape(count, volume * in_channels)
    return columns @ weight.reshape(volume * in_channels, out_channels)

"""BCAE-VS: the sparse encoder, the key-point gate and the two dense decoders."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import NamedTuple

import torch
from torch import nn

from ..backends import SparseConvBackend
from .decoder import BCAEVSDecoder
from .encoder import WEDGE_SHAPE, BCAEVSEncoder, EncoderOutput
from .gate import GateConfig, select_key_points, soft_mask

#: log2(64): the zero-suppression threshold of 64 ADC in log-ADC units. Reconstructed values
#: below it are set to zero, as the detector would never have recorded them.
LOG_ADC_THRESHOLD = math.log2(64)

#: The segmentation decoder's output above which a voxel counts as signal.
SEGMENTATION_THRESHOLD = 0.5


class KeyPoints(NamedTuple):
    """The voxels a gate kept: what a compressed file stores.

    ``coords`` int32 (K, 4) = (batch, layer, azimuth, time); ``values`` (K,) the encoder's v;
    ``keep`` bool (N,) over the input rows; ``probability`` (N,) p of every input row.
    """

    coords: torch.Tensor
    values: torch.Tensor
    keep: torch.Tensor
    probability: torch.Tensor


class Decoded(NamedTuple):
    """Decoder outputs, each (B, layer, azimuth, time).

    ``regression`` is the log-ADC estimate, ``segmentation`` the signal probability, and
    ``reconstruction`` = regression x (segmentation > 0.5) with values below log2(64) set to 0.
    """

    regression: torch.Tensor
    segmentation: torch.Tensor
    reconstruction: torch.Tensor


class TrainingOutput(NamedTuple):
    """Soft-gated forward pass: encoder output, the soft mask, and the decoders' outputs."""

    encoded: EncoderOutput
    mask: torch.Tensor
    regression: torch.Tensor
    segmentation: torch.Tensor


def reconstruct(regression: torch.Tensor, segmentation: torch.Tensor) -> torch.Tensor:
    """Combine the two heads into log ADC: regression where segmentation > 0.5, zero below log2(64)."""
    combined = regression * (segmentation > SEGMENTATION_THRESHOLD)
    return torch.where(combined < LOG_ADC_THRESHOLD, torch.zeros_like(combined), combined)


class BCAEVS(nn.Module):
    """The whole model; spatial axes are (layer, azimuth, time) throughout.

    Args:
        backend: sparse-convolution backend of the encoder (name, object or None for
            ``SPARSE_BACKEND`` / the preferred installed one).
        spatial_shape: (layer, azimuth, time) size of one wedge.
        padding_mode, batch_norm: decoder options; the published BCAE-VS decoders use
            reflection padding and BatchNorm3d.
        alpha, eps: slope and logit clamp of the soft training gate.
    """

    def __init__(self, backend: str | SparseConvBackend | None = None, spatial_shape=WEDGE_SHAPE,
                 padding_mode: str = "reflect", batch_norm: bool = True, alpha: float = 4.0,
                 eps: float = 1e-6) -> None:
        super().__init__()
        self.spatial_shape = tuple(spatial_shape)
        self.alpha = alpha
        self.eps = eps
        self.encoder = BCAEVSEncoder(backend, self.spatial_shape)
        self.regression = BCAEVSDecoder(padding_mode, batch_norm, output_activation=None)
        self.segmentation = BCAEVSDecoder(padding_mode, batch_norm, output_activation="sigmoid")
        self.config = {"padding_mode": padding_mode, "batch_norm": batch_norm, "alpha": alpha, "eps": eps,
                       "spatial_shape": list(self.spatial_shape)}

    @classmethod
    def from_authors_checkpoint(cls, path, backend: str | SparseConvBackend | None = None) -> "BCAEVS":
        """Load the checkpoint published by the BCAE-VS authors (``model_last.pth``) in eval mode.

        The encoder kernels are reordered from MinkowskiEngine's offset order and the
        authors' (azimuth, time, layer) axes to (layer, azimuth, time); see
        :mod:`sparsecodec.model.authors_checkpoint`.
        """
        from .authors_checkpoint import read_authors_checkpoint

        model = cls(backend=backend)
        model.load_state_dict(read_authors_checkpoint(path), strict=True)
        return model.eval()

    @property
    def wedge_volume(self) -> int:
        return self.spatial_shape[0] * self.spatial_shape[1] * self.spatial_shape[2]

    def scatter(self, coords: torch.Tensor, values: torch.Tensor, batch_size: int,
                spatial_shape=None) -> torch.Tensor:
        """Place (K,) ``values`` at (K, 4) ``coords`` in a zero (B, 1, layer, azimuth, time) tensor."""
        shape = tuple(spatial_shape or self.spatial_shape)
        dense = values.new_zeros((batch_size, 1) + shape)
        if coords.shape[0]:
            c = coords.long()
            dense = dense.index_put((c[:, 0], torch.zeros_like(c[:, 0]), c[:, 1], c[:, 2], c[:, 3]), values)
        return dense

    def encode(self, coords: torch.Tensor, log_adc: torch.Tensor, gate: GateConfig,
               batch_size: int | None = None, first_wedge: int = 0) -> KeyPoints:
        """Run the encoder and the hard gate; return the key points to store."""
        if not isinstance(gate, GateConfig):
            raise TypeError(f"gate must be a GateConfig, got {type(gate).__name__}")
        encoded = self.encoder(coords, log_adc, batch_size)
        keep, kept_coords, kept_values = select_key_points(encoded.probability, encoded.value, coords, gate,
                                                           self.wedge_volume, batch_size, first_wedge)
        return KeyPoints(kept_coords.to(torch.int32), kept_values, keep, encoded.probability)

    def decode(self, coords: torch.Tensor, values: torch.Tensor, batch_size: int,
               spatial_shape=None) -> Decoded:
        """Rebuild wedges from key points: (K, 4) coords and (K,) values (any float dtype)."""
        decoder_dtype = self.regression.head.weight.dtype
        dense = self.scatter(coords, values.to(decoder_dtype), batch_size, spatial_shape)
        regression = self.regression(dense)[:, 0]
        segmentation = self.segmentation(dense)[:, 0]
        return Decoded(regression, segmentation, reconstruct(regression, segmentation))

    def forward(self, coords: torch.Tensor, log_adc: torch.Tensor, batch_size: int | None = None,
                generator: torch.Generator | None = None, spatial_shape=None,
                mask_transform: Callable[[torch.Tensor], torch.Tensor] | None = None) -> TrainingOutput:
        """Soft-gated pass for training: the decoders see v x m scattered into the wedge.

        ``spatial_shape`` overrides the decoders' grid, for training on crops of a wedge; the
        encoder's kernel maps are built on that grid too. ``mask_transform``, when given, maps
        the soft mask m to the mask that multiplies v and is returned (the straight-through and
        hard gates of :mod:`sparsecodec.train.gates`).
        """
        if batch_size is None:
            batch_size = int(coords[:, 0].max()) + 1 if coords.shape[0] else 0
        shape = tuple(spatial_shape or self.spatial_shape)
        encoded = self.encoder(coords, log_adc, batch_size, spatial_shape=shape)
        mask = soft_mask(encoded.probability, self.alpha, self.eps, generator)
        if mask_transform is not None:
            mask = mask_transform(mask)
        dense = self.scatter(coords, encoded.value * mask, batch_size, shape)
        return TrainingOutput(encoded, mask, self.regression(dense)[:, 0], self.segmentation(dense)[:, 0])

"""The BCAE-VS model: sparse encoder, gate modes, dense decoders, checkpoints and model files."""

from .bcaevs import BCAEVS, LOG_ADC_THRESHOLD, Decoded, KeyPoints, TrainingOutput, reconstruct
from .decoder import BCAEVSDecoder
from .encoder import ENCODER_LAYERS, WEDGE_SHAPE, BCAEVSEncoder, EncoderOutput
from .files import load_model, save_model, weights_hash
from .gate import GATE_MODES, GateConfig, hard_gate, paper_compression_ratio, select_key_points, soft_mask
from .layers import SubmanifoldConv3d

__all__ = [
    "BCAEVS",
    "BCAEVSDecoder",
    "BCAEVSEncoder",
    "Decoded",
    "ENCODER_LAYERS",
    "EncoderOutput",
    "GATE_MODES",
    "GateConfig",
    "KeyPoints",
    "LOG_ADC_THRESHOLD",
    "SubmanifoldConv3d",
    "TrainingOutput",
    "WEDGE_SHAPE",
    "hard_gate",
    "select_key_points",
    "load_model",
    "paper_compression_ratio",
    "reconstruct",
    "save_model",
    "soft_mask",
    "weights_hash",
]

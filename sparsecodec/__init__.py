"""sparsecodec: variable-rate neural compression (BCAE-VS) of sparse TPC detector data.

The sparse encoder runs on several sparse-convolution libraries through
:mod:`sparsecodec.backends`. Importing this package loads torch but no optional library and
makes no CUDA query.
"""

from .model import BCAEVS, BCAEVSDecoder, BCAEVSEncoder, GateConfig, SubmanifoldConv3d, load_model, save_model

__version__ = "0.1.0"

__all__ = [
    "BCAEVS",
    "BCAEVSDecoder",
    "BCAEVSEncoder",
    "GateConfig",
    "SubmanifoldConv3d",
    "load_model",
    "save_model",
]

"""Settings of a training run, their checks, and TOML configuration files.

The defaults are the published BCAE-VS schedule at paper scale: 100 epochs of 2000 batches of 4
whole wedges. AdamW runs with learning rate 1e-3, betas (0.9, 0.999) and weight decay 0.01, and
the learning rate is constant for 20 epochs and then drops by a factor 0.95 every 20 epochs. The
compression loss has weight 30 above a mean importance of 0.1, and the focal loss gamma 2.
"""

from __future__ import annotations

import dataclasses
import math
import tomllib
from dataclasses import dataclass
from pathlib import Path

from .crops import check_crop
from .gates import HARD, SOFT, STRAIGHT_THROUGH, TRAINING_GATES

#: Fresh weights from the run seed with the changes of :mod:`sparsecodec.train.initialization`.
SCRATCH = "scratch"
#: Fresh weights from the run seed with the layers' default initialization only.
SCRATCH_PLAIN = "scratch-plain"

#: Settings that may differ between a checkpoint and the run that resumes it: where things are
#: and how fast they run, not what is computed.
RESUMABLE_CHANGES = frozenset({"data", "output", "save_model", "epochs", "device", "backend", "threads",
                               "workers", "progress", "model_name", "deterministic"})


@dataclass
class TrainConfig:
    """One training run.

    Paths: ``data`` is a dataset folder with ``{split}.txt`` manifests (the public sPHENIX
    layout, as ``sparsecodec simulate`` writes it). ``output`` is the run folder for the
    checkpoint, the per-epoch CSV log and the final model. ``save_model`` is an extra path for
    the final model file. ``crop`` is (azimuth, time) window sizes in voxels, or None for whole
    wedges. ``init`` is ``"scratch"`` (fresh weights, see :mod:`sparsecodec.train.initialization`),
    ``"scratch-plain"`` (fresh weights with the layers' default initialization, as the BCAE-VS
    authors start) or a model file to start from (this project's or the authors'
    ``model_last.pth``). ``learning_rate`` applies to the encoder, and to the decoders unless
    ``decoder_learning_rate`` is set. ``batch_size`` counts wedges or crops per process.
    ``deterministic`` turns on ``torch.use_deterministic_algorithms`` for the run, so the same
    seed gives the same weights on the same machine (on CPU the encoder's backward pass then
    accumulates gradients in one thread instead of with parallel atomic adds).

    ``training_gate`` is what the decoders see during training: ``"soft"`` (the published
    v x m), ``"straight-through"`` (v x (p > theta), the input of inference, with the soft
    mask's gradient) or ``"hard"`` (v x (p > theta) with no reconstruction gradient to p); see
    :mod:`sparsecodec.train.gates`. ``soft_gate_epochs`` is a warm-up for the other two gates:
    the first that many epochs train with the soft gate. ``gate_alpha`` is the slope alpha of
    the soft mask sigmoid(alpha (logit p - logit theta)); the published value is 4, and a larger
    one makes the soft mask closer to the hard gate of inference.
    ``batch_norm_recalibration_steps``
    is the number of batches (of ``batch_size`` crops, drawn apart from the training batches)
    on which the decoders' BatchNorm running statistics are recomputed with the hard gate after
    the last epoch; 0 keeps the statistics that training gathered.
    """

    data: str | None = None
    output: str | None = None
    split: str = "train"
    epochs: int = 100
    steps_per_epoch: int = 2000
    batch_size: int = 4
    crop: tuple[int, int] | None = None
    learning_rate: float = 1e-3
    decoder_learning_rate: float | None = None
    betas: tuple[float, float] = (0.9, 0.999)
    weight_decay: float = 0.01
    lr_warmup_epochs: int = 20
    lr_step_epochs: int = 20
    lr_gamma: float = 0.95
    compression_weight: float = 30.0
    compression_bound: float = 0.1
    focal_gamma: float = 2.0
    seed: int = 0
    init: str = SCRATCH
    device: str = "cpu"
    backend: str | None = None
    threads: int | None = None
    workers: int = 0
    checkpoint_every: int = 1
    model_name: str = "bcae-vs-trained"
    save_model: str | None = None
    progress: bool = True
    deterministic: bool = True
    training_gate: str = SOFT
    soft_gate_epochs: int = 0
    batch_norm_recalibration_steps: int = 0
    gate_alpha: float = 4.0

    def __post_init__(self) -> None:
        if self.crop is not None:
            self.crop = check_crop(tuple(self.crop))
        self.betas = tuple(self.betas)

    def validate(self) -> None:
        """Raise ValueError or TypeError naming the first invalid setting."""
        if not self.data:
            raise ValueError("no training data: set data to a dataset folder with a train.txt manifest")
        if not self.output:
            raise ValueError("no output folder: set output to the run folder for checkpoints and logs")
        for name in ("epochs", "steps_per_epoch", "batch_size", "lr_step_epochs", "checkpoint_every"):
            _check_int(name, getattr(self, name), minimum=1)
        for name in ("lr_warmup_epochs", "workers", "seed", "soft_gate_epochs", "batch_norm_recalibration_steps"):
            _check_int(name, getattr(self, name), minimum=0)
        if self.threads is not None:
            _check_int("threads", self.threads, minimum=1)
        for name in ("learning_rate", "lr_gamma", "gate_alpha"):
            _check_float(name, getattr(self, name), positive=True)
        if self.decoder_learning_rate is not None:
            _check_float("decoder_learning_rate", self.decoder_learning_rate, positive=True)
        for name in ("weight_decay", "compression_weight", "compression_bound", "focal_gamma"):
            _check_float(name, getattr(self, name), positive=False)
        if len(self.betas) != 2 or not all(isinstance(b, (int, float)) and 0.0 <= b < 1.0 for b in self.betas):
            raise ValueError(f"betas must be two numbers in [0, 1), got {self.betas!r}")
        if self.training_gate not in TRAINING_GATES:
            raise ValueError(f"training_gate must be one of {', '.join(TRAINING_GATES)}, got {self.training_gate!r}")
        if self.soft_gate_epochs and self.training_gate == SOFT:
            raise ValueError(f"soft_gate_epochs = {self.soft_gate_epochs} is a warm-up for training_gate = "
                             f"{STRAIGHT_THROUGH!r} or {HARD!r}; set one of them or soft_gate_epochs = 0")
        if not isinstance(self.init, str) or not self.init:
            raise ValueError(f"init must be {SCRATCH!r}, {SCRATCH_PLAIN!r} or a model file path, got {self.init!r}")
        if self.init not in (SCRATCH, SCRATCH_PLAIN) and not Path(self.init).is_file():
            raise FileNotFoundError(f"init model file not found: {self.init}")

    def gate_of_epoch(self, epoch: int) -> str:
        """Return the training gate of epoch ``epoch`` (0-based): soft during the warm-up, then ``training_gate``."""
        return SOFT if epoch < self.soft_gate_epochs else self.training_gate

    def as_dict(self) -> dict:
        """Return the settings as plain Python values (tuples as lists), for checkpoints and TOML."""
        values = dataclasses.asdict(self)
        values["crop"] = None if self.crop is None else list(self.crop)
        values["betas"] = list(self.betas)
        return values

    def training_settings(self) -> dict:
        """Return the settings that decide what the run computes (all but :data:`RESUMABLE_CHANGES`)."""
        return {key: value for key, value in self.as_dict().items()
                if key not in RESUMABLE_CHANGES}


def _check_int(name: str, value, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int, got {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be at least {minimum}, got {value}")


def _check_float(name: str, value, positive: bool) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ValueError(f"{name} must be a finite number, got {value!r}")
    if value < 0 or (positive and value == 0):
        raise ValueError(f"{name} must be {'positive' if positive else 'non-negative'}, got {value}")


def config_fields() -> set[str]:
    return {item.name for item in dataclasses.fields(TrainConfig)}


def read_config_file(path) -> dict:
    """Read a TOML file of :class:`TrainConfig` settings; return them as a dict.

    Keys are the field names (``steps_per_epoch = 200``; dashes are accepted for underscores).
    ``crop = "none"`` means whole wedges. Raises ValueError for unknown keys or invalid TOML, and
    FileNotFoundError naming the file when it does not exist.
    """
    path = Path(path)
    try:
        with path.open("rb") as stream:
            raw = tomllib.load(stream)
    except FileNotFoundError:
        raise FileNotFoundError(f"training config file not found: {path}") from None
    except tomllib.TOMLDecodeError as error:
        raise ValueError(f"{path} is not valid TOML: {error}") from error

    known = config_fields()
    settings = {}
    for key, value in raw.items():
        name = key.replace("-", "_")
        if name not in known:
            raise ValueError(f"{path}: unknown setting {key!r}; known settings: {', '.join(sorted(known))}")
        if name == "crop" and isinstance(value, str) and value.lower() == "none":
            value = None
        settings[name] = value
    return settings

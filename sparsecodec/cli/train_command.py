"""``sparsecodec train``: train BCAE-VS on wedges in the public layout, on CPU, CUDA or under torchrun."""

from __future__ import annotations

import logging
import math

from . import CommandError

log = logging.getLogger(__name__)

#: (option, TrainConfig field, type, metavar, help) of the options that map one-to-one to a setting.
SETTINGS = (
    ("--data", "data", str, "DIR", "dataset folder with {split}.txt manifests, e.g. written by 'sparsecodec simulate'"),
    ("--split", "split", str, "NAME", "manifest to train on (default: train)"),
    ("--output", "output", str, "DIR", "run folder for checkpoint.pt, train_log.csv and model.pt"),
    ("--epochs", "epochs", int, "N", "number of epochs (default: 100)"),
    ("--steps-per-epoch", "steps_per_epoch", int, "N", "optimizer steps (batches) per epoch (default: 2000)"),
    ("--batch-size", "batch_size", int, "B", "wedges or crops per batch and process (default: 4)"),
    ("--lr", "learning_rate", float, "LR", "AdamW learning rate of the encoder, and of the decoders unless "
     "--decoder-lr is given (default: 1e-3)"),
    ("--decoder-lr", "decoder_learning_rate", float, "LR", "AdamW learning rate of the two decoders (default: --lr)"),
    ("--weight-decay", "weight_decay", float, "W", "AdamW weight decay (default: 0.01)"),
    ("--lr-warmup-epochs", "lr_warmup_epochs", int, "N",
     "epochs at the initial learning rate before the first decay (default: 20)"),
    ("--lr-step-epochs", "lr_step_epochs", int, "N", "epochs between learning-rate decays (default: 20)"),
    ("--lr-gamma", "lr_gamma", float, "G", "learning-rate factor at each decay (default: 0.95)"),
    ("--compression-weight", "compression_weight", float, "W",
     "weight of the compression loss W max(0, mu - bound) mu (default: 30)"),
    ("--compression-bound", "compression_bound", float, "L",
     "mean importance mu of the signal voxels below which the compression loss is zero (default: 0.1)"),
    ("--focal-gamma", "focal_gamma", float, "G", "focusing parameter of the segmentation focal loss (default: 2)"),
    ("--training-gate", "training_gate", str, "soft|straight-through|hard",
     "what the decoders read during training: soft (the default, the published objective) is the encoder's "
     "value v times the soft mask sigmoid(alpha (logit p - logit theta)); straight-through is v times the hard "
     "gate p > theta that inference applies, with the soft mask's gradient in the backward pass; hard is the "
     "same input with no reconstruction gradient to p (only the compression loss trains p)"),
    ("--gate-alpha", "gate_alpha", float, "A",
     "slope alpha of the soft mask sigmoid(alpha (logit p - logit theta)); larger values bring the soft mask "
     "closer to the hard gate p > theta of inference (default: 4, the published value)"),
    ("--soft-gate-epochs", "soft_gate_epochs", int, "N",
     "with --training-gate straight-through or hard, train the first N epochs with the soft gate (default: 0)"),
    ("--batch-norm-recalibration-steps", "batch_norm_recalibration_steps", int, "N",
     "after the last epoch, recompute the decoders' BatchNorm running statistics as the average over N batches "
     "(of --batch-size crops, apart from the training batches) gated with p > theta (default: 0, keep the "
     "statistics gathered in training)"),
    ("--seed", "seed", int, "S", "seed of the initial weights, the crops and the gate thresholds (default: 0)"),
    ("--init", "init", str, "scratch|scratch-plain|PATH",
     "start from fresh weights (scratch, the default: zero last encoder layer and prior biases of the heads; "
     "scratch-plain: the layers' default initialization only) or from a model file: a sparsecodec model or "
     "the BCAE-VS authors' model_last.pth (fine-tuning)"),
    ("--device", "device", str, "DEVICE",
     "cpu (default), cuda or cuda:N; under torchrun on CUDA each process takes cuda:LOCAL_RANK"),
    ("--backend", "backend", str, "NAME", "sparse-convolution backend of the encoder (default: $SPARSE_BACKEND, "
     "else the first available)"),
    ("--threads", "threads", int, "N", "torch CPU threads per process (default: torch's choice)"),
    ("--workers", "workers", int, "N", "DataLoader worker processes that read and crop wedges (default: 0)"),
    ("--checkpoint-every", "checkpoint_every", int, "N", "epochs between checkpoints (default: 1)"),
    ("--model-name", "model_name", str, "NAME", "name stored in the final model file (default: bcae-vs-trained)"),
    ("--save-model", "save_model", str, "PATH", "also write the final model file here"),
)


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "train",
        help="train BCAE-VS (from scratch or from a model file) on wedges in the public layout",
        description="Train BCAE-VS with the published objective: focal segmentation loss, L1 regression loss "
                    "balanced by a running coefficient, and the compression loss on the mean importance of the "
                    "signal voxels, with a soft random gate. Settings come from the defaults (the paper-scale "
                    "schedule), then CONFIG (a TOML file of the same names with underscores), then the options. "
                    "Writes DIR/checkpoint.pt, DIR/train_log.csv (one row per epoch, soft- and hard-gate metrics) "
                    "and DIR/model.pt. Run the same command under torchrun for data-parallel training.",
    )
    parser.add_argument("config", nargs="?", metavar="CONFIG", help="TOML file of training settings")
    for option, name, kind, metavar, text in SETTINGS:
        flags = (option, "-o") if option == "--output" else (option,)
        parser.add_argument(*flags, dest=name, type=kind, metavar=metavar, default=None, help=text)
    crop = parser.add_mutually_exclusive_group()
    crop.add_argument("--crop", nargs=2, type=int, metavar=("AZIMUTH", "TIME"), default=None,
                      help="train on random crops of all 16 layers and this window in voxels (azimuth of 1..192, "
                           "time of 1..249), so the dense decoders fit a CPU budget")
    crop.add_argument("--whole-wedges", action="store_true", help="train on whole (16, 192, 249) wedges (default)")
    parser.add_argument("--betas", nargs=2, type=float, metavar=("B1", "B2"), default=None,
                        help="AdamW betas (default: 0.9 0.999)")
    parser.add_argument("--resume", action="store_true",
                        help="continue from DIR/checkpoint.pt if it exists (else start); without it an existing "
                             "checkpoint is an error")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.set_defaults(func=run)


def config_from_args(args):
    """Return the :class:`~sparsecodec.train.TrainConfig` of defaults < CONFIG file < options."""
    from ..train import TrainConfig, read_config_file

    settings = read_config_file(args.config) if args.config else {}
    for _, name, _, _, _ in SETTINGS:
        value = getattr(args, name)
        if value is not None:
            settings[name] = value
    if args.crop is not None:
        settings["crop"] = tuple(args.crop)
    if args.whole_wedges:
        settings["crop"] = None
    if args.betas is not None:
        settings["betas"] = tuple(args.betas)
    if args.no_progress or getattr(args, "quiet", False):
        settings["progress"] = False
    try:
        return TrainConfig(**settings)
    except TypeError as error:
        raise CommandError(f"invalid training settings: {error}") from error


def run(args) -> int:
    from ..train import train

    config = config_from_args(args)
    result = train(config, resume=args.resume, command=getattr(args, "command_line", None))
    if result.model_path is None:
        return 0

    last = result.history[-1] if result.history else None
    print(f"{config.model_name}: {result.steps} steps in {result.seconds:.0f} s of training; model in "
          f"{result.model_path}" + (f" and {config.save_model}" if config.save_model else ""))
    if last is not None:
        print(f"{'last epoch':<12} {'kept':>8} {'recall':>8} {'precision':>10} {'L1':>8}")
        for gate in ("soft", "hard"):
            if math.isnan(last[f"{gate}_kept_fraction"]):
                continue  # no soft-gate pass runs with --training-gate straight-through or hard
            print(f"{gate + ' gate':<12} {last[f'{gate}_kept_fraction']:>8.4f} {last[f'{gate}_recall']:>8.4f} "
                  f"{last[f'{gate}_precision']:>10.4f} {last[f'{gate}_l1']:>8.4f}")
    return 0

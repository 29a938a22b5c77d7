"""The training run: model and optimizer set-up, the epoch loop, logs, checkpoints and the final model."""

from __future__ import annotations

import csv
import io
import logging
import time
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import torch
from torch.utils.data import DataLoader

from ..atomic import write_atomic
from ..codec.pipeline import resolve_device
from ..data import read_manifest
from ..model import BCAEVS, load_model, save_model, weights_hash
from . import distributed, provenance
from .checkpoint import CHECKPOINT_FILE, load_checkpoint, random_states, restore_random_states, save_checkpoint
from .config import SCRATCH, SCRATCH_PLAIN, TrainConfig
from .crops import RECALIBRATION_CROP_STREAM, CropBatches
from .gates import TrainingPass
from .initialization import initialize_for_scratch
from .losses import ReconstructionLoss
from .recalibration import recalibrate_batch_norm
from .step import RECALIBRATION_GATE_STREAM, EpochStats, gate_generator, train_step

log = logging.getLogger(__name__)

#: Files a run writes into its output folder besides the checkpoint.
LOG_FILE = "train_log.csv"
MODEL_FILE = "model.pt"


@dataclass
class TrainResult:
    """Result of :func:`train`: the trained model (eval mode), the per-epoch log and provenance."""

    model: BCAEVS
    history: list[dict]
    seconds: float
    steps: int
    model_path: Path | None
    metadata: dict


def learning_rate_factor(epoch: int, warmup_epochs: int, step_epochs: int, gamma: float) -> float:
    """Return the learning-rate multiplier of epoch ``epoch`` (0-based).

    1 for the first ``warmup_epochs`` epochs, then ``gamma`` once more every ``step_epochs``
    epochs: with 20 and 20, epochs 20..39 get gamma, 40..59 gamma^2, and so on.
    """
    if epoch < warmup_epochs:
        return 1.0
    return gamma ** ((epoch - warmup_epochs) // step_epochs + 1)


def build_model(config: TrainConfig) -> BCAEVS:
    """Return the starting model in training mode: fresh weights from the seed, or a model file."""
    torch.manual_seed(config.seed)
    if config.init == SCRATCH:
        model = initialize_for_scratch(BCAEVS(backend=config.backend))
    elif config.init == SCRATCH_PLAIN:
        model = BCAEVS(backend=config.backend)
    else:
        model, name, _ = load_model(config.init, backend=config.backend)
        log.info("starting from %s (%s)", config.init, name)
    # The slope only shapes training, and a model file records it with the rest of its configuration.
    model.alpha = config.gate_alpha
    model.config["alpha"] = config.gate_alpha
    return model.train()


def build_optimizers(model: BCAEVS, config: TrainConfig):
    """Return (optimizers, schedulers): AdamW for the encoder and for both decoders, each with its schedule."""
    decoder_parameters = list(model.regression.parameters()) + list(model.segmentation.parameters())
    optimizers = [
        torch.optim.AdamW(model.encoder.parameters(), lr=config.learning_rate, betas=config.betas,
                          weight_decay=config.weight_decay),
        torch.optim.AdamW(decoder_parameters, lr=config.decoder_learning_rate or config.learning_rate,
                          betas=config.betas, weight_decay=config.weight_decay),
    ]
    factor = partial(learning_rate_factor, warmup_epochs=config.lr_warmup_epochs,
                     step_epochs=config.lr_step_epochs, gamma=config.lr_gamma)
    schedulers = [torch.optim.lr_scheduler.LambdaLR(optimizer, factor) for optimizer in optimizers]
    return optimizers, schedulers


def write_history(path: Path, history: list[dict]) -> None:
    """Write the per-epoch rows as CSV, atomically (the whole file each time; it is small)."""
    buffer = io.StringIO()
    if history:
        writer = csv.DictWriter(buffer, fieldnames=list(history[0]), lineterminator="\n")
        writer.writeheader()
        writer.writerows(history)
    write_atomic(path, buffer.getvalue().encode())


def _check_resumable(saved: dict, config: TrainConfig, world_size: int, path: Path) -> None:
    # A setting added after the checkpoint was written had its default value in that run.
    saved_settings = TrainConfig().training_settings()
    saved_settings.update((key, value) for key, value in saved["config"].items() if key in saved_settings)
    for key, value in config.training_settings().items():
        if saved_settings.get(key) != value:
            raise ValueError(f"{path} was written with {key} = {saved_settings.get(key)!r}, but this run has "
                             f"{key} = {value!r}; resume with the same setting or start a new output folder")
    if saved.get("world_size", 1) != world_size:
        log.warning("%s was written by %d processes, this run has %d: the remaining batches differ from an "
                    "uninterrupted run", path, saved.get("world_size", 1), world_size)


def train(config: TrainConfig, resume: bool = False, command: list[str] | None = None) -> TrainResult:
    """Train BCAE-VS with the settings of ``config``; return the final model and the per-epoch log.

    Writes ``checkpoint.pt`` (every ``checkpoint_every`` epochs and at the end), ``train_log.csv``
    and ``model.pt`` into ``config.output`` and the model also to ``config.save_model`` if set.
    With ``resume`` a run continues from the folder's checkpoint when there is one. Without it
    an existing checkpoint is an error, so a finished run is never overwritten by accident.
    Under ``torchrun`` every process calls this; only rank 0 writes files.
    """
    config.validate()
    device = resolve_device(config.device)
    threads = torch.get_num_threads()
    if config.threads is not None:
        torch.set_num_threads(config.threads)
    was_deterministic = torch.are_deterministic_algorithms_enabled()
    was_warn_only = torch.is_deterministic_algorithms_warn_only_enabled()
    # warn_only: an operation without a deterministic version warns instead of stopping the run.
    torch.use_deterministic_algorithms(config.deterministic, warn_only=True)
    context = distributed.setup(device)
    try:
        return _run(config, context, resume, command)
    finally:
        distributed.teardown(context)
        torch.use_deterministic_algorithms(was_deterministic, warn_only=was_warn_only)
        torch.set_num_threads(threads)


def _run(config: TrainConfig, context: distributed.Distributed, resume: bool, command) -> TrainResult:
    device = context.device
    output = Path(config.output)
    checkpoint_path = output / CHECKPOINT_FILE
    if checkpoint_path.exists() and not resume:
        raise FileExistsError(f"{checkpoint_path} exists from an earlier run; continue it with --resume "
                              "(resume=True in Python) or choose another output folder")
    wedges = read_manifest(config.data, config.split)
    # Taken now: the source tree may move on while a long run trains.
    source = provenance.git_commit()
    if context.is_main:
        log.info("training on %d wedges of %s (%s split), %s", len(wedges), config.data, config.split,
                 "whole wedges" if config.crop is None else f"crops of {config.crop[0]} x {config.crop[1]} "
                 "(azimuth x time)")

    model = build_model(config).to(device)
    optimizers, schedulers = build_optimizers(model, config)
    reconstruction = ReconstructionLoss(focal_gamma=config.focal_gamma)
    epoch, step, history, seconds = 0, 0, [], 0.0

    if resume and checkpoint_path.exists():
        saved = load_checkpoint(checkpoint_path)
        _check_resumable(saved, config, context.world_size, checkpoint_path)
        model.load_state_dict(saved["model"])
        for optimizer, state in zip(optimizers, saved["optimizers"]):
            optimizer.load_state_dict(state)
        for scheduler, state in zip(schedulers, saved["schedulers"]):
            scheduler.load_state_dict(state)
        reconstruction.load_state_dict(saved["reconstruction_loss"])
        restore_random_states(saved["random_states"])
        epoch, step, history, seconds = saved["epoch"], saved["step"], list(saved["history"]), saved["seconds"]
        log.info("resuming %s after epoch %d (step %d)", checkpoint_path, epoch, step)
    elif resume:
        log.info("no checkpoint in %s yet; starting a new run", output)

    training_pass = TrainingPass(model, config.gate_of_epoch(epoch))
    network = training_pass
    if context.enabled:
        device_ids = [device] if device.type == "cuda" else None
        network = torch.nn.parallel.DistributedDataParallel(network, device_ids=device_ids)

    if context.is_main:
        output.mkdir(parents=True, exist_ok=True)
        # A checkpoint may be older than the last CSV write; the log restarts from the checkpoint.
        write_history(output / LOG_FILE, history)

    batches = CropBatches(wedges, config.batch_size, config.crop, config.seed, context.rank)
    for epoch in range(epoch, config.epochs):
        started = time.perf_counter()
        learning_rates = [optimizer.param_groups[0]["lr"] for optimizer in optimizers]
        training_pass.gate = config.gate_of_epoch(epoch)
        stats = _run_epoch(model, network, batches, step, reconstruction, optimizers, config, context, epoch)
        step += config.steps_per_epoch
        for scheduler in schedulers:
            scheduler.step()
        distributed.broadcast_buffers(model, context)

        elapsed = time.perf_counter() - started
        seconds += elapsed
        row = {"epoch": epoch + 1, "step": step, "encoder_learning_rate": learning_rates[0],
               "decoder_learning_rate": learning_rates[1], "seconds": elapsed,
               **stats.row(context, device)}
        history.append(row)
        if context.is_main:
            log.info("epoch %d/%d: loss %.4g, hard gate kept %.3f, recall %.3f, precision %.3f, L1 %.4f (%.0f s)",
                     epoch + 1, config.epochs, row["loss"], row["hard_kept_fraction"], row["hard_recall"],
                     row["hard_precision"], row["hard_l1"], elapsed)

        finished = epoch + 1 == config.epochs
        if context.is_main and ((epoch + 1) % config.checkpoint_every == 0 or finished):
            save_checkpoint(checkpoint_path, {
                "config": config.as_dict(), "world_size": context.world_size, "epoch": epoch + 1, "step": step,
                "model": model.state_dict(),
                "optimizers": [optimizer.state_dict() for optimizer in optimizers],
                "schedulers": [scheduler.state_dict() for scheduler in schedulers],
                "reconstruction_loss": reconstruction.state_dict(), "random_states": random_states(),
                "history": history, "seconds": seconds,
            })
        if context.is_main:
            write_history(output / LOG_FILE, history)

    if config.batch_norm_recalibration_steps:
        _recalibrate(model, wedges, config, context)
    distributed.check_in_step(model, context)
    model.eval()
    metadata = _metadata(config, context, command, len(wedges), seconds, step, history, source)
    model_path = None
    if context.is_main:
        model_path = output / MODEL_FILE
        save_model(model, model_path, config.model_name, metadata)
        if config.save_model:
            save_model(model, config.save_model, config.model_name, metadata)
        log.info("saved %s (sha256 %s...) to %s%s after %d steps, %.0f s of training", config.model_name,
                 weights_hash(model)[:12], model_path, f" and {config.save_model}" if config.save_model else "",
                 step, seconds)
    return TrainResult(model, history, seconds, step, model_path, metadata)


def _run_epoch(model, network, batches, first_step, reconstruction, optimizers, config, context, epoch) -> EpochStats:
    from tqdm import tqdm

    model.train()
    steps = range(first_step, first_step + config.steps_per_epoch)
    loader = DataLoader(batches, batch_size=None, sampler=steps, num_workers=config.workers)
    stats = EpochStats()
    show = config.progress and context.is_main
    # disable=None hides the bar when stderr is not a terminal (logs of background runs).
    with tqdm(total=len(steps), desc=f"epoch {epoch + 1}/{config.epochs}", unit="step",
              disable=None if show else True) as bar:
        for step, batch in zip(steps, loader):
            generator = gate_generator(config.seed, context.rank, step, context.device)
            stats.add(train_step(model, network, batch, reconstruction, optimizers, generator, context,
                                 config.compression_weight, config.compression_bound, config.gate_of_epoch(epoch)))
            bar.set_postfix({key: f"{value:.3g}" for key, value in stats.running().items()}, refresh=False)
            bar.update()
    return stats


def _recalibrate(model, wedges, config: TrainConfig, context: distributed.Distributed) -> None:
    # Crops and thresholds from streams of their own, so the batches differ from every training batch.
    batches = CropBatches(wedges, config.batch_size, config.crop, config.seed, context.rank,
                          stream=RECALIBRATION_CROP_STREAM)
    recalibrate_batch_norm(
        model, batches, range(config.batch_norm_recalibration_steps),
        lambda step: gate_generator(config.seed, context.rank, step, context.device, RECALIBRATION_GATE_STREAM),
        progress=config.progress and context.is_main,
    )
    distributed.broadcast_buffers(model, context)


def _metadata(config: TrainConfig, context, command, wedge_count: int, seconds: float, steps: int,
              history: list[dict], source: dict) -> dict:
    return {
        "seed": config.seed,
        "command": " ".join(command) if command else None,
        "data": provenance.dataset_description(config.data, config.split, wedge_count),
        "training": {
            "seconds": round(seconds, 1),
            "steps": steps,
            "epochs": len(history),
            "processes": context.world_size,
            "settings": config.training_settings(),
            "last_epoch": history[-1] if history else None,
        },
        "hardware": provenance.hardware(context.device, context.world_size),
        "source": source,
    }

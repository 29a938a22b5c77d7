"""A tiny training dataset in the public layout, shared by the training tests."""

from __future__ import annotations

from pathlib import Path

from sparsecodec.data import save_wedge, write_manifest
from sparsecodec.train import TrainConfig


def write_train_dataset(root: Path, wedges) -> Path:
    """Write ``wedges`` (raw ADC, (16, 192, 249) each) as the train split of a dataset at ``root``."""
    paths = [root / f"wedge{index}.npy" for index in range(len(wedges))]
    for path, adc in zip(paths, wedges):
        save_wedge(path, adc)
    write_manifest(root, "train", paths)
    return root


def tiny_train_config(dataset, output, **settings) -> TrainConfig:
    """Return a few-step training run on 16 x 24 crops of ``dataset``; ``settings`` override or add fields."""
    values = dict(data=str(dataset), output=str(output), steps_per_epoch=2, batch_size=2, crop=(16, 24),
                  progress=False)
    values.update(settings)
    return TrainConfig(**values)

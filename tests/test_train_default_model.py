"""The default model shipped in the package: this project's trained weights, small, and working."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from sparsecodec.data import simulate_wedges
from sparsecodec.model import BCAEVS, GateConfig, weights_hash
from sparsecodec.model.default import default_model_path, load_default_model
from sparsecodec.train import CropBatches

AUTHORS_CHECKPOINT = (Path(__file__).resolve().parents[1].parent / "shared" / "reference" / "bcae-vs-authors"
                      / "model_last.pth")


def test_default_weights_are_small():
    assert default_model_path().is_file()
    assert default_model_path().stat().st_size < 1_000_000


def test_default_model_records_its_training():
    _, name, metadata = load_default_model()
    assert name == "bcae-vs-sparsecodec-cpu-v1"
    assert metadata["seed"] == 0
    assert metadata["command"].startswith("sparsecodec train configs/cpu-default.toml")
    assert metadata["data"]["simulation"]["preset"] == "auau-central-170khz"
    assert metadata["training"]["steps"] == 3000
    assert metadata["training"]["settings"]["init"] == "scratch"
    assert metadata["hardware"]["device"] == "cpu"
    assert len(metadata["source"]["commit"]) == 40


@pytest.mark.skipif(not AUTHORS_CHECKPOINT.is_file(), reason=f"authors' checkpoint not found at {AUTHORS_CHECKPOINT}")
def test_default_model_is_not_authors_checkpoint():
    model, _, _ = load_default_model()
    assert weights_hash(model) != weights_hash(BCAEVS.from_authors_checkpoint(AUTHORS_CHECKPOINT))


def test_default_model_reconstructs_simulated_crop():
    model, _, _ = load_default_model()
    wedge = simulate_wedges("auau-central-170khz", count=1, seed=31)
    batch = CropBatches(wedge, batch_size=1, crop=(64, 96), seed=0)[0]
    with torch.no_grad():
        keys = model.encode(batch.coords, batch.log_adc, GateConfig("random", seed=0), batch_size=1)
        decoded = model.decode(keys.coords, keys.values, 1, spatial_shape=batch.spatial_shape)
    truth = model.scatter(batch.coords, batch.log_adc, 1, batch.spatial_shape)[0, 0].numpy()
    output = decoded.reconstruction[0].numpy()

    kept_fraction = keys.coords.shape[0] / batch.coords.shape[0]
    recall = np.count_nonzero(output[truth > 0]) / np.count_nonzero(truth)
    precision = np.count_nonzero(truth[output > 0]) / max(np.count_nonzero(output), 1)
    # Floors a little below what the shipped model reaches (kept 0.12, recall 0.35, precision
    # 0.94, L1 0.68 of the all-zero output's), far above an untrained model (recall 0).
    assert 0.05 < kept_fraction < 0.3
    assert recall > 0.25
    assert precision > 0.8
    assert np.abs(output - truth).mean() < 0.8 * np.abs(truth).mean()

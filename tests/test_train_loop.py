"""The training loop on tiny crops: batches, schedule, learning, checkpoints and resume, the command."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
import torch

from sparsecodec.cli import main
from sparsecodec.data import log_adc, simulate_wedges
from sparsecodec.model import BCAEVS, load_model, save_model, weights_hash
from sparsecodec.train import CropBatches, ReconstructionLoss, TrainConfig, compression_loss, focal_loss
from sparsecodec.train import learning_rate_factor, read_config_file, regression_loss, train
from sparsecodec.train.initialization import REGRESSION_START, SEGMENTATION_PRIOR
from sparsecodec.train.distributed import Distributed
from sparsecodec.train.loop import LOG_FILE, MODEL_FILE, build_model, build_optimizers
from sparsecodec.train.step import gate_generator, train_step
from train_data import tiny_train_config, write_train_dataset

CPU = torch.device("cpu")
AUTHORS_CHECKPOINT = (Path(__file__).resolve().parents[1].parent / "shared" / "reference" / "bcae-vs-authors"
                      / "model_last.pth")


@pytest.fixture(scope="module")
def wedges():
    return simulate_wedges("auau-central-170khz", count=3, seed=11)


@pytest.fixture(scope="module")
def dataset(tmp_path_factory, wedges):
    return write_train_dataset(tmp_path_factory.mktemp("dataset"), wedges)


def tiny_config(dataset, output, **changes) -> TrainConfig:
    return tiny_train_config(dataset, output, **{"epochs": 2, "seed": 5, **changes})


def test_crop_batch_matches_its_window(wedges):
    batches = CropBatches(wedges, batch_size=2, crop=(16, 24), seed=3)
    batch = batches[7]
    assert batch.spatial_shape == (16, 16, 24)
    assert batch.coords.dtype == torch.int32
    for item in range(2):
        wedge, azimuth, time = batches.draw(7, item)
        window = wedges[wedge][:, azimuth:azimuth + 16, time:time + 24]
        dense = np.zeros((16, 16, 24), dtype=np.float32)
        rows = batch.coords[:, 0] == item
        layer, phi, t = batch.coords[rows, 1:].long().T.numpy()
        dense[layer, phi, t] = batch.log_adc[rows].numpy()
        np.testing.assert_array_equal(dense, log_adc(window))


def test_crop_batches_depend_only_on_seed_rank_step(wedges):
    first = CropBatches(wedges, 2, (16, 24), seed=3)
    again = CropBatches(wedges, 2, (16, 24), seed=3)
    other_rank = CropBatches(wedges, 2, (16, 24), seed=3, rank=1)
    assert torch.equal(first[4].coords, again[4].coords)
    assert torch.equal(first[4].log_adc, again[4].log_adc)
    assert [first.draw(4, item) for item in range(2)] != [first.draw(5, item) for item in range(2)]
    assert [first.draw(4, item) for item in range(2)] != [other_rank.draw(4, item) for item in range(2)]


def test_whole_wedge_batches(wedges):
    batch = CropBatches(wedges[:1], 1, None, seed=0)[0]
    assert batch.spatial_shape == (16, 192, 249)
    assert batch.coords.shape[0] == np.count_nonzero(wedges[0])


@pytest.mark.parametrize("crop", [(0, 24), (16, 250), (16,), "16x24", (16.0, 24)])
def test_crop_rejects_bad_sizes(wedges, crop):
    with pytest.raises(ValueError, match="crop"):
        CropBatches(wedges, 2, crop)


def test_crop_batches_reject_bad_wedges():
    with pytest.raises(ValueError, match="at least one wedge"):
        CropBatches([], 2)
    with pytest.raises(ValueError, match="expected shape"):
        CropBatches([np.zeros((16, 192, 248), dtype=np.uint16)], 2)
    with pytest.raises(ValueError, match="0..1023"):
        CropBatches([np.full((16, 192, 249), 1024, dtype=np.uint16)], 2)


def test_decoder_learning_rate_applies_to_decoders(tmp_path):
    config = tiny_config("unused", tmp_path, learning_rate=1e-3, decoder_learning_rate=1e-2)
    model = build_model(config)
    encoder_optimizer, decoder_optimizer = build_optimizers(model, config)[0]
    assert encoder_optimizer.param_groups[0]["lr"] == 1e-3
    assert decoder_optimizer.param_groups[0]["lr"] == 1e-2
    decoder_parameters = {id(parameter) for parameter in decoder_optimizer.param_groups[0]["params"]}
    assert decoder_parameters == {id(parameter) for parameter in model.parameters()} - \
        {id(parameter) for parameter in model.encoder.parameters()}


def test_learning_rate_schedule():
    factors = [learning_rate_factor(epoch, 20, 20, 0.95) for epoch in (0, 19, 20, 39, 40, 99)]
    assert factors == pytest.approx([1.0, 1.0, 0.95, 0.95, 0.95**2, 0.95**4])


@torch.no_grad()
def _loss_terms(model, batch) -> dict[str, float]:
    # Fixed gate thresholds, so that values before and after training compare like with like.
    output = model(batch.coords, batch.log_adc, batch.batch_size, generator=gate_generator(0, 0, 0, CPU),
                   spatial_shape=batch.spatial_shape)
    truth = model.scatter(batch.coords, batch.log_adc, batch.batch_size, batch.spatial_shape)[:, 0]
    return {
        "segmentation": float(focal_loss(output.segmentation, truth > 0)),
        "regression": float(regression_loss(output.regression, output.segmentation, truth)),
        "compression": float(compression_loss(output.encoded.probability, batch.coords.shape[0]).loss),
    }


def test_steps_lower_loss_on_fixed_batch(wedges, tmp_path):
    config = tiny_config("unused", tmp_path)
    model = build_model(config)
    optimizers, _ = build_optimizers(model, config)
    batch = CropBatches(wedges, 2, (16, 24), seed=1)[0]
    context = Distributed(0, 1, CPU, owns_group=False)
    reconstruction = ReconstructionLoss()

    before = _loss_terms(model, batch)
    for _ in range(15):
        values = train_step(model, model, batch, reconstruction, optimizers, gate_generator(0, 0, 0, CPU),
                            context, 30.0, 0.1)
    after = _loss_terms(model, batch)

    assert np.isfinite(values["loss"])
    assert after["segmentation"] < 0.9 * before["segmentation"]
    assert after["compression"] < before["compression"]
    # The objective with the segmentation coefficient held at 10.
    objective_before = before["regression"] + 10.0 * before["segmentation"] + before["compression"]
    objective_after = after["regression"] + 10.0 * after["segmentation"] + after["compression"]
    assert objective_after < 0.95 * objective_before


def test_train_writes_log_checkpoint_and_model(dataset, tmp_path):
    result = train(tiny_config(dataset, tmp_path / "run", model_name="tiny-test"), command=["sparsecodec", "train"])
    assert result.steps == 4
    assert (tmp_path / "run" / "checkpoint.pt").is_file()

    with open(tmp_path / "run" / LOG_FILE, newline="") as stream:
        rows = list(csv.DictReader(stream))
    assert [row["epoch"] for row in rows] == ["1", "2"]
    assert [row["step"] for row in rows] == ["2", "4"]
    assert [row["encoder_learning_rate"] for row in rows] == ["0.001", "0.001"]
    for gate in ("soft", "hard"):
        for metric in ("kept_fraction", "recall", "precision", "l1", "segmentation_loss", "regression_loss"):
            assert f"{gate}_{metric}" in rows[0]
    assert 0.0 < float(rows[-1]["hard_kept_fraction"]) <= 1.0

    model, name, metadata = load_model(tmp_path / "run" / MODEL_FILE)
    assert name == "tiny-test"
    assert weights_hash(model) == weights_hash(result.model)
    assert metadata["seed"] == 5
    assert metadata["command"] == "sparsecodec train"
    assert metadata["data"]["wedges"] == 3
    assert metadata["training"]["steps"] == 4
    assert metadata["hardware"]["device"] == "cpu"


def test_resume_matches_uninterrupted_run(dataset, tmp_path):
    # Pinned to native: MinkowskiEngine 0.5.4's CPU kernels differ in the last bit from run to
    # run unless OMP_NUM_THREADS=1, which would hide what this test checks, the resume logic.
    straight = train(tiny_config(dataset, tmp_path / "straight", backend="native"))

    first = train(tiny_config(dataset, tmp_path / "resumed", epochs=1, backend="native"))
    assert first.steps == 2
    resumed = train(tiny_config(dataset, tmp_path / "resumed", backend="native"), resume=True)

    assert resumed.steps == straight.steps == 4
    assert weights_hash(resumed.model) == weights_hash(straight.model)
    for row_straight, row_resumed in zip(straight.history, resumed.history, strict=True):
        for key, value in row_straight.items():
            if key != "seconds":
                assert row_resumed[key] == pytest.approx(value, rel=0, abs=0, nan_ok=True), key


def test_resume_rejects_changed_setting(dataset, tmp_path):
    train(tiny_config(dataset, tmp_path, epochs=1))
    with pytest.raises(ValueError, match="learning_rate = 0.001"):
        train(tiny_config(dataset, tmp_path, learning_rate=2e-3), resume=True)


def test_existing_checkpoint_needs_resume(dataset, tmp_path):
    train(tiny_config(dataset, tmp_path, epochs=1))
    with pytest.raises(FileExistsError, match="continue it with --resume"):
        train(tiny_config(dataset, tmp_path, epochs=1))


def test_scratch_init_zeroes_encoder_output(tmp_path):
    model = build_model(tiny_config("unused", tmp_path))
    assert torch.count_nonzero(model.encoder.convs[-1].weight) == 0
    assert torch.count_nonzero(model.encoder.convs[0].weight) > 0
    assert torch.sigmoid(model.segmentation.head.bias).item() == pytest.approx(SEGMENTATION_PRIOR)
    assert model.regression.head.bias.item() == REGRESSION_START


def test_plain_scratch_keeps_layer_defaults(tmp_path):
    plain = build_model(tiny_config("unused", tmp_path, init="scratch-plain"))
    scratch = build_model(tiny_config("unused", tmp_path))
    assert torch.count_nonzero(plain.encoder.convs[-1].weight) == 4
    # Both draw the same weights from the seed; only the three changed tensors differ.
    differing = [key for key, value in plain.state_dict().items() if not torch.equal(value, scratch.state_dict()[key])]
    assert sorted(differing) == ["encoder.convs.4.weight", "regression.head.bias", "segmentation.head.bias"]


def test_train_restores_global_settings(dataset, tmp_path):
    deterministic = torch.are_deterministic_algorithms_enabled()
    threads = torch.get_num_threads()
    train(tiny_config(dataset, tmp_path, epochs=1, steps_per_epoch=1, threads=threads + 1))
    assert torch.are_deterministic_algorithms_enabled() == deterministic
    assert torch.get_num_threads() == threads


def test_init_from_model_file(dataset, tmp_path):
    source = build_model(tiny_config(dataset, tmp_path, seed=9))
    save_model(source, tmp_path / "start.pt", "start")
    started = build_model(tiny_config(dataset, tmp_path, init=str(tmp_path / "start.pt")))
    assert weights_hash(started) == weights_hash(source)
    assert weights_hash(build_model(tiny_config(dataset, tmp_path))) != weights_hash(source)


@pytest.mark.skipif(not AUTHORS_CHECKPOINT.is_file(), reason=f"authors' checkpoint not found at {AUTHORS_CHECKPOINT}")
def test_init_from_authors_checkpoint(tmp_path):
    started = build_model(tiny_config("unused", tmp_path, init=str(AUTHORS_CHECKPOINT)))
    assert started.training
    assert weights_hash(started) == weights_hash(BCAEVS.from_authors_checkpoint(AUTHORS_CHECKPOINT))


@pytest.mark.parametrize("setting, value, message", [
    ("epochs", 0, "epochs must be at least 1"),
    ("batch_size", 2.5, "batch_size must be an int"),
    ("learning_rate", 0.0, "learning_rate must be positive"),
    ("weight_decay", float("nan"), "weight_decay must be a finite number"),
    ("betas", (0.9, 1.0), "betas must be two numbers"),
    ("init", "missing.pt", "init model file not found"),
])
def test_config_rejects_bad_settings(dataset, tmp_path, setting, value, message):
    with pytest.raises((ValueError, TypeError, FileNotFoundError), match=message):
        tiny_config(dataset, tmp_path, **{setting: value}).validate()


def test_config_file_reads_settings(tmp_path):
    path = tmp_path / "run.toml"
    path.write_text('epochs = 3\nsteps-per-epoch = 7\ncrop = [32, 48]\n')
    assert read_config_file(path) == {"epochs": 3, "steps_per_epoch": 7, "crop": [32, 48]}
    path.write_text('epoch = 3\n')
    with pytest.raises(ValueError, match="unknown setting 'epoch'"):
        read_config_file(path)
    path.write_text('epochs = \n')
    with pytest.raises(ValueError, match="not valid TOML"):
        read_config_file(path)


def test_train_command_with_config_file(dataset, tmp_path, capsys):
    config = tmp_path / "tiny.toml"
    config.write_text("epochs = 1\nsteps_per_epoch = 2\nbatch_size = 2\ncrop = [16, 24]\nseed = 2\n")
    output = tmp_path / "run"
    assert main(["train", str(config), "--data", str(dataset), "-o", str(output), "--model-name", "cli-test",
                 "--lr", "5e-4"]) == 0
    stdout = capsys.readouterr().out
    assert "cli-test: 2 steps" in stdout
    assert "hard gate" in stdout

    _, name, metadata = load_model(output / MODEL_FILE)
    assert name == "cli-test"
    assert metadata["training"]["settings"]["learning_rate"] == 5e-4
    assert metadata["training"]["settings"]["crop"] == [16, 24]
    assert metadata["command"].startswith("sparsecodec train")


def test_train_command_reports_errors(dataset, tmp_path, capsys):
    assert main(["-q", "train", "--data", str(dataset), "-o", str(tmp_path), "--crop", "0", "24"]) == 1
    assert "crop azimuth size must be an int in 1..192, got 0" in capsys.readouterr().err
    assert main(["-q", "train", "-o", str(tmp_path)]) == 1
    assert "no training data" in capsys.readouterr().err
    missing = tmp_path / "missing.toml"
    assert main(["-q", "train", str(missing), "--data", str(dataset), "-o", str(tmp_path / "run")]) == 1
    assert f"training config file not found: {missing}" in capsys.readouterr().err


def test_train_help_gives_units(capsys):
    with pytest.raises(SystemExit):
        main(["train", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    for option in ("--crop", "--steps-per-epoch", "--init", "--resume", "--lr", "--compression-bound"):
        assert option in text
    assert "window in voxels" in text

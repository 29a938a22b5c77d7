"""Training options that close the gap between training and inference: the straight-through
gate and BatchNorm recalibration on hard-gated batches."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from sparsecodec.cli import main
from sparsecodec.data import simulate_wedges
from sparsecodec.model import BCAEVS, load_model
from sparsecodec.model.gate import soft_mask
from sparsecodec.train import CropBatches, ReconstructionLoss, TrainConfig, focal_loss, regression_loss, train
from sparsecodec.train.checkpoint import CHECKPOINT_FILE, load_checkpoint, save_checkpoint
from sparsecodec.train.crops import RECALIBRATION_CROP_STREAM
from sparsecodec.train.distributed import Distributed
from sparsecodec.train.gates import TrainingPass, straight_through_mask
from sparsecodec.train.loop import MODEL_FILE, build_model, build_optimizers
from sparsecodec.train.recalibration import batch_norm_layers, recalibrate_batch_norm
from sparsecodec.train.step import RECALIBRATION_GATE_STREAM, gate_generator, train_step
from train_data import tiny_train_config, write_train_dataset

CPU = torch.device("cpu")
CONTEXT = Distributed(0, 1, CPU, owns_group=False)


@pytest.fixture(autouse=True)
def one_thread():
    # The models here are tiny: one thread is as fast, and it does not stall when other jobs share the CPU.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def wedges():
    return simulate_wedges("auau-central-170khz", count=2, seed=23)


@pytest.fixture(scope="module")
def dataset(tmp_path_factory, wedges):
    return write_train_dataset(tmp_path_factory.mktemp("dataset"), wedges)


def tiny_config(dataset, output, **changes) -> TrainConfig:
    return tiny_train_config(dataset, output, **{"epochs": 1, "seed": 3, "threads": 1, **changes})


def varied_model(seed: int = 0) -> BCAEVS:
    # The layers' default initialization: scores p spread around 0.5, unlike "scratch" (p = 0.5 exactly).
    torch.manual_seed(seed)
    return BCAEVS(backend="native").train()


def test_straight_through_mask_is_hard_with_soft_gradient():
    probability = torch.linspace(0.01, 0.99, 50, dtype=torch.float64, requires_grad=True)
    weights = torch.linspace(-1.0, 2.0, 50, dtype=torch.float64)

    soft = soft_mask(probability, 4.0, 1e-6, torch.Generator().manual_seed(7))
    (soft_gradient,) = torch.autograd.grad((soft * weights).sum(), probability)
    soft = soft_mask(probability, 4.0, 1e-6, torch.Generator().manual_seed(7))
    mask = straight_through_mask(soft)
    (mask_gradient,) = torch.autograd.grad((mask * weights).sum(), probability)

    theta = torch.rand(50, generator=torch.Generator().manual_seed(7), dtype=torch.float64)
    expected = (probability.detach() > theta).double()
    assert torch.equal(mask.detach(), expected)
    assert 0 < int(expected.sum()) < 50
    torch.testing.assert_close(mask_gradient, soft_gradient, rtol=1e-12, atol=0)
    assert torch.count_nonzero(mask_gradient) == 50


def test_straight_through_pass_decodes_kept_voxels_only(wedges):
    model = varied_model()
    batch = CropBatches(wedges, 2, (16, 24), seed=1)[0]
    network = TrainingPass(model, "straight-through")

    output = network(batch.coords, batch.log_adc, batch.batch_size, generator=gate_generator(0, 0, 0, CPU),
                     spatial_shape=batch.spatial_shape)
    keep = output.mask.detach() > 0.5
    assert set(output.mask.detach().unique().tolist()) == {0.0, 1.0}

    # What inference would decode from the same kept voxels (BatchNorm in training mode in both).
    with torch.no_grad():
        decoded = model.decode(batch.coords[keep], output.encoded.value[keep], batch.batch_size,
                               spatial_shape=batch.spatial_shape)
    torch.testing.assert_close(output.regression.detach(), decoded.regression, rtol=0, atol=0)
    torch.testing.assert_close(output.segmentation.detach(), decoded.segmentation, rtol=0, atol=0)

    # The soft pass with the same thresholds gives the decoders other input.
    soft = model(batch.coords, batch.log_adc, batch.batch_size, generator=gate_generator(0, 0, 0, CPU),
                 spatial_shape=batch.spatial_shape)
    assert not torch.allclose(soft.regression.detach(), decoded.regression)

    # The encoder still learns through the soft mask's gradient.
    output.regression.sum().backward()
    assert torch.count_nonzero(model.encoder.convs[0].weight.grad) > 0
    assert torch.count_nonzero(model.regression.head.weight.grad) > 0


def test_training_pass_soft_is_model_call(wedges):
    model = varied_model()
    batch = CropBatches(wedges, 2, (16, 24), seed=1)[0]
    with torch.no_grad():
        expected = model(batch.coords, batch.log_adc, 2, generator=gate_generator(0, 0, 0, CPU),
                         spatial_shape=batch.spatial_shape)
        output = TrainingPass(model, "soft")(batch.coords, batch.log_adc, 2, generator=gate_generator(0, 0, 0, CPU),
                                             spatial_shape=batch.spatial_shape)
    assert torch.equal(output.mask, expected.mask)
    assert torch.equal(output.regression, expected.regression)


def test_training_pass_rejects_unknown_gate():
    with pytest.raises(ValueError, match="training gate must be one of soft, straight-through, hard, got 'sharp'"):
        TrainingPass(varied_model(), "sharp")


def test_hard_pass_blocks_gradient_to_probability(wedges):
    model = varied_model()
    batch = CropBatches(wedges, 2, (16, 24), seed=1)[0]
    outputs = {}
    for gate in ("straight-through", "hard"):
        outputs[gate] = TrainingPass(model, gate)(batch.coords, batch.log_adc, 2,
                                                  generator=gate_generator(0, 0, 0, CPU),
                                                  spatial_shape=batch.spatial_shape)

    # The same decoder input and output; only the gradient path to p differs.
    assert torch.equal(outputs["hard"].mask, outputs["straight-through"].mask.detach())
    assert torch.equal(outputs["hard"].regression, outputs["straight-through"].regression)
    assert not outputs["hard"].mask.requires_grad

    probability_gradients = {}
    for gate, output in outputs.items():
        (probability_gradients[gate],) = torch.autograd.grad(output.regression.sum(), output.encoded.probability,
                                                             allow_unused=True)
    assert probability_gradients["hard"] is None
    assert torch.count_nonzero(probability_gradients["straight-through"]) > 0


def test_straight_through_step_logs_hard_gate(wedges, tmp_path):
    config = tiny_config("unused", tmp_path, training_gate="straight-through", init="scratch-plain", seed=4)
    model = build_model(config)
    optimizers, _ = build_optimizers(model, config)
    batch = CropBatches(wedges, 2, (16, 24), seed=2)[0]

    # The expected values from the model before the step, by the inference path.
    with torch.no_grad():
        probability = model.encoder(batch.coords, batch.log_adc, 2, spatial_shape=batch.spatial_shape).probability
        theta = torch.rand(probability.shape, generator=gate_generator(0, 0, 0, CPU))
        keep = probability > theta
        encoded = model.encoder(batch.coords, batch.log_adc, 2, spatial_shape=batch.spatial_shape)
        decoded = model.decode(batch.coords[keep], encoded.value[keep], 2, spatial_shape=batch.spatial_shape)
        truth = model.scatter(batch.coords, batch.log_adc, 2, batch.spatial_shape)[:, 0]
        expected_segmentation = float(focal_loss(decoded.segmentation, truth > 0))
        expected_regression = float(regression_loss(decoded.regression, decoded.segmentation, truth))

    values = train_step(model, TrainingPass(model, "straight-through"), batch, ReconstructionLoss(), optimizers,
                        gate_generator(0, 0, 0, CPU), CONTEXT, 30.0, 0.1, gate="straight-through")

    assert values["hard_kept"] == int(keep.sum())
    assert values["hard_segmentation_loss"] == pytest.approx(expected_segmentation, rel=1e-5)
    assert values["hard_regression_loss"] == pytest.approx(expected_regression, rel=1e-5)
    for key in ("soft_kept", "soft_true_positive", "soft_segmentation_loss", "soft_regression_loss"):
        assert math.isnan(values[key]), key


def test_straight_through_steps_lower_hard_gate_loss(wedges, tmp_path):
    config = tiny_config("unused", tmp_path, training_gate="straight-through")
    model = build_model(config)
    network = TrainingPass(model, config.training_gate)
    optimizers, _ = build_optimizers(model, config)
    batch = CropBatches(wedges, 2, (16, 24), seed=1)[0]
    reconstruction = ReconstructionLoss()

    history = [train_step(model, network, batch, reconstruction, optimizers, gate_generator(0, 0, 0, CPU),
                          CONTEXT, 30.0, 0.1, gate="straight-through") for _ in range(15)]

    assert np.isfinite(history[-1]["loss"])
    assert history[-1]["hard_segmentation_loss"] < 0.9 * history[0]["hard_segmentation_loss"]


def test_soft_gate_warm_up_switches_gate(dataset, tmp_path):
    config = tiny_config(dataset, tmp_path, epochs=3, steps_per_epoch=1, training_gate="straight-through",
                         soft_gate_epochs=2)
    assert [config.gate_of_epoch(epoch) for epoch in range(3)] == ["soft", "soft", "straight-through"]

    history = train(config).history
    assert not math.isnan(history[0]["soft_recall"])
    assert not math.isnan(history[1]["soft_recall"])
    assert math.isnan(history[2]["soft_recall"])
    assert not math.isnan(history[2]["hard_recall"])


def _hard_gated_first_block(model, batch, generator):
    # Inputs of the first BatchNorm layer of each decoder for one hard-gated batch, computed
    # without the recalibration code: encoder, p > theta, scatter, first convolution.
    encoded = model.encoder(batch.coords, batch.log_adc, batch.batch_size, spatial_shape=batch.spatial_shape)
    theta = torch.rand(encoded.probability.shape, generator=generator)
    keep = encoded.probability > theta
    dense = model.scatter(batch.coords, encoded.value * keep, batch.batch_size, batch.spatial_shape)
    return model.regression.blocks[0].conv(dense), model.segmentation.blocks[0].conv(dense)


def test_recalibration_averages_hard_gated_batches(wedges):
    model = varied_model(seed=2)
    model.regression.blocks[0].norm.running_mean.fill_(5.0)
    parameters = {key: value.clone() for key, value in model.named_parameters()}
    batches = CropBatches(wedges, 2, (16, 24), seed=4)
    steps = [0, 1, 2]

    def generators(step):
        return gate_generator(4, 0, step, CPU, RECALIBRATION_GATE_STREAM)

    with torch.no_grad():
        inputs = [_hard_gated_first_block(model, batches[step], generators(step)) for step in steps]
    model.eval()
    assert recalibrate_batch_norm(model, batches, steps, generators) == 3

    for decoder, index in ((model.regression, 0), (model.segmentation, 1)):
        norm = decoder.blocks[0].norm
        per_batch = [features[index].transpose(0, 1).reshape(features[index].shape[1], -1) for features in inputs]
        expected_mean = torch.stack([values.mean(dim=1) for values in per_batch]).mean(dim=0)
        expected_variance = torch.stack([values.var(dim=1, unbiased=True) for values in per_batch]).mean(dim=0)
        torch.testing.assert_close(norm.running_mean, expected_mean, rtol=1e-4, atol=1e-6)
        torch.testing.assert_close(norm.running_var, expected_variance, rtol=1e-4, atol=1e-6)
        assert int(norm.num_batches_tracked) == 3

    assert not model.training
    assert all(norm.momentum == 0.1 for norm in batch_norm_layers(model))
    for key, value in model.named_parameters():
        assert torch.equal(value, parameters[key]), key


def test_recalibration_without_batch_norm_does_nothing(wedges):
    model = BCAEVS(backend="native", batch_norm=False)
    batches = CropBatches(wedges, 2, (16, 24), seed=4)
    assert recalibrate_batch_norm(model, batches, [0], lambda step: torch.Generator()) == 0


def test_train_recalibrates_after_last_epoch(dataset, tmp_path):
    plain = train(tiny_config(dataset, tmp_path / "plain")).model
    recalibrated = train(tiny_config(dataset, tmp_path / "recalibrated", batch_norm_recalibration_steps=2)).model

    # The same weights; only the running statistics differ, and they are what recalibrating
    # the plain run's model on the recalibration streams gives.
    for key, value in plain.named_parameters():
        assert torch.equal(value, dict(recalibrated.named_parameters())[key]), key
    assert not torch.equal(plain.regression.blocks[0].norm.running_mean,
                           recalibrated.regression.blocks[0].norm.running_mean)

    wedges_of_run = [dataset / f"wedge{index}.npy" for index in range(2)]
    batches = CropBatches(wedges_of_run, 2, (16, 24), seed=3, stream=RECALIBRATION_CROP_STREAM)
    recalibrate_batch_norm(plain, batches, range(2),
                           lambda step: gate_generator(3, 0, step, CPU, RECALIBRATION_GATE_STREAM))
    for key, value in plain.state_dict().items():
        torch.testing.assert_close(value, recalibrated.state_dict()[key], rtol=0, atol=0, msg=key)

    _, _, metadata = load_model(tmp_path / "recalibrated" / MODEL_FILE)
    assert metadata["training"]["settings"]["batch_norm_recalibration_steps"] == 2


def test_resume_accepts_checkpoint_without_new_settings(dataset, tmp_path):
    train(tiny_config(dataset, tmp_path))
    path = tmp_path / CHECKPOINT_FILE
    saved = load_checkpoint(path)
    for key in ("training_gate", "batch_norm_recalibration_steps"):
        del saved["config"][key]
    saved = {key: value for key, value in saved.items() if key not in ("format", "version")}
    save_checkpoint(path, saved)

    resumed = train(tiny_config(dataset, tmp_path, epochs=2), resume=True)
    assert resumed.steps == 4
    with pytest.raises(ValueError, match="training_gate = 'soft'"):
        train(tiny_config(dataset, tmp_path, epochs=3, training_gate="straight-through"), resume=True)


@pytest.mark.parametrize("setting, value, message", [
    ("training_gate", "sharp", "training_gate must be one of soft, straight-through, hard"),
    ("soft_gate_epochs", 2, "soft_gate_epochs = 2 is a warm-up for training_gate = 'straight-through' or 'hard'"),
    ("soft_gate_epochs", -1, "soft_gate_epochs must be at least 0"),
    ("batch_norm_recalibration_steps", -1, "batch_norm_recalibration_steps must be at least 0"),
    ("batch_norm_recalibration_steps", 1.5, "batch_norm_recalibration_steps must be an int"),
    ("gate_alpha", 0.0, "gate_alpha must be positive, got 0.0"),
    ("gate_alpha", float("inf"), "gate_alpha must be a finite number"),
])
def test_config_rejects_bad_gate_settings(dataset, tmp_path, setting, value, message):
    with pytest.raises((ValueError, TypeError), match=message):
        tiny_config(dataset, tmp_path, **{setting: value}).validate()


def test_train_command_straight_through(dataset, tmp_path, capsys):
    output = tmp_path / "run"
    assert main(["train", "--data", str(dataset), "-o", str(output), "--epochs", "1", "--steps-per-epoch", "1",
                 "--batch-size", "1", "--crop", "16", "24", "--training-gate", "straight-through",
                 "--batch-norm-recalibration-steps", "1", "--no-progress"]) == 0
    stdout = capsys.readouterr().out
    assert "hard gate" in stdout
    assert "soft gate" not in stdout

    _, _, metadata = load_model(output / MODEL_FILE)
    assert metadata["training"]["settings"]["training_gate"] == "straight-through"
    assert metadata["training"]["settings"]["batch_norm_recalibration_steps"] == 1

    assert main(["-q", "train", "--data", str(dataset), "-o", str(tmp_path / "bad"),
                 "--training-gate", "sharp"]) == 1
    assert "training_gate must be one of soft, straight-through, hard, got 'sharp'" in capsys.readouterr().err


def test_train_help_describes_gate_options(capsys):
    with pytest.raises(SystemExit):
        main(["train", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "--training-gate soft|straight-through|hard" in text
    assert "--batch-norm-recalibration-steps N" in text
    assert "p > theta" in text


def test_gate_alpha_sets_mask_slope(dataset, tmp_path, capsys):
    model = build_model(tiny_config(dataset, tmp_path, gate_alpha=12.0, init="scratch-plain"))
    assert model.alpha == 12.0
    coords = torch.tensor([[0, 1, 2, 3], [0, 1, 2, 4]], dtype=torch.int32)
    values = torch.tensor([7.0, 8.0])
    with torch.no_grad():
        probability = model.encoder(coords, values, 1).probability
        output = model(coords, values, 1, generator=torch.Generator().manual_seed(1))
    expected = soft_mask(probability, 12.0, model.eps, torch.Generator().manual_seed(1))
    torch.testing.assert_close(output.mask, expected)

    output_folder = tmp_path / "alpha"
    assert main(["train", "--data", str(dataset), "-o", str(output_folder), "--epochs", "1", "--steps-per-epoch", "1",
                 "--batch-size", "1", "--crop", "16", "24", "--gate-alpha", "12", "--no-progress"]) == 0
    capsys.readouterr()
    loaded, _, metadata = load_model(output_folder / MODEL_FILE)
    assert metadata["training"]["settings"]["gate_alpha"] == 12.0
    assert loaded.alpha == 12.0
    rows = (output_folder / "train_log.csv").read_text().splitlines()
    above_half = float(rows[1].split(",")[rows[0].split(",").index("importance_above_half")])
    assert 0.0 <= above_half <= 1.0

"""BCAE-VS architecture, encoder on every backend, gate modes, decoders and model files."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import sparsecodec
import sparsecodec.backends as backends
from sparsecodec.model import (
    BCAEVS,
    BCAEVSEncoder,
    GateConfig,
    hard_gate,
    load_model,
    paper_compression_ratio,
    reconstruct,
    save_model,
    select_key_points,
    weights_hash,
)
from sparsecodec.kernels import capabilities
from sparsecodec.model.gate import kept_fraction_for_ratio
from sparse_cases import WEDGE_SHAPE, at_occupancy, batch_of, track_like

VOLUME = WEDGE_SHAPE[0] * WEDGE_SHAPE[1] * WEDGE_SHAPE[2]


def trained_like_encoder(seed=0) -> BCAEVSEncoder:
    """An encoder with random weights scaled so that p and v spread over (0, 1)."""
    torch.manual_seed(seed)
    encoder = BCAEVSEncoder()
    with torch.no_grad():
        for conv in encoder.convs:
            conv.weight.mul_(3.0)
    return encoder


def log_adc_for(coords, seed=0):
    generator = torch.Generator().manual_seed(seed)
    return 6.0 + 4.0 * torch.rand(coords.shape[0], generator=generator)


def test_encoder_architecture():
    encoder = BCAEVSEncoder()
    assert sum(p.numel() for p in encoder.parameters()) == 382
    layout = [(c.in_channels, c.out_channels, c.kernel_size, c.dilation, c.bias is None) for c in encoder.convs]
    assert layout == [(1, 2, 3, 1, True), (2, 2, 3, 2, True), (2, 2, 3, 4, True), (2, 2, 3, 2, True), (2, 2, 1, 1, True)]


def test_encoder_outputs_in_input_order():
    encoder = trained_like_encoder()
    coords = track_like(20, seed=1)
    values = log_adc_for(coords)
    order = torch.randperm(coords.shape[0], generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        straight = encoder(coords, values)
        shuffled = encoder(coords[order], values[order])
    assert straight.probability.shape == (coords.shape[0],)
    assert bool(((straight.probability > 0) & (straight.probability < 1)).all())
    torch.testing.assert_close(shuffled.probability, straight.probability[order])
    torch.testing.assert_close(shuffled.value, straight.value[order])


def test_encoder_same_state_dict_on_every_backend():
    reference_encoder = trained_like_encoder(seed=3)
    coords = batch_of(track_like(30, seed=2), at_occupancy(0.05, seed=3))
    values = log_adc_for(coords, seed=1)
    with torch.no_grad():
        reference = reference_encoder.double()(coords, values.double(), backend="dense")

    compared = []
    for name, status in backends.available().items():
        if status != "ok":
            continue
        encoder = BCAEVSEncoder(backend=name)
        encoder.load_state_dict(reference_encoder.float().state_dict())
        with torch.no_grad():
            output = encoder(coords, values)
        for field in ("probability", "value"):
            difference = (getattr(output, field).double() - getattr(reference, field)).abs().max().item()
            assert difference <= 1e-5, f"{name} {field} differs from the float64 dense encoder by {difference:.3g}"
        compared.append(name)
    assert {"dense", "native"} <= set(compared)


def test_encoder_backend_from_environment(monkeypatch):
    encoder = trained_like_encoder()
    coords = track_like(5, seed=4)
    monkeypatch.setenv("SPARSE_BACKEND", "no-such-library")
    with pytest.raises(ValueError, match="unknown sparse-convolution backend 'no-such-library'"):
        encoder(coords, log_adc_for(coords))
    monkeypatch.setenv("SPARSE_BACKEND", "dense")
    with torch.no_grad():
        assert encoder(coords, log_adc_for(coords)).value.shape == (coords.shape[0],)


def test_encoder_shares_map_per_dilation(monkeypatch):
    native = backends.get("native")
    built = []
    original = native.build_kernel_map

    def counting(coords, shape, kernel_size=3, dilation=1, **kwargs):
        built.append((kernel_size, dilation))
        return original(coords, shape, kernel_size, dilation, **kwargs)

    monkeypatch.setattr(native, "build_kernel_map", counting)
    coords = track_like(5, seed=5)
    # With autograd the native backend builds kernel maps. The next test covers inference without it.
    BCAEVSEncoder(backend="native")(coords, log_adc_for(coords))
    assert sorted(built) == [(1, 1), (3, 1), (3, 2), (3, 4)]


def test_native_inference_builds_no_map(monkeypatch):
    native = backends.get("native")
    coords = track_like(5, seed=5)
    values = log_adc_for(coords)
    encoder = BCAEVSEncoder(backend="native")
    with torch.no_grad():
        with_maps = torch.stack(encoder(coords, values, backend="dense"), 1)

        def fail(*args, **kwargs):
            raise AssertionError("the fused native path built a kernel map")

        monkeypatch.setattr(native, "build_kernel_map", fail)
        fused = torch.stack(encoder(coords, values), 1)
    torch.testing.assert_close(fused, with_maps)


def test_encoder_rejects_bad_values():
    encoder = BCAEVSEncoder()
    coords = track_like(3, seed=6)
    values = log_adc_for(coords)
    values[4] = float("nan")
    with pytest.raises(ValueError, match="NaN"):
        encoder(coords, values)
    with pytest.raises(ValueError, match=r"shape \(N,\) or \(N, 1\)"):
        encoder(coords, torch.zeros(coords.shape[0], 2))
    with pytest.raises(ValueError, match="features have 2 rows"):
        encoder(coords, torch.zeros(2))


def test_state_dict_round_trip(tmp_path):
    encoder = trained_like_encoder(seed=7)
    torch.save(encoder.state_dict(), tmp_path / "encoder.pt")
    restored = BCAEVSEncoder()
    restored.load_state_dict(torch.load(tmp_path / "encoder.pt", weights_only=True))
    coords = track_like(10, seed=7)
    values = log_adc_for(coords)
    with torch.no_grad():
        assert torch.equal(restored(coords, values).probability, encoder(coords, values).probability)


@pytest.mark.skipif(not torch.cuda.is_available(), reason=f"CUDA not available (torch {torch.__version__})")
def test_encoder_on_cuda():
    encoder = trained_like_encoder(seed=8)
    coords = track_like(10, seed=8)
    values = log_adc_for(coords)
    with torch.no_grad():
        cpu = encoder(coords, values)
        gpu = encoder.cuda()(coords.cuda(), values.cuda())
    torch.testing.assert_close(gpu.probability.cpu(), cpu.probability, rtol=1e-5, atol=1e-6)


# --- gate -----------------------------------------------------------------------------------


def probabilities(count=1000, seed=0):
    return torch.rand(count, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("fraction", [0.0, 0.1, 0.333, 0.5, 1.0])
def test_retention_keeps_exact_fraction_per_wedge(fraction):
    p = probabilities(900)
    batch = torch.arange(900) % 3
    keep = hard_gate(p, batch, GateConfig("retention", fraction), VOLUME)
    for item in range(3):
        rows = batch == item
        assert int(keep[rows].sum()) == round(fraction * int(rows.sum()))
        if 0 < fraction < 1:
            assert p[rows & keep].min() >= p[rows & ~keep].max(), "retention must keep the highest p"


def test_random_gate_reproducible_from_seed():
    p = probabilities(5000)
    batch = torch.zeros(5000, dtype=torch.int64)
    first = hard_gate(p, batch, GateConfig("random", seed=42), VOLUME)
    assert torch.equal(first, hard_gate(p, batch, GateConfig("random", seed=42), VOLUME))
    assert not torch.equal(first, hard_gate(p, batch, GateConfig("random", seed=43), VOLUME))
    # Kept with probability p: the kept count is close to sum(p).
    assert abs(int(first.sum()) - float(p.sum())) < 5 * math.sqrt(5000)


def test_random_gate_independent_of_batching():
    p = probabilities(2000)
    batch = (torch.arange(2000) >= 1000).long()
    whole = hard_gate(p, batch, GateConfig("random", seed=5), VOLUME)
    second_alone = hard_gate(p[1000:], torch.zeros(1000, dtype=torch.long), GateConfig("random", seed=5), VOLUME,
                             first_wedge=1)
    assert torch.equal(whole[1000:], second_alone)
    # A single wedge takes a shorter path in hard_gate; it must draw the same thresholds.
    first_alone = hard_gate(p[:1000], torch.zeros(1000, dtype=torch.long), GateConfig("random", seed=5), VOLUME, 1)
    assert torch.equal(whole[:1000], first_alone)


@pytest.mark.parametrize("torch_path", [False, True], ids=["numba", "torch"])
@pytest.mark.parametrize("config,batch_size,wedges", [
    (GateConfig("random", seed=7), 1, 1),
    (GateConfig("random", seed=7), None, 1),
    (GateConfig("random", seed=7), 2, 2),
    (GateConfig("random", seed=7), None, 2),
    (GateConfig("random", seed=7), 1, 2),
    (GateConfig("retention", 0.3), 1, 1),
    (GateConfig("fixed", 0.4), None, 2),
], ids=["random_one_wedge", "random_batch_none", "random_two_wedges", "random_two_wedges_none",
        "random_rows_beyond_batch", "retention", "fixed"])
def test_select_key_points_matches_gate_and_indexing(monkeypatch, torch_path, config, batch_size, wedges):
    monkeypatch.setattr(capabilities, "FORCE_TORCH_PATH", torch_path)
    rows = 3000
    hidden = torch.rand(rows, 2, generator=torch.Generator().manual_seed(8))
    coords = torch.randint(0, 100, (rows, 4), dtype=torch.int32, generator=torch.Generator().manual_seed(9))
    coords[:, 0] = torch.arange(rows) * wedges // rows
    keep, kept_coords, kept_values = select_key_points(hidden[:, 0], hidden[:, 1], coords, config, VOLUME, batch_size,
                                                       first_wedge=3)
    expected = hard_gate(hidden[:, 0], coords[:, 0], config, VOLUME, batch_size, first_wedge=3)
    assert torch.equal(keep, expected)
    assert torch.equal(kept_coords, coords[expected])
    assert torch.equal(kept_values, hidden[:, 1][expected])


@pytest.mark.parametrize("batch_size", [4, None, np.int64(4)], ids=["int", "none", "numpy_int"])
def test_select_key_points_shuffled_batch_with_empty_wedge(batch_size):
    # Rows of three wedges out of four (wedge 2 has none), in random order: each wedge's rows
    # still take its thresholds in row order.
    rows = 2000
    hidden = torch.rand(rows, 2, generator=torch.Generator().manual_seed(10))
    coords = torch.randint(0, 100, (rows, 4), dtype=torch.int32, generator=torch.Generator().manual_seed(11))
    coords[:, 0] = torch.tensor([0, 1, 3], dtype=torch.int32)[torch.arange(rows) % 3]
    order = torch.randperm(rows, generator=torch.Generator().manual_seed(12))
    coords, hidden = coords[order].contiguous(), hidden[order].contiguous()
    config = GateConfig("random", seed=13)
    keep, kept_coords, kept_values = select_key_points(hidden[:, 0], hidden[:, 1], coords, config, VOLUME, batch_size,
                                                       first_wedge=5)
    expected = hard_gate(hidden[:, 0], coords[:, 0], config, VOLUME, 4, first_wedge=5)
    assert torch.equal(keep, expected)
    assert torch.equal(kept_coords, coords[expected])
    assert torch.equal(kept_values, hidden[:, 1][expected])


@pytest.mark.parametrize("batch_size", [3, np.int64(3), np.int32(3)], ids=["int", "int64", "int32"])
def test_select_key_points_integer_batch_size_one_call(monkeypatch, batch_size):
    # Any integer batch size takes the single numba call, never hard_gate.
    import sparsecodec.model.gate as gate

    monkeypatch.setattr(capabilities, "FORCE_TORCH_PATH", False)
    monkeypatch.setattr(gate, "hard_gate", lambda *args, **kwargs: pytest.fail("hard_gate was called"))
    hidden = torch.rand(300, 2, generator=torch.Generator().manual_seed(14))
    coords = torch.randint(0, 100, (300, 4), dtype=torch.int32, generator=torch.Generator().manual_seed(15))
    coords[:, 0] = torch.arange(300, dtype=torch.int32) % 3
    keep, kept_coords, _ = select_key_points(hidden[:, 0], hidden[:, 1], coords, GateConfig("random", seed=16),
                                             VOLUME, batch_size)
    assert keep.shape == (300,)
    assert torch.equal(kept_coords, coords[keep])


def test_fixed_gate_monotonic_in_threshold():
    p = probabilities(3000)
    batch = torch.zeros(3000, dtype=torch.long)
    counts = [int(hard_gate(p, batch, GateConfig("fixed", theta), VOLUME).sum()) for theta in (0.0, 0.2, 0.5, 0.8, 0.99)]
    assert counts == sorted(counts, reverse=True)
    assert counts[0] == 3000


def test_ratio_gate_reaches_target():
    occupancy = 0.1
    count = round(occupancy * VOLUME)
    p = probabilities(count)
    keep = hard_gate(p, torch.zeros(count, dtype=torch.long), GateConfig("ratio", 20.0), VOLUME)
    achieved = paper_compression_ratio(occupancy, int(keep.sum()) / count)
    assert achieved == pytest.approx(20.0, rel=1e-3)


def test_ratio_formula_by_hand():
    # 10 % occupancy, half of the signal kept: C = 4 / (9 * 0.1 * 0.5) = 8.888...
    assert paper_compression_ratio(0.1, 0.5) == pytest.approx(80 / 9)
    assert kept_fraction_for_ratio(80 / 9, 0.1) == pytest.approx(0.5)
    assert kept_fraction_for_ratio(0.5, 0.5) == 1.0, "a ratio below reach keeps everything"


@pytest.mark.parametrize("mode, value, message", [
    ("fixed", 1.5, r"in \[0, 1\)"),
    ("retention", -0.1, r"in \[0, 1\]"),
    ("ratio", 0, "positive"),
    ("random", 0.5, "takes no value"),
    ("fixed", None, "needs a numeric value"),
    ("median", None, "must be one of random, fixed, retention, ratio"),
])
def test_gate_config_rejects(mode, value, message):
    with pytest.raises(ValueError, match=message):
        GateConfig(mode, value)


# --- decoders and the whole model -----------------------------------------------------------


def test_decoder_shapes_and_heads():
    model = BCAEVS(padding_mode="zeros", batch_norm=False).eval()
    coords = torch.tensor([[0, 1, 2, 3], [1, 4, 5, 6]], dtype=torch.int32)
    with torch.no_grad():
        decoded = model.decode(coords, torch.tensor([0.5, 0.7]), batch_size=2, spatial_shape=(8, 10, 12))
    assert decoded.regression.shape == (2, 8, 10, 12)
    assert decoded.segmentation.shape == (2, 8, 10, 12)
    assert float(decoded.segmentation.min()) >= 0.0 and float(decoded.segmentation.max()) <= 1.0
    assert sum(p.numel() for p in model.regression.parameters()) == sum(p.numel() for p in model.segmentation.parameters())
    channels = [block.conv.out_channels for block in model.regression.blocks]
    assert channels == [16, 16, 16, 8, 8, 8, 4, 2]


def test_reconstruct_rule_by_hand():
    regression = torch.tensor([7.0, 7.0, 5.9, 6.0, -1.0])
    segmentation = torch.tensor([0.9, 0.4, 0.9, 0.51, 0.9])
    assert reconstruct(regression, segmentation).tolist() == [7.0, 0.0, 0.0, 6.0, 0.0]


def test_encode_then_decode():
    model = BCAEVS(backend="native").eval()
    coords = batch_of(track_like(10, seed=1), track_like(10, seed=2))
    with torch.no_grad():
        keys = model.encode(coords, log_adc_for(coords), GateConfig("retention", 0.25))
        decoded = model.decode(keys.coords, keys.values.half(), batch_size=2, spatial_shape=WEDGE_SHAPE)
    assert keys.coords.shape[0] == int(keys.keep.sum())
    assert keys.coords.dtype == torch.int32
    assert decoded.reconstruction.shape == (2,) + WEDGE_SHAPE


def test_soft_forward_has_gradients():
    model = BCAEVS(backend="native")
    shape = (16, 24, 32)
    coords = at_occupancy(0.05, shape, seed=9)
    output = model(coords, log_adc_for(coords), generator=torch.Generator().manual_seed(0), spatial_shape=shape)
    assert output.regression.shape == (1,) + shape
    loss = output.regression.abs().mean() + output.encoded.probability.mean()
    loss.backward()
    assert all(conv.weight.grad is not None and conv.weight.grad.abs().sum() > 0 for conv in model.encoder.convs)


def test_model_file_round_trip(tmp_path):
    model = BCAEVS()
    path = tmp_path / "model.pt"
    save_model(model, path, name="unit-test", metadata={"seed": 1})
    restored, name, metadata = load_model(path)
    assert name == "unit-test"
    assert metadata == {"seed": 1}
    assert weights_hash(restored) == weights_hash(model)
    assert not list(tmp_path.glob(".*.tmp")), "no temporary file may remain"


def test_model_file_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="model file not found"):
        load_model(tmp_path / "missing.pt")
    broken = tmp_path / "broken.pt"
    broken.write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="cannot read"):
        load_model(broken)
    other = tmp_path / "other.pt"
    torch.save({"weights": torch.zeros(3)}, other)
    with pytest.raises(ValueError, match="neither a sparsecodec model file"):
        load_model(other)


def test_public_names_importable():
    assert sparsecodec.BCAEVSEncoder is BCAEVSEncoder
    assert sparsecodec.GateConfig is GateConfig

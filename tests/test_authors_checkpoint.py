"""The mapping of the BCAE-VS authors' published checkpoint into this project's layout."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

import sparsecodec.backends as backends
from sparsecodec.data import simulate_wedges
from sparsecodec.model import BCAEVS, BCAEVSEncoder, GateConfig, load_model
from sparsecodec.model.authors_checkpoint import (
    ENCODER_KEYS,
    canonical_to_minkowski_kernel,
    convert_state_dict,
    minkowski_kernel_to_canonical,
)

CHECKPOINT = Path(__file__).resolve().parents[1].parent / "shared" / "reference" / "bcae-vs-authors" / "model_last.pth"
needs_checkpoint = pytest.mark.skipif(not CHECKPOINT.is_file(), reason=f"authors' checkpoint not found at {CHECKPOINT}")


@pytest.fixture(scope="module")
def raw_state():
    return torch.load(CHECKPOINT, map_location="cpu", weights_only=True)


@pytest.fixture(scope="module")
def crop():
    """A central Au+Au wedge cut to (16, 64, 100) sites, with its sparse form in log ADC."""
    adc = simulate_wedges("auau-central-170khz", count=1, seed=3)[0][:, 32:96, 60:160]
    sites = np.nonzero(adc)
    coords = np.stack([np.zeros_like(sites[0]), *sites], axis=1).astype(np.int32)
    log_adc = np.log2(adc[sites].astype(np.float32) + 1)
    truth = torch.as_tensor(np.log2(adc.astype(np.float32) + 1))
    return torch.as_tensor(coords), torch.as_tensor(log_adc), truth


def test_kernel_conversion_round_trip():
    kernel = torch.randn(27, 2, 3)
    assert torch.equal(canonical_to_minkowski_kernel(minkowski_kernel_to_canonical(kernel)), kernel)


def test_kernel_conversion_by_hand():
    # MinkowskiEngine index k = (o_azimuth + 1) + 3 (o_time + 1) + 9 (o_layer + 1).
    kernel = torch.zeros(27, 1, 1)
    kernel[1 + 3 * 2 + 9 * 0, 0, 0] = 1.0  # azimuth 0, time +1, layer -1
    weight = minkowski_kernel_to_canonical(kernel)
    assert weight.shape == (1, 1, 3, 3, 3)
    assert weight[0, 0, 0, 1, 2] == 1.0  # (layer -1, azimuth 0, time +1)
    assert weight.sum() == 1.0


@needs_checkpoint
def test_checkpoint_loads(raw_state):
    model = BCAEVS.from_authors_checkpoint(CHECKPOINT)
    assert sum(p.numel() for p in model.encoder.parameters()) == 382
    assert not model.training
    assert tuple(model.regression.blocks[0].conv.weight.shape) == (16, 1, 3, 3, 3)
    loaded, name, _ = load_model(CHECKPOINT)
    assert name == "bcae-vs-authors"
    for key, value in model.state_dict().items():
        assert torch.equal(loaded.state_dict()[key], value), key


def test_converter_rejects_other_files():
    with pytest.raises(ValueError, match="missing encoder.model.0.kernel"):
        convert_state_dict({"weight": torch.zeros(1)})
    with pytest.raises(TypeError, match="state_dict"):
        convert_state_dict([1, 2])


def reconstruction_scores(raw_state, crop, encoder_weight):
    """Recall, precision and L1 (log ADC) of the authors' model on the crop, with the encoder
    kernels mapped by ``encoder_weight``."""
    coords, log_adc, truth = crop
    state = convert_state_dict(raw_state)
    for index, key in enumerate(ENCODER_KEYS[:4]):
        state[f"encoder.convs.{index}.weight"] = encoder_weight(raw_state[key])
    model = BCAEVS(backend="native", spatial_shape=tuple(truth.shape))
    model.load_state_dict(state)
    model.eval()
    with torch.no_grad():
        keys = model.encode(coords, log_adc, GateConfig("random", seed=0))
        reconstruction = model.decode(keys.coords, keys.values.half(), batch_size=1).reconstruction[0]
    hits = int(((reconstruction > 0) & (truth > 0)).sum())
    recall = hits / int((truth > 0).sum())
    precision = hits / max(1, int((reconstruction > 0).sum()))
    return recall, precision, float((reconstruction - truth).abs().mean())


@needs_checkpoint
def test_mapping_beats_wrong_orders(raw_state, crop):
    # The decoders were trained on the encoder's values, so only the right offset order and
    # axis permutation of the encoder kernels gives a good reconstruction.
    recall, precision, l1 = reconstruction_scores(raw_state, crop, minkowski_kernel_to_canonical)
    assert recall > 0.9
    assert precision > 0.9

    def c_order(kernel):
        return kernel.reshape(3, 3, 3, *kernel.shape[1:]).permute(4, 3, 2, 0, 1).contiguous()

    wrong = {
        "offsets in C order": c_order,
        "convolution instead of cross-correlation": lambda k: minkowski_kernel_to_canonical(k).flip(2, 3, 4),
        "azimuth and time swapped": lambda k: minkowski_kernel_to_canonical(k).transpose(3, 4).contiguous(),
        "authors' axes taken as (layer, azimuth, time)": lambda k: k.reshape(3, 3, 3, *k.shape[1:]).permute(4, 3, 2, 1, 0),
    }
    for label, mapping in wrong.items():
        _, _, wrong_l1 = reconstruction_scores(raw_state, crop, mapping)
        assert l1 < 0.6 * wrong_l1, f"{label}: L1 {wrong_l1:.4f} is not clearly worse than {l1:.4f}"


def minkowski_reference(raw_state, coords, log_adc):
    """The authors' encoder architecture run directly with MinkowskiEngine on the raw kernels.

    Their coordinates are (batch, azimuth, time, layer); returns p and v in ``coords`` row order.
    """
    from sparsecodec.backends.minkowski_backend import import_minkowski

    engine = import_minkowski()
    layers = []
    for index, dilation in enumerate((1, 2, 4, 2)):
        layers += [engine.MinkowskiConvolution(1 if index == 0 else 2, 2, kernel_size=3, dilation=dilation,
                                               dimension=3), engine.MinkowskiReLU()]
    layers += [engine.MinkowskiConvolution(2, 2, kernel_size=1, dimension=3), engine.MinkowskiSigmoid()]
    network = torch.nn.Sequential(*layers)
    with torch.no_grad():
        for position, key in zip((0, 2, 4, 6, 8), ENCODER_KEYS):
            network[position].kernel.copy_(raw_state[key])

    authors_coords = coords[:, [0, 2, 3, 1]].contiguous()
    with torch.no_grad():
        output = network(engine.SparseTensor(log_adc[:, None], coordinates=authors_coords))
    # Match MinkowskiEngine's output rows to the input rows by coordinate.
    row_of = {tuple(row): index for index, row in enumerate(output.C.tolist())}
    order = torch.tensor([row_of[tuple(row)] for row in authors_coords.tolist()])
    features = output.F[order]
    return features[:, 0], features[:, 1]


@needs_checkpoint
@pytest.mark.skipif(backends.status("minkowski") != "ok", reason=f"MinkowskiEngine: {backends.status('minkowski')}")
def test_matches_minkowski_engine_on_every_backend(raw_state):
    wedges = simulate_wedges("auau-central-170khz", count=2, seed=5)
    parts = []
    for index, adc in enumerate(wedges):
        sites = np.nonzero(adc)
        parts.append(np.stack([np.full_like(sites[0], index), *sites], axis=1))
    coords = torch.as_tensor(np.concatenate(parts).astype(np.int32))
    log_adc = torch.as_tensor(np.concatenate([np.log2(adc[np.nonzero(adc)] + 1.0) for adc in wedges]).astype(np.float32))
    probability, value = minkowski_reference(raw_state, coords, log_adc)

    model = BCAEVS.from_authors_checkpoint(CHECKPOINT)
    for name, status in backends.available().items():
        if status != "ok":
            continue
        encoder = BCAEVSEncoder(backend=name)
        encoder.load_state_dict(model.encoder.state_dict())
        with torch.no_grad():
            output = encoder(coords, log_adc, batch_size=2)
        p_error = (output.probability - probability).abs().max().item()
        v_error = (output.value - value).abs().max().item()
        assert p_error <= 1e-5, f"{name}: p differs from MinkowskiEngine by {p_error:.3g}"
        assert v_error <= 1e-5, f"{name}: v differs from MinkowskiEngine by {v_error:.3g}"

"""Compress and decompress with a real model: stored values are the float16 of the encoder output."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from sparsecodec.codec import CompressedFileReader, FormatError
from sparsecodec.codec import inputs
from sparsecodec.codec.pipeline import (
    adc_from_reconstruction,
    compress_to_file,
    decompress_file,
    open_model,
    resolve_device,
)
from sparsecodec.model import BCAEVS, GateConfig, save_model
from sparsecodec.model.default import NoDefaultModelError, default_model_path, load_default_model
from codec_helpers import SMALL_SHAPE, small_model_file, track_wedge


@pytest.fixture(scope="module")
def codec(tmp_path_factory):
    return open_model(small_model_file(tmp_path_factory.mktemp("model")))


@pytest.fixture(scope="module")
def wedges():
    return [(f"w{seed}", track_wedge(SMALL_SHAPE, tracks=2 + seed, seed=seed)) for seed in range(4)]


def direct_key_points(codec, adc, gate, index):
    """Encode one wedge with the model directly, without the pipeline's batching."""
    coords = np.argwhere(adc)
    batch = torch.from_numpy(np.column_stack([np.zeros(len(coords), np.int64), coords]).astype(np.int32))
    log_adc = torch.log2(torch.from_numpy(adc[adc != 0].astype(np.float32)) + 1)
    with torch.no_grad():
        key_points = codec.model.encode(batch, log_adc, gate, batch_size=1, first_wedge=index)
    return key_points.coords[:, 1:].numpy(), key_points.values.half().numpy()


def by_position(coords, values, shape=SMALL_SHAPE):
    order = np.argsort(np.ravel_multi_index(coords.T.astype(np.int64), shape))
    return coords[order], values[order]


@pytest.mark.parametrize("gate", [GateConfig("random", None, 5), GateConfig("fixed", 0.3),
                                  GateConfig("retention", 0.4), GateConfig("ratio", 20.0)],
                         ids=lambda gate: gate.mode)
def test_stored_values_are_float16_of_encoder(codec, wedges, gate, tmp_path):
    path = tmp_path / "out.scz"
    compress_to_file(codec, wedges, path, gate, batch_size=3)
    with CompressedFileReader(path) as reader:
        records = [record for _, record in reader.records()]
        assert reader.header.model_sha256 == codec.sha256
        assert (reader.header.gate_mode, reader.header.gate_value, reader.header.gate_seed) == \
            (gate.mode, gate.value, gate.seed)
        assert reader.header.wedge_shape == SMALL_SHAPE

    assert [record.wedge_id for record in records] == [wedge_id for wedge_id, _ in wedges]
    for index, ((_, adc), record) in enumerate(zip(wedges, records)):
        coords, values = by_position(*direct_key_points(codec, adc, gate, index))
        assert record.signal_count == np.count_nonzero(adc)
        np.testing.assert_array_equal(record.coords, coords)
        np.testing.assert_array_equal(record.values.view(np.uint16), values.view(np.uint16))


def test_retention_keeps_requested_fraction(codec, wedges, tmp_path):
    path = tmp_path / "out.scz"
    infos = compress_to_file(codec, wedges, path, GateConfig("retention", 0.25))
    for info in infos:
        assert info.kept_count == round(0.25 * info.signal_count)


def test_batch_size_does_not_change_file_content(codec, wedges, tmp_path):
    gate = GateConfig("random", None, 9)
    contents = []
    for batch_size in (1, 4):
        path = tmp_path / f"batch{batch_size}.scz"
        compress_to_file(codec, wedges, path, gate, batch_size=batch_size)
        contents.append(path.read_bytes())
    assert contents[0] == contents[1]


def test_decompress_equals_direct_decode(codec, wedges, tmp_path):
    gate = GateConfig("random", None, 1)
    path = tmp_path / "out.scz"
    compress_to_file(codec, wedges, path, gate)
    decoded = list(decompress_file(codec, path, batch_size=2))
    assert len(decoded) == len(wedges)
    for index, ((_, adc), (info, reconstruction)) in enumerate(zip(wedges, decoded)):
        coords, values = direct_key_points(codec, adc, gate, index)
        batch = torch.from_numpy(np.column_stack([np.zeros(len(coords), np.int64), coords]).astype(np.int32))
        with torch.no_grad():
            expected = codec.model.decode(batch, torch.from_numpy(values).float(), 1, SMALL_SHAPE).reconstruction[0]
        assert info.index == index
        assert reconstruction.shape == SMALL_SHAPE
        # Batches of 2 and 1 take different convolution paths, so float32 sums differ slightly.
        np.testing.assert_allclose(reconstruction, expected.numpy(), rtol=0, atol=1e-4)


def test_decompress_with_other_model_raises(codec, wedges, tmp_path):
    path = tmp_path / "out.scz"
    compress_to_file(codec, wedges[:1], path, GateConfig())
    other = codec.model.__class__(spatial_shape=SMALL_SHAPE)
    other_path = tmp_path / "other.pt"
    save_model(other, other_path, "untrained")
    with pytest.raises(ValueError, match="compressed with model 'bcae-vs-authors-small'"):
        list(decompress_file(open_model(other_path), path))


def test_decompress_with_other_wedge_shape_raises(codec, wedges, tmp_path):
    path = tmp_path / "out.scz"
    compress_to_file(codec, wedges[:1], path, GateConfig())
    bigger = codec.model.__class__(spatial_shape=(4, 12, 20))
    bigger.load_state_dict(codec.model.state_dict())
    bigger_path = tmp_path / "bigger.pt"
    save_model(bigger, bigger_path, "bigger")
    with pytest.raises(ValueError, match=r"wedges of shape \(4, 12, 16\), but the model decodes \(4, 12, 20\)"):
        list(decompress_file(open_model(bigger_path), path))


def test_empty_wedge_round_trips(codec, tmp_path):
    path = tmp_path / "empty.scz"
    infos = compress_to_file(codec, [("blank", np.zeros(SMALL_SHAPE, np.uint16))], path, GateConfig())
    assert (infos[0].signal_count, infos[0].kept_count) == (0, 0)
    (info, reconstruction), = decompress_file(codec, path)
    assert reconstruction.shape == SMALL_SHAPE


def test_empty_input_raises_and_writes_nothing(codec, tmp_path):
    path = tmp_path / "none.scz"
    with pytest.raises(ValueError, match="input is empty"):
        compress_to_file(codec, [], path, GateConfig())
    assert list(tmp_path.iterdir()) == []


def test_wrong_wedge_shape_raises_and_writes_nothing(codec, wedges, tmp_path):
    path = tmp_path / "shape.scz"
    with pytest.raises(ValueError, match=r"wedge 'bad' has shape \(16, 192, 249\), but the model takes \(4, 12, 16\)"):
        compress_to_file(codec, wedges[:2] + [("bad", np.zeros((16, 192, 249), np.uint16))], path, GateConfig())
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("adc, error, message", [
    (np.full(SMALL_SHAPE, 1024, np.int32), ValueError, "0..1023"),
    (np.full(SMALL_SHAPE, np.nan), ValueError, "finite"),
    (np.full(SMALL_SHAPE, 80.5), ValueError, "whole numbers"),
    (np.full(SMALL_SHAPE, -1, np.int16), ValueError, "0..1023"),
    (np.zeros(SMALL_SHAPE, bool), TypeError, "dtype"),
])
def test_invalid_adc_raises(codec, tmp_path, adc, error, message):
    with pytest.raises(error, match=message):
        compress_to_file(codec, [("bad", adc)], tmp_path / "bad.scz", GateConfig())
    assert not (tmp_path / "bad.scz").exists()


def test_duplicate_wedge_id_raises(codec, wedges, tmp_path):
    with pytest.raises(ValueError, match="occurs twice"):
        compress_to_file(codec, [wedges[0], wedges[0]], tmp_path / "dup.scz", GateConfig())


def test_batch_size_below_one_raises(codec, wedges, tmp_path):
    with pytest.raises(ValueError, match="batch size must be at least 1"):
        compress_to_file(codec, wedges, tmp_path / "x.scz", GateConfig(), batch_size=0)


def test_damaged_file_raises_before_decoding(codec, wedges, tmp_path):
    path = tmp_path / "out.scz"
    compress_to_file(codec, wedges, path, GateConfig())
    data = bytearray(path.read_bytes())
    data[-30] ^= 0x10
    path.write_bytes(bytes(data))
    with pytest.raises(FormatError, match="record 3"):
        list(decompress_file(codec, path))


def test_adc_from_reconstruction_rounds_and_clips():
    log_adc = np.array([0.0, 6.0, 7.5, 10.0, 12.0, -1.0])
    np.testing.assert_array_equal(adc_from_reconstruction(log_adc), [0, 63, 180, 1023, 1023, 0])


def test_resolve_device_defaults_to_cpu():
    assert resolve_device(None) == torch.device("cpu")
    assert resolve_device("cpu") == torch.device("cpu")


@pytest.mark.skipif(torch.cuda.is_available(), reason="CUDA is available here, so no error is expected")
def test_resolve_device_cuda_without_gpu_raises():
    with pytest.raises(ValueError, match="sees no CUDA GPU here; use --device cpu"):
        resolve_device("cuda")


@pytest.mark.parametrize("device", ["gpu", "mps", "cuda:x"])
def test_resolve_device_rejects_unknown(device):
    with pytest.raises(ValueError, match="device"):
        resolve_device(device)


def test_default_model_missing_or_loadable():
    if default_model_path().is_file():
        model, name, _ = load_default_model()
        assert name
        assert model.spatial_shape == (16, 192, 249)
    else:
        with pytest.raises(NoDefaultModelError, match="no default model is shipped.*--model PATH"):
            load_default_model()


def test_default_model_loads_when_shipped(tmp_path, monkeypatch):
    import sparsecodec.model.default as default

    shipped = tmp_path / "weights" / default.DEFAULT_MODEL_FILE
    save_model(BCAEVS(), shipped, "shipped-default", {"trained_on": "tests"})
    monkeypatch.setattr(default, "default_model_path", lambda: shipped)
    model, name, metadata = default.load_default_model()
    assert name == "shipped-default"
    assert metadata == {"trained_on": "tests"}
    assert open_model().name == "shipped-default"


def test_open_model_without_path_uses_default():
    if default_model_path().is_file():
        assert open_model().name
    else:
        with pytest.raises(FileNotFoundError, match="no default model"):
            open_model()


def test_output_path_of_public_and_other_ids():
    assert str(inputs.output_path_of("0-3-1-11")) == "12-2_11-1/AuAu200_170kHz_10C_Iter2_0.xml_TPCMLDataInterface_3.npy"
    assert str(inputs.output_path_of("runs/a.npy")) == "runs/a.npy"
    assert str(inputs.output_path_of("plain")) == "plain.npy"
    assert str(inputs.output_path_of("a//b")) == "a/b.npy"
    for bad in ("../escape", "/abs/path", "a/../b", ".", "tab\there"):
        with pytest.raises(ValueError, match="wedge id"):
            inputs.output_path_of(bad)


def test_from_paths_reads_files_and_folders(tmp_path):
    first, second = track_wedge(SMALL_SHAPE, seed=1), track_wedge(SMALL_SHAPE, seed=2)
    inputs.save_wedge_file(tmp_path / "data" / "a.npy", first)
    inputs.save_wedge_file(tmp_path / "data" / "sub" / "b.npy", second)
    assert np.load(tmp_path / "data" / "a.npy").shape == (12, 16, 4)

    source = inputs.from_paths([tmp_path / "data"], SMALL_SHAPE)
    read = list(source)
    assert len(source) == 2
    assert [wedge_id for wedge_id, _ in read] == ["a.npy", "sub/b.npy"]
    np.testing.assert_array_equal(read[1][1], second)
    assert [wedge_id for wedge_id, _ in source] == ["a.npy", "sub/b.npy"]

    single = inputs.from_paths([tmp_path / "data" / "sub" / "b.npy"], SMALL_SHAPE)
    assert [wedge_id for wedge_id, _ in single] == ["b.npy"]


def test_from_paths_uses_manifests(tmp_path):
    from sparsecodec.data.layout import WedgeId
    from sparsecodec.data.reader import save_wedge, write_manifest

    ids = [WedgeId(0, event, 0, 3) for event in range(3)]
    for wedge_id in ids:
        save_wedge(tmp_path / wedge_id.relative_path(), np.zeros((16, 192, 249), np.uint16))
    write_manifest(tmp_path, "train", [tmp_path / ids[0].relative_path()])
    write_manifest(tmp_path, "test", [tmp_path / wedge_id.relative_path() for wedge_id in ids[1:]])

    assert [w for w, _ in inputs.from_paths([tmp_path], (16, 192, 249), "test")] == ["0-1-0-3", "0-2-0-3"]
    assert len(inputs.from_paths([tmp_path], (16, 192, 249), "all")) == 3
    assert len(inputs.from_paths([tmp_path], (16, 192, 249), "train")) == 1


@pytest.mark.parametrize("name, content, error, message", [
    ("missing.npy", None, FileNotFoundError, "input not found"),
    ("wedge.txt", b"text", ValueError, "not a .npy wedge file"),
])
def test_from_paths_rejects_bad_inputs(tmp_path, name, content, error, message):
    if content is not None:
        (tmp_path / name).write_bytes(content)
    with pytest.raises(error, match=message):
        inputs.from_paths([tmp_path / name], SMALL_SHAPE)


def test_from_paths_rejects_duplicate_ids(tmp_path):
    for folder in ("x", "y"):
        inputs.save_wedge_file(tmp_path / folder / "w.npy", track_wedge(SMALL_SHAPE))
    with pytest.raises(ValueError, match="two inputs have the wedge id 'w.npy'"):
        inputs.from_paths([tmp_path / "x" / "w.npy", tmp_path / "y" / "w.npy"], SMALL_SHAPE)


def test_from_paths_rejects_empty_folder(tmp_path):
    with pytest.raises(ValueError, match="no wedge files found"):
        inputs.from_paths([tmp_path], SMALL_SHAPE)


def test_load_wedge_file_checks_shape_and_range(tmp_path):
    np.save(tmp_path / "shape.npy", np.zeros((4, 12, 16), np.uint16))
    with pytest.raises(ValueError, match=r"expected shape \(12, 16, 4\)"):
        inputs.load_wedge_file(tmp_path / "shape.npy", SMALL_SHAPE)
    np.save(tmp_path / "range.npy", np.full((12, 16, 4), 2000, np.int32))
    with pytest.raises(ValueError, match="0..1023"):
        inputs.load_wedge_file(tmp_path / "range.npy", SMALL_SHAPE)


def test_simulated_events_rejects_bad_arguments():
    with pytest.raises(ValueError, match="positive int"):
        inputs.simulated_events(0)
    with pytest.raises(ValueError, match="unknown simulation preset .lead-lead.; choose one of auau-central-170khz"):
        inputs.simulated_events(1, preset="lead-lead")

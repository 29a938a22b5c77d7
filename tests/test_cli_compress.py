"""``sparsecodec compress`` run in-process: outputs, options and one-line errors."""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch

from sparsecodec.cli import main
from sparsecodec.codec import CompressedFileReader
from sparsecodec.model.default import default_model_path
from codec_helpers import SMALL_SHAPE, small_model_file, write_small_wedges


@pytest.fixture(scope="module")
def model_path(tmp_path_factory):
    return small_model_file(tmp_path_factory.mktemp("model"))


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    folder = tmp_path_factory.mktemp("data")
    write_small_wedges(folder, 3)
    return folder


def compress(*arguments, quiet=False):
    return main((["-q"] if quiet else []) + ["compress", *map(str, arguments)])


def test_compress_folder_writes_file(model_path, data, tmp_path, capsys):
    output = tmp_path / "out.scz"
    assert compress(data, "-o", output, "--model", model_path, "--seed", 4) == 0
    stdout = capsys.readouterr().out
    assert f"{output}: 3 wedges" in stdout
    assert "bits per kept voxel" in stdout
    with CompressedFileReader(output) as reader:
        infos = list(reader.infos())
        assert reader.header.model_name == "bcae-vs-authors-small"
        assert reader.header.gate_seed == 4
        assert reader.header.metadata["backend"] in ("native", "spconv", "dense", "minkowski", "torchsparse")
    assert [info.wedge_id for info in infos] == ["wedge0.npy", "wedge1.npy", "wedge2.npy"]


def test_compress_existing_output_needs_force(model_path, data, tmp_path, capsys):
    output = tmp_path / "out.scz"
    output.write_bytes(b"old")
    assert compress(data, "-o", output, "--model", model_path) == 1
    assert "exists; pass --force" in capsys.readouterr().err
    assert output.read_bytes() == b"old"
    assert compress(data, "-o", output, "--model", model_path, "--force") == 0
    assert output.read_bytes() != b"old"


def test_compress_gate_and_coding_options(model_path, data, tmp_path):
    output = tmp_path / "out.scz"
    assert compress(data, "-o", output, "--model", model_path, "--gate", "retention", "--gate-value", 0.5,
                    "--coordinate-coding", "bitpacked", "--value-coding", "raw", "--limit", 2) == 0
    with CompressedFileReader(output) as reader:
        infos = list(reader.infos())
        assert (reader.header.gate_mode, reader.header.gate_value) == ("retention", 0.5)
    assert len(infos) == 2
    for info in infos:
        assert info.kept_count == round(0.5 * info.signal_count)
        assert (info.coordinate_coding, info.value_coding) == ("bitpacked", "raw")
        assert info.coordinate_bytes == (info.kept_count * 10 + 7) // 8  # 2 + 4 + 4 bits per voxel


def test_compress_batch_size_gives_same_file(model_path, data, tmp_path):
    for batch_size in (1, 3):
        assert compress(data, "-o", tmp_path / f"b{batch_size}.scz", "--model", model_path,
                        "--batch-size", batch_size) == 0
    assert (tmp_path / "b1.scz").read_bytes() == (tmp_path / "b3.scz").read_bytes()


@pytest.mark.parametrize("arguments, message", [
    ([], "no input"),
    (["--simulate", "1", "DATA"], "either INPUT files or --simulate"),
    (["DATA", "--gate", "fixed"], "--gate fixed needs --gate-value"),
    (["DATA", "--gate-value", "0.5"], "--gate random takes no --gate-value"),
    (["DATA", "--gate", "fixed", "--gate-value", "1.5"], r"fixed gate threshold must be in \[0, 1\)"),
    (["DATA", "--gate", "ratio", "--gate-value", "-3"], "target compression ratio must be positive"),
    (["DATA", "--batch-size", "0"], "--batch-size must be at least 1"),
    (["DATA", "--limit", "0"], "--limit must be at least 1"),
    (["DATA", "--backend", "nosuch"], "nosuch"),
    (["DATA", "--device", "tpu"], "invalid device 'tpu'"),
    (["--simulate", "1"], r"--simulate makes wedges of shape \(16, 192, 249\)"),
])
def test_compress_errors_are_one_line(model_path, data, tmp_path, capsys, arguments, message):
    arguments = [str(data) if argument == "DATA" else argument for argument in arguments]
    output = tmp_path / "out.scz"
    assert compress(*arguments, "-o", output, "--model", model_path, quiet=True) == 1
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1, err
    assert err.startswith("ERROR: ")
    assert re.search(message, err), err
    assert not output.exists()


@pytest.mark.skipif(torch.cuda.is_available(), reason="CUDA is available here, so --device cuda is valid")
def test_compress_cuda_without_gpu_fails(model_path, data, tmp_path, capsys):
    assert compress(data, "-o", tmp_path / "out.scz", "--model", model_path, "--device", "cuda") == 1
    assert "sees no CUDA GPU here; use --device cpu" in capsys.readouterr().err


def test_compress_wrong_wedge_shape_fails_without_output(model_path, tmp_path, capsys):
    np.save(tmp_path / "big.npy", np.zeros((192, 249, 16), np.uint16))
    assert compress(tmp_path / "big.npy", "-o", tmp_path / "out.scz", "--model", model_path) == 1
    assert "expected shape (12, 16, 4)" in capsys.readouterr().err
    assert not (tmp_path / "out.scz").exists()


def test_compress_adc_out_of_range_fails(model_path, tmp_path, capsys):
    np.save(tmp_path / "hot.npy", np.full((12, 16, 4), 4000, np.uint16))
    assert compress(tmp_path / "hot.npy", "-o", tmp_path / "out.scz", "--model", model_path) == 1
    assert "0..1023" in capsys.readouterr().err


def test_compress_unwritable_output_fails(model_path, data, tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    assert compress(data, "-o", blocker / "out.scz", "--model", model_path, quiet=True) == 1
    assert capsys.readouterr().err == f"ERROR: cannot write output {blocker / 'out.scz'}: {blocker} is a file, not a folder\n"


def test_compress_bad_model_file_fails(data, tmp_path, capsys):
    bad = tmp_path / "model.pt"
    bad.write_bytes(b"not a model")
    assert compress(data, "-o", tmp_path / "out.scz", "--model", bad) == 1
    assert "cannot read" in capsys.readouterr().err


@pytest.mark.skipif(default_model_path().is_file(), reason="a default model is shipped, so no error is expected")
def test_compress_without_default_model_explains(data, tmp_path, capsys):
    assert compress(data, "-o", tmp_path / "out.scz") == 1
    assert "no default model is shipped with this sparsecodec yet" in capsys.readouterr().err


@pytest.mark.parametrize("command", ["compress", "decompress", "evaluate", "info"])
def test_help_describes_every_option(command, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main([command, "--help"])
    assert exit_info.value.code == 0
    text = capsys.readouterr().out
    assert "usage: sparsecodec " + command in text
    if command in ("compress", "evaluate"):
        for option in ("--model", "--backend", "--device", "--gate", "--gate-value", "--seed", "--simulate"):
            assert option in text
        assert "threshold theta" in text

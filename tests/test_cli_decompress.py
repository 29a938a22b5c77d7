"""``sparsecodec decompress`` run in-process: wedge files, damaged input and overwrite rules."""

from __future__ import annotations

import struct

import numpy as np
import pytest

from sparsecodec.cli import main
from sparsecodec.codec import CompressedFileReader
from sparsecodec.codec.pipeline import adc_from_reconstruction, decompress_file, open_model
from sparsecodec.model import BCAEVS, save_model
from codec_helpers import SMALL_SHAPE, small_model_file, write_small_wedges


@pytest.fixture(scope="module")
def model_path(tmp_path_factory):
    return small_model_file(tmp_path_factory.mktemp("model"))


@pytest.fixture(scope="module")
def compressed(tmp_path_factory, model_path):
    folder = tmp_path_factory.mktemp("compressed")
    write_small_wedges(folder / "data", 4)
    path = folder / "wedges.scz"
    assert main(["-q", "compress", str(folder / "data"), "-o", str(path), "--model", str(model_path)]) == 0
    return path


def decompress(*arguments):
    return main(["-q", "decompress", *map(str, arguments)])


def test_decompress_writes_public_layout_npy(model_path, compressed, tmp_path, capsys):
    output = tmp_path / "out"
    assert decompress(compressed, "-o", output, "--model", model_path) == 0
    assert f"wrote 4 wedges to {output}" in capsys.readouterr().out
    assert sorted(path.name for path in output.iterdir()) == [f"wedge{number}.npy" for number in range(4)]

    expected = list(decompress_file(open_model(model_path), compressed))
    for info, reconstruction in expected:
        stored = np.load(output / info.wedge_id)
        assert stored.dtype == np.uint16
        assert stored.shape == (SMALL_SHAPE[1], SMALL_SHAPE[2], SMALL_SHAPE[0])
        np.testing.assert_array_equal(stored.transpose(2, 0, 1), adc_from_reconstruction(reconstruction))
    assert not [path for path in tmp_path.iterdir() if path.name.startswith(".")]


def test_decompressed_folder_compresses_again(model_path, compressed, tmp_path):
    output = tmp_path / "out"
    assert decompress(compressed, "-o", output, "--model", model_path) == 0
    assert main(["-q", "compress", str(output), "-o", str(tmp_path / "again.scz"), "--model", str(model_path)]) == 0
    assert len(list(CompressedFileReader(tmp_path / "again.scz").infos())) == 4


def test_decompress_existing_files_need_force(model_path, compressed, tmp_path, capsys):
    output = tmp_path / "out"
    output.mkdir()
    (output / "wedge2.npy").write_bytes(b"keep")
    assert decompress(compressed, "-o", output, "--model", model_path) == 1
    assert "wedge2.npy exists (1 in all); pass --force" in capsys.readouterr().err
    assert [path.name for path in output.iterdir()] == ["wedge2.npy"]
    assert decompress(compressed, "-o", output, "--model", model_path, "--force") == 0
    assert np.load(output / "wedge2.npy").dtype == np.uint16


def damage_record(source, target, index):
    with CompressedFileReader(source) as reader:
        info = list(reader.infos())[index]
    data = bytearray(source.read_bytes())
    data[info.offset + info.record_bytes - 6] ^= 0x55
    target.write_bytes(bytes(data))


def test_decompress_damaged_file_writes_nothing(model_path, compressed, tmp_path, capsys):
    damaged = tmp_path / "damaged.scz"
    damage_record(compressed, damaged, 2)
    output = tmp_path / "out"
    assert decompress(damaged, "-o", output, "--model", model_path) == 1
    err = capsys.readouterr().err
    assert "record 2 (wedge id 'wedge2.npy', unverified)" in err
    assert "checksum mismatch" in err
    assert not output.exists()
    assert list(tmp_path.iterdir()) == [damaged]


def test_decompress_skip_damaged_recovers_the_rest(model_path, compressed, tmp_path, capsys):
    damaged = tmp_path / "damaged.scz"
    damage_record(compressed, damaged, 1)
    output = tmp_path / "out"
    assert decompress(damaged, "-o", output, "--model", model_path, "--skip-damaged") == 3
    captured = capsys.readouterr()
    assert "skipped damaged record 1 (wedge id 'wedge1.npy', unverified)" in captured.err
    assert "wrote 3 wedges" in captured.out
    assert sorted(path.name for path in output.iterdir()) == ["wedge0.npy", "wedge2.npy", "wedge3.npy"]


def test_decompress_skip_damaged_truncated_file(model_path, compressed, tmp_path, capsys):
    cut = tmp_path / "cut.scz"
    with CompressedFileReader(compressed) as reader:
        last = list(reader.infos())[-1]
    cut.write_bytes(compressed.read_bytes()[:last.offset + 10])
    assert decompress(cut, "-o", tmp_path / "out", "--model", model_path) == 1
    assert "cut short" in capsys.readouterr().err
    assert decompress(cut, "-o", tmp_path / "out", "--model", model_path, "--skip-damaged") == 3
    assert "from record 3 on" in capsys.readouterr().err
    assert len(list((tmp_path / "out").iterdir())) == 3


def test_decompress_other_model_fails(compressed, tmp_path, capsys):
    other = tmp_path / "other.pt"
    save_model(BCAEVS(spatial_shape=SMALL_SHAPE), other, "untrained")
    assert decompress(compressed, "-o", tmp_path / "out", "--model", other) == 1
    assert "compressed with model 'bcae-vs-authors-small'" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_decompress_newer_version_fails(model_path, compressed, tmp_path, capsys):
    newer = tmp_path / "newer.scz"
    data = bytearray(compressed.read_bytes())
    data[8:10] = struct.pack("<H", 2)
    newer.write_bytes(bytes(data))
    assert decompress(newer, "-o", tmp_path / "out", "--model", model_path) == 1
    assert "format version 2, newer than this sparsecodec reads (1)" in capsys.readouterr().err


@pytest.mark.parametrize("content, message", [
    (b"", "wrong magic"),
    (b"\x93NUMPY\x01\x00", "not a sparsecodec compressed file"),
])
def test_decompress_not_a_compressed_file(model_path, tmp_path, capsys, content, message):
    path = tmp_path / "input.scz"
    path.write_bytes(content)
    assert decompress(path, "-o", tmp_path / "out", "--model", model_path) == 1
    assert message in capsys.readouterr().err


def test_decompress_missing_file(model_path, tmp_path, capsys):
    missing = tmp_path / "missing.scz"
    assert decompress(missing, "-o", tmp_path / "out", "--model", model_path) == 1
    assert f"ERROR: file not found: {missing}" in capsys.readouterr().err


def test_decompress_output_is_a_file(model_path, compressed, tmp_path, capsys):
    (tmp_path / "out").write_text("file")
    assert decompress(compressed, "-o", tmp_path / "out", "--model", model_path) == 1
    assert "is not a folder" in capsys.readouterr().err

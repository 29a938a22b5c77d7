"""``sparsecodec info`` run in-process: header and per-wedge lines without a model."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from sparsecodec.cli import main
from codec_helpers import write_sample_file


@pytest.fixture
def sample(tmp_path):
    path = tmp_path / "sample.scz"
    write_sample_file(path, counts=(0, 2, 700), gate_mode="fixed", gate_value=0.25, gate_seed=3,
                      metadata={"backend": "native"})
    return path


def test_info_prints_header_and_records(sample, capsys):
    assert main(["info", str(sample)]) == 0
    out = capsys.readouterr().out
    assert "format version 1, complete" in out
    assert f"weights sha256 {'ab' * 32}" in out
    assert "gate:          fixed=0.25, seed 3" in out
    assert "16 x 192 x 249 (layer, azimuth, time)" in out
    assert "backend:       native" in out
    assert "wedges:        3, 702 of 717 signal voxels kept" in out
    lines = [line.split() for line in out.splitlines() if line.strip().startswith(("0 ", "1 ", "2 "))]
    assert [line[1] for line in lines] == ["0-0-0-0", "0-1-1-1", "0-2-0-2"]
    assert lines[1][5] == "bitpacked"
    assert lines[2][5] == "delta-zstd"


def test_info_json(sample, capsys):
    assert main(["info", str(sample), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["format_version"] == 1
    assert report["header"]["gate"] == {"mode": "fixed", "value": 0.25, "seed": 3}
    assert report["wedges"] == 3
    assert [record["kept_count"] for record in report["records"]] == [0, 2, 700]
    assert report["bytes"] == sample.stat().st_size
    assert sum(record["record_bytes"] for record in report["records"]) < report["bytes"]


def test_python_dash_m_runs_info(sample):
    result = subprocess.run([sys.executable, "-m", "sparsecodec", "info", str(sample)], capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "format version 1, complete" in result.stdout


def test_info_damaged_file_fails(sample, capsys):
    data = bytearray(sample.read_bytes())
    data[-100] ^= 0x01
    sample.write_bytes(bytes(data))
    assert main(["-q", "info", str(sample)]) == 1
    err = capsys.readouterr().err
    assert "record 2" in err
    assert "checksum mismatch" in err


def test_info_truncated_file_fails(sample, capsys):
    sample.write_bytes(sample.read_bytes()[:-20])
    assert main(["-q", "info", str(sample)]) == 1
    assert "without the end trailer; it was cut short" in capsys.readouterr().err


def test_info_skip_damaged_lists_the_intact_records(sample, capsys):
    data = bytearray(sample.read_bytes())
    data[-100] ^= 0x01
    sample.write_bytes(bytes(data))
    assert main(["-q", "info", str(sample), "--skip-damaged"]) == 3
    out = capsys.readouterr().out
    assert "format version 1, damaged" in out
    assert "wedges:        2, 2 of 7 signal voxels kept" in out
    damaged = [line for line in out.splitlines() if line.startswith("damaged:")]
    assert len(damaged) == 1
    assert "record 2" in damaged[0]

    assert main(["-q", "info", str(sample), "--skip-damaged", "--json"]) == 3
    report = json.loads(capsys.readouterr().out)
    assert [record["index"] for record in report["records"]] == [0, 1]
    assert len(report["damaged_regions"]) == 1


def test_info_missing_file(tmp_path, capsys):
    missing = tmp_path / "missing.scz"
    assert main(["info", str(missing)]) == 1
    assert f"ERROR: file not found: {missing}" in capsys.readouterr().err

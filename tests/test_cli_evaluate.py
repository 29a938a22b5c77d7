"""``sparsecodec evaluate`` run in-process: tables, CSV, JSON and plots match an independent recount."""

from __future__ import annotations

import csv
import json
import math

import numpy as np
import pytest

from sparsecodec import metrics
from sparsecodec.cli import main
from sparsecodec.codec import CompressedFileReader
from sparsecodec.codec.evaluation import plot_names
from sparsecodec.codec.pipeline import adc_from_reconstruction, decompress_file, open_model
from codec_helpers import SMALL_SHAPE, require_authors_checkpoint, small_model_file, write_small_wedges

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def model_path(tmp_path_factory):
    return small_model_file(tmp_path_factory.mktemp("model"))


@pytest.fixture(scope="module")
def wedges(tmp_path_factory):
    folder = tmp_path_factory.mktemp("data")
    return folder, write_small_wedges(folder, 3)


@pytest.fixture(scope="module")
def evaluated(tmp_path_factory, model_path, wedges):
    output = tmp_path_factory.mktemp("evaluation") / "results"
    code = main(["-q", "evaluate", str(wedges[0]), "-o", str(output), "--model", str(model_path), "--seed", "2"])
    return code, output


def test_evaluate_exit_code_and_files(evaluated):
    code, output = evaluated
    assert code == 0
    assert (output / "compressed.scz").is_file()
    for name in plot_names():
        assert (output / "plots" / f"{name}_vs_occupancy.png").read_bytes().startswith(PNG_SIGNATURE)
    assert len(list((output / "plots").iterdir())) == len(metrics.METRIC_NAMES) - 1


def test_evaluate_csv_matches_recount(evaluated, model_path, wedges):
    _, output = evaluated
    with open(output / "metrics.csv", newline="") as stream:
        rows = list(csv.DictReader(stream))
    assert [row["wedge_id"] for row in rows] == [wedge_id for wedge_id, _ in wedges[1]]

    # Decode the file again and recompute each metric by hand.
    decoded = decompress_file(open_model(model_path), output / "compressed.scz")
    volume = np.prod(SMALL_SHAPE)
    for row, (_, adc), (info, reconstruction) in zip(rows, wedges[1], decoded):
        truth = np.log2(adc.astype(np.float64) + 1)
        result = np.log2(adc_from_reconstruction(reconstruction).astype(np.float64) + 1)
        signal, found = truth != 0, result != 0
        assert int(row["record_bytes"]) == info.record_bytes
        assert float(row["occupancy"]) == pytest.approx(signal.sum() / volume)
        assert float(row["kept_fraction"]) == pytest.approx(info.kept_count / signal.sum())
        assert float(row["compression_ratio_full"]) == pytest.approx(2 * volume / info.record_bytes)
        assert float(row["compression_ratio_sparse"]) == pytest.approx(signal.sum() * 30 / 8 / info.record_bytes)
        assert float(row["bits_per_kept_voxel"]) == pytest.approx(8 * info.record_bytes / info.kept_count)
        assert float(row["l1"]) == pytest.approx(np.abs(result - truth).mean())
        assert float(row["mse"]) == pytest.approx(((result - truth) ** 2).mean())
        assert float(row["recall"]) == pytest.approx((signal & found).sum() / signal.sum())
        if found.any():
            assert float(row["precision"]) == pytest.approx((signal & found).sum() / found.sum())
        mse = ((result - truth) ** 2).mean()
        assert float(row["psnr"]) == pytest.approx(10 * math.log10(truth.max() ** 2 / mse))


def test_evaluate_json_summary_and_totals(evaluated, model_path):
    _, output = evaluated
    document = json.loads((output / "metrics.json").read_text())
    assert document["context"]["model"]["name"] == "bcae-vs-authors-small"
    assert document["context"]["gate"] == {"mode": "random", "value": None, "seed": 2}
    assert len(document["wedges"]) == 3
    l1 = [row["l1"] for row in document["wedges"]]
    assert document["summary"]["l1"]["mean"] == pytest.approx(np.mean(l1))
    assert document["summary"]["l1"]["count"] == 3

    size = (output / "compressed.scz").stat().st_size
    with CompressedFileReader(output / "compressed.scz") as reader:
        infos = list(reader.infos())
    kept = sum(info.kept_count for info in infos)
    totals = document["file"]
    assert totals["file_bytes"] == size
    assert totals["compression_ratio_full"] == pytest.approx(3 * 2 * np.prod(SMALL_SHAPE) / size)
    assert totals["bits_per_kept_voxel"] == pytest.approx(8 * size / kept)


def test_evaluate_prints_summary_table(model_path, wedges, tmp_path, capsys):
    assert main(["-q", "evaluate", str(wedges[0]), "-o", str(tmp_path / "r"), "--model", str(model_path)]) == 0
    out = capsys.readouterr().out
    for name in metrics.METRIC_NAMES:
        assert f"\n{name} " in out
    assert "file compression ratio vs full 16-bit wedges:" in out
    assert "file compression ratio vs zero-suppressed input:" in out
    assert "(30 bits per non-zero voxel)" in out


def test_evaluate_existing_results_need_force(evaluated, model_path, wedges, capsys):
    _, output = evaluated
    before = (output / "metrics.json").read_bytes()
    assert main(["-q", "evaluate", str(wedges[0]), "-o", str(output), "--model", str(model_path)]) == 1
    assert "exists from an earlier run; pass --force" in capsys.readouterr().err
    assert (output / "metrics.json").read_bytes() == before


def test_evaluate_force_overwrites(model_path, wedges, tmp_path):
    output = tmp_path / "r"
    arguments = ["-q", "evaluate", str(wedges[0]), "-o", str(output), "--model", str(model_path)]
    assert main(arguments) == 0
    assert main(arguments + ["--force", "--gate", "retention", "--gate-value", "0.3"]) == 0
    document = json.loads((output / "metrics.json").read_text())
    assert document["context"]["gate"]["mode"] == "retention"


def test_evaluate_simulated_wedge_with_authors_checkpoint(tmp_path, capsys):
    """One full-size simulated wedge through the published model: the main job of the README."""
    checkpoint = require_authors_checkpoint()
    output = tmp_path / "sim"
    assert main(["-q", "evaluate", "--simulate", "1", "--limit", "1", "--model", str(checkpoint),
                 "-o", str(output)]) == 0
    out = capsys.readouterr().out
    assert "first 1 wedge of 1 simulated auau-central-170khz event (seed 0, 24 wedges each)" in out
    row = json.loads((output / "metrics.json").read_text())["wedges"][0]
    assert row["wedge_id"] == "0-0-0-0"
    assert 0.05 < row["occupancy"] < 0.3
    # BCAE-VS reconstructs most signal of central Au+Au wedges; far lower values mean a broken pipeline.
    assert row["recall"] > 0.8
    assert row["precision"] > 0.8
    assert row["bits_per_kept_voxel"] < 36
    assert row["compression_ratio_full"] > row["paper_compression_ratio"]

"""The ``simulate`` and ``show`` commands, run in-process as a user would."""

from __future__ import annotations

import json

import numpy as np
import pytest

from sparsecodec.cli import main
from sparsecodec.data import TPCDataset, read_occupancy_table


@pytest.fixture(scope="module")
def simulated(tmp_path_factory):
    root = tmp_path_factory.mktemp("cli") / "dataset"
    code = main(["-q", "simulate", "--preset", "pp", "--events", "2", "--seed", "3", "-o", str(root)])
    assert code == 0
    return root


def test_simulate_writes_loadable_dataset(simulated):
    train = TPCDataset(simulated, "train")
    test = TPCDataset(simulated, "test")
    assert len(train) == 24
    assert len(test) == 24
    wedge_id, adc = test[5]
    assert wedge_id == "0-1-0-5"
    assert adc.shape == (16, 192, 249)
    assert len(read_occupancy_table(simulated)) == 48


def test_simulate_json_summary(tmp_path, capsys):
    code = main(
        ["-q", "simulate", "--preset", "pp", "--events", "1", "--extra-noise-adc", "0.5", "--no-eta-cut",
         "--json", "-o", str(tmp_path / "d")]
    )
    assert code == 0
    report = json.loads(capsys.readouterr().out)
    assert report["wedges"] == 24
    assert report["train_wedges"] == 24
    assert report["test_wedges"] == 0
    assert 0 < report["occupancy_min"] <= report["occupancy_mean"] <= report["occupancy_max"] < 0.05
    metadata = json.loads((tmp_path / "d" / "simulation.json").read_text())
    assert metadata["config"]["extra_noise_adc"] == 0.5
    assert metadata["config"]["eta_acceptance_cut"] is False


def test_simulate_refuses_existing_dataset(simulated, capsys):
    code = main(["simulate", "--preset", "pp", "--events", "1", "-o", str(simulated)])
    assert code == 1
    assert "already contains a dataset" in capsys.readouterr().err


def test_simulate_rejects_bad_target(tmp_path, capsys):
    code = main(["simulate", "--occupancy", "0.9", "-o", str(tmp_path / "x")])
    assert code == 1
    assert "target occupancy must be in" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()


def test_show_draws_png(simulated, tmp_path, capsys):
    picture = tmp_path / "wedge.png"
    assert main(["show", str(simulated), "--split", "test", "--wedge", "0-1-1-3", "-o", str(picture)]) == 0
    assert picture.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert picture.stat().st_size > 20_000
    single = tmp_path / "single.png"
    path = next(iter(sorted(simulated.glob("12-2_0-0/*.npy"))))
    assert main(["show", str(path), "-o", str(single)]) == 0
    assert single.read_bytes()[:4] == b"\x89PNG"


def test_show_stats_json(simulated, capsys):
    assert main(["show", str(simulated), "--stats", "--split", "test", "--limit", "4", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["wedges"] == 4
    assert report["min_recorded_adc"] >= 64
    assert sum(report["log_adc_histogram"]["counts"]) > 0
    assert np.isclose(sum(report["log_adc_histogram"]["counts"][:60]), 0)


def test_show_errors(simulated, tmp_path, capsys):
    assert main(["show", str(simulated)]) == 1
    assert "-o/--output PNG file is required" in capsys.readouterr().err
    assert main(["show", str(simulated), "--wedge", "9-9-0-0", "-o", str(tmp_path / "x.png")]) == 1
    assert "is not listed in" in capsys.readouterr().err
    assert main(["show", str(tmp_path / "absent.npy"), "-o", str(tmp_path / "x.png")]) == 1
    assert "wedge file not found" in capsys.readouterr().err


def test_show_empty_split_suggests_other(tmp_path, capsys):
    root = tmp_path / "one-event"
    assert main(["-q", "simulate", "--preset", "pp", "--events", "1", "--seed", "3", "-o", str(root)]) == 0
    assert main(["show", str(root), "--split", "test", "-o", str(tmp_path / "x.png")]) == 1
    assert "test.txt lists no wedges; try --split train" in capsys.readouterr().err

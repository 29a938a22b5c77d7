"""``sparsecodec bench`` and its report: records, ratios, tables and files of a tiny sweep."""

from __future__ import annotations

import json

import pytest
import torch

from sparsecodec.benchmark.floors import MachineRates
from sparsecodec.benchmark.report import markdown_table, native_ratios, select, write_report
from sparsecodec.benchmark.sweep import Record
from sparsecodec.cli import main


def record(backend: str, point: str, batch_size: int, wedges_per_second: float) -> Record:
    seconds = batch_size / wedges_per_second
    return Record(
        backend=backend, version="1", device="cpu", threads=2, dtype="float32", point=point, occupancy=0.01,
        batch_size=batch_size, voxels=1000, seconds=seconds, wedges_per_second=wedges_per_second,
        voxels_per_second=1000 / seconds, kernel_map_seconds=0.001, convolution_seconds=0.003,
        kernel_map_share=0.25, max_error=0.0, floor_seconds=1e-5, repetitions=3,
    )


RECORDS = [
    record("native", "0.01", 1, 800.0),
    record("native", "0.01", 8, 1000.0),
    record("spconv", "0.01", 1, 80.0),
    record("spconv", "0.01", 8, 125.0),
    record("minkowski", "0.01", 1, 50.0),
    record("dense", "0.01", 8, 2000.0),
]


def test_native_ratio_over_fastest_peer():
    # dense is left out of the peers: it is the baseline, not a sparse library.
    assert native_ratios(select(RECORDS, batch_size=1)) == {"0.01": pytest.approx(10.0)}
    assert native_ratios(select(RECORDS, batch_size=None)) == {"0.01": pytest.approx(8.0)}


def test_best_batch_table_names_batch():
    table = markdown_table(RECORDS, None)
    assert "1,000.0 (b8)" in table
    assert "125.0 (b8)" in table
    assert "8.0x" in table


def test_write_report_files(tmp_path):
    rates = MachineRates(matmul_flops=3e11, copy_bandwidth=2.5e10, device="cpu", threads=2)
    table = write_report(RECORDS, rates, tmp_path / "report", ["spconv float32 batch 8 at 0.3"], "sparsecodec bench")
    assert table == tmp_path / "report" / "table.md"
    text = table.read_text()
    assert "10.0x" in text
    assert "Skipped for the time budget: spconv float32 batch 8 at 0.3" in text
    results = json.loads((tmp_path / "report" / "results.json").read_text())
    assert len(results["records"]) == len(RECORDS)
    assert results["skipped"] == ["spconv float32 batch 8 at 0.3"]
    assert "native parallel on" in results["machine"]
    assert (tmp_path / "report" / "throughput.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert sorted(path.name for path in (tmp_path / "report").iterdir()) == ["results.json", "table.md",
                                                                             "throughput.png"]


def test_bench_command_tiny_sweep(tmp_path, capsys):
    # One sparse point, batch 1, native and dense: every case is checked against the float64
    # dense encoder before it is timed, so a wrong backend fails here.
    output = tmp_path / "bench"
    status = main(["bench", "-o", str(output), "--backends", "native,dense", "--occupancies", "0.001",
                   "--no-central-mix", "--batch-sizes", "1", "--min-time", "0.01", "--time-budget", "120"])
    assert status == 0
    results = json.loads((output / "results.json").read_text())
    backends = {item["backend"] for item in results["records"]}
    assert backends == {"native", "dense"}
    for item in results["records"]:
        assert item["max_error"] <= 1e-5
        assert item["wedges_per_second"] > 0
        assert item["voxels"] > 0
        assert item["threads"] == torch.get_num_threads()
    assert "Encoder throughput, batch 1, float32" in capsys.readouterr().out


@pytest.mark.parametrize("arguments,message", [
    (["--occupancies", "0.001,x"], "--occupancies"),
    (["--batch-sizes", "0"], "--batch-sizes values must be positive integers"),
    (["--dtypes", "float8"], "unknown dtype 'float8'"),
], ids=["occupancy", "batch_size", "dtype"])
def test_bench_command_rejects_bad_options(tmp_path, capsys, arguments, message):
    status = main(["bench", "-o", str(tmp_path / "bench"), "--backends", "native"] + arguments)
    assert status != 0
    assert message in capsys.readouterr().err

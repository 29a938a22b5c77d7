"""Metric functions against values computed by hand on tiny arrays."""

from __future__ import annotations

import math

import numpy as np
import pytest

from sparsecodec import metrics

TRUTH = np.array([[0.0, 2.0], [4.0, 0.0]])
# Differences 1, 0, -1, 0: one false positive at (0, 0), both signal voxels found.
RECONSTRUCTION = np.array([[1.0, 2.0], [3.0, 0.0]])
# Differences 0, 0, -4, 5: one signal voxel missed, one false positive at (1, 1).
MISSED = np.array([[0.0, 2.0], [0.0, 5.0]])


def test_log_adc_values():
    np.testing.assert_allclose(metrics.log_adc([0, 1, 3, 1023]), [0.0, 1.0, 2.0, 10.0])


def test_l1_error_by_hand():
    assert metrics.l1_error(RECONSTRUCTION, TRUTH) == pytest.approx(0.5)
    assert metrics.l1_error(MISSED, TRUTH) == pytest.approx(9 / 4)


def test_mean_squared_error_by_hand():
    assert metrics.mean_squared_error(RECONSTRUCTION, TRUTH) == pytest.approx(0.5)
    assert metrics.mean_squared_error(MISSED, TRUTH) == pytest.approx(41 / 4)


def test_psnr_by_hand():
    # max(truth) = 4: 10 log10(16 / 0.5) = 10 log10(32)
    assert metrics.psnr(RECONSTRUCTION, TRUTH) == pytest.approx(15.051499783199059)
    assert metrics.psnr(MISSED, TRUTH) == pytest.approx(10 * math.log10(16 / 10.25))


def test_psnr_authors_divides_by_root_mse():
    # 10 log10(16 / sqrt(0.5)) = 10 log10(22.627...)
    assert metrics.psnr_authors(RECONSTRUCTION, TRUTH) == pytest.approx(13.546349804879296)


def test_psnr_perfect_and_empty():
    assert metrics.psnr(TRUTH, TRUTH) == math.inf
    assert metrics.psnr_authors(TRUTH, TRUTH) == math.inf
    zeros = np.zeros((2, 2))
    assert math.isnan(metrics.psnr(zeros, zeros))
    assert math.isnan(metrics.psnr_authors(RECONSTRUCTION, zeros))


def test_recall_by_hand():
    assert metrics.recall(RECONSTRUCTION, TRUTH) == 1.0
    assert metrics.recall(MISSED, TRUTH) == 0.5
    assert math.isnan(metrics.recall(RECONSTRUCTION, np.zeros((2, 2))))


def test_precision_by_hand():
    assert metrics.precision(RECONSTRUCTION, TRUTH) == pytest.approx(2 / 3)
    assert metrics.precision(MISSED, TRUTH) == 0.5
    assert math.isnan(metrics.precision(np.zeros((2, 2)), TRUTH))


def test_occupancy_by_hand():
    assert metrics.occupancy(TRUTH) == 0.5
    assert metrics.occupancy(np.zeros((3, 3))) == 0.0


def test_paper_compression_ratio_by_hand():
    assert metrics.paper_compression_ratio(0.1, 0.1) == pytest.approx(4 / 0.09)
    assert metrics.paper_compression_ratio(0.1, 0.0) == math.inf


def test_sparse_input_bytes_is_30_bits_per_voxel():
    assert metrics.sparse_input_bytes(8) == 30.0
    assert metrics.sparse_input_bytes(0) == 0.0


def test_byte_compression_ratio():
    assert metrics.byte_compression_ratio(100, 25) == 4.0
    assert metrics.byte_compression_ratio(100, 0) == math.inf
    with pytest.raises(ValueError, match="non-negative"):
        metrics.byte_compression_ratio(-1, 2)


def test_full_wedge_bytes():
    assert metrics.FULL_WEDGE_BYTES == 1_529_856 == 16 * 192 * 249 * 2


def test_wedge_metrics_by_hand():
    truth = np.zeros((2, 2, 2))
    truth[0, 0, 0] = 4.0
    truth[1, 1, 1] = 2.0
    reconstruction = np.zeros((2, 2, 2))
    reconstruction[0, 0, 0] = 3.0
    row = metrics.wedge_metrics(reconstruction, truth, kept_count=1, record_bytes=10, coordinate_bytes=3,
                                value_bytes=2)
    assert list(row) == list(metrics.METRIC_NAMES)
    assert row["occupancy"] == 0.25
    assert row["kept_fraction"] == 0.5
    assert row["paper_compression_ratio"] == pytest.approx(4 / (9 * 0.25 * 0.5))
    assert row["compression_ratio_full"] == pytest.approx(16 / 10)
    assert row["compression_ratio_sparse"] == pytest.approx(7.5 / 10)
    assert row["bits_per_kept_voxel"] == 80.0
    assert row["coordinate_bits_per_kept_voxel"] == 24.0
    assert row["value_bits_per_kept_voxel"] == 16.0
    assert row["l1"] == pytest.approx(3 / 8)
    assert row["mse"] == pytest.approx(5 / 8)
    assert row["psnr"] == pytest.approx(10 * math.log10(16 / (5 / 8)))
    assert row["psnr_authors"] == pytest.approx(10 * math.log10(16 / math.sqrt(5 / 8)))
    assert row["recall"] == 0.5
    assert row["precision"] == 1.0


def test_wedge_metrics_without_signal_or_kept_voxels():
    row = metrics.wedge_metrics(np.zeros(4), np.zeros(4), 0, 38, 0, 0)
    assert row["occupancy"] == 0.0
    assert math.isnan(row["kept_fraction"])
    assert math.isnan(row["paper_compression_ratio"])
    assert math.isnan(row["bits_per_kept_voxel"])
    assert math.isnan(row["recall"])
    assert math.isnan(row["psnr"])
    assert row["l1"] == 0.0


@pytest.mark.parametrize("reconstruction, truth, message", [
    (np.zeros(3), np.zeros(4), "must match"),
    (np.zeros(0), np.zeros(0), "at least one voxel"),
    (np.array([np.nan, 0.0]), np.zeros(2), "reconstruction contains NaN"),
    (np.zeros(2), np.array([0.0, np.inf]), "truth contains NaN or infinite"),
])
def test_metrics_reject_bad_arrays(reconstruction, truth, message):
    with pytest.raises(ValueError, match=message):
        metrics.l1_error(reconstruction, truth)


def test_summarize_skips_nan_and_counts_entries():
    rows = [{"l1": 1.0, "recall": math.nan}, {"l1": 3.0, "recall": 0.5}]
    summary = metrics.summarize(rows)
    assert summary["l1"] == {"mean": 2.0, "std": 1.0, "min": 1.0, "max": 3.0, "count": 2}
    assert summary["recall"]["mean"] == 0.5
    assert summary["recall"]["count"] == 1
    assert summary["psnr"]["count"] == 0
    assert math.isnan(summary["psnr"]["mean"])


def test_summarize_keeps_infinity():
    summary = metrics.summarize([{"psnr": 10.0}, {"psnr": math.inf}])
    assert summary["psnr"]["mean"] == math.inf
    assert summary["psnr"]["max"] == math.inf
    assert summary["psnr"]["min"] == 10.0


def test_file_totals_by_hand():
    totals = metrics.file_totals(wedge_count=2, file_bytes=1000, signal_count=400, kept_count=50, wedge_voxels=800)
    assert totals["compression_ratio_full"] == pytest.approx(2 * 800 * 2 / 1000)
    assert totals["compression_ratio_sparse"] == pytest.approx(400 * 30 / 8 / 1000)
    assert totals["bits_per_kept_voxel"] == pytest.approx(8000 / 50)
    assert totals["wedges"] == 2

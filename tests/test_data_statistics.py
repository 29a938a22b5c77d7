"""Occupancy, cluster labelling and the summary used for the realism report."""

from __future__ import annotations

import numpy as np
import pytest

from sparsecodec.data import WEDGE_SHAPE
from sparsecodec.data.statistics import cluster_sizes, label_clusters, occupancy, summarize


def test_occupancy_counts_non_zero_voxels():
    adc = np.zeros((2, *WEDGE_SHAPE), np.uint16)
    adc[0, 0, 0, :10] = 80
    assert occupancy(adc).tolist() == [10 / adc[0].size, 0.0]
    with pytest.raises(ValueError, match="expected wedges of shape"):
        occupancy(np.zeros((16, 192, 248), np.uint16))


def test_labels_are_face_connected():
    layer = np.array(
        [
            [1, 1, 0, 0, 5],
            [0, 1, 0, 3, 0],
            [0, 0, 0, 3, 3],
            [7, 0, 0, 0, 0],
        ]
    )
    labels, count = label_clusters(layer)
    assert count == 4
    expected = np.array(
        [
            [1, 1, 0, 0, 2],
            [0, 1, 0, 3, 0],
            [0, 0, 0, 3, 3],
            [4, 0, 0, 0, 0],
        ]
    )
    assert np.array_equal(labels, expected)


def test_labels_match_scipy_on_random_image():
    ndimage = pytest.importorskip("scipy.ndimage", reason="scipy gives the independent labelling reference")
    rng = np.random.default_rng(1)
    layer = (rng.random((192, 249)) < 0.3).astype(np.uint16)
    labels, count = label_clusters(layer)
    reference, reference_count = ndimage.label(layer)
    assert count == reference_count
    assert np.array_equal(labels, reference)


def test_cluster_sizes_of_known_blocks():
    adc = np.zeros(WEDGE_SHAPE, np.uint16)
    adc[2, 10:13, 50:55] = 90  # 3 pads x 5 samples
    adc[9, 100, 7] = 80  # a single voxel
    sizes = cluster_sizes(adc)
    assert sorted(zip(sizes.pads.tolist(), sizes.samples.tolist(), sizes.voxels.tolist())) == [(1, 1, 1), (3, 5, 15)]


def test_summarize_histogram_and_saturation():
    adc = np.zeros(WEDGE_SHAPE, np.uint16)
    adc[0, 0, :3] = [75, 1023, 1023]
    summary = summarize([adc, np.zeros(WEDGE_SHAPE, np.uint16)])
    assert summary.wedges == 2
    assert summary.min_recorded_adc == 75
    assert summary.saturated_fraction == pytest.approx(2 / 3)
    assert summary.log_adc_counts.sum() == 3
    assert summary.log_adc_counts[62] == 1  # log2(76) = 6.25 is in [6.2, 6.3)
    assert summary.log_adc_counts[-1] == 2  # log2(1024) = 10 falls in the last, closed bin
    report = summary.as_dict()
    assert report["occupancy"]["max"] == pytest.approx(3 / adc.size)
    assert report["cluster_pads"] == {"count": 1, "mean": 1.0, "median": 1.0, "p10": 1.0, "p90": 1.0}

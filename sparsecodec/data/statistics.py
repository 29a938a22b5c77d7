"""Summary statistics of wedges: occupancy, log-ADC histogram and cluster sizes.

A cluster here is a set of non-zero voxels of one layer connected through shared faces in the
(azimuth, time) plane, the footprint of one track crossing (or of overlapping crossings) on
the pad row. Its size is given as the number of pads and of time samples it spans, and its
voxel count.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numba
import numpy as np

from .layout import WEDGE_SHAPE, WEDGE_VOXELS
from .sparse import log_adc
from .validation import check_adc_array

#: Edges of the log-ADC histogram: 0.1 wide from 0 to 10 (ADC 0..1023).
LOG_ADC_EDGES = np.round(np.arange(0.0, 10.05, 0.1), 2)


def occupancy(adc: np.ndarray) -> np.ndarray:
    """Fraction of non-zero voxels of each wedge in an array of shape (..., 16, 192, 249)."""
    if adc.shape[-3:] != WEDGE_SHAPE:
        raise ValueError(f"expected wedges of shape (..., {WEDGE_SHAPE}), got {adc.shape}")
    return np.count_nonzero(adc.reshape(-1, WEDGE_VOXELS), axis=1) / WEDGE_VOXELS


@numba.njit(cache=True, nogil=True)
def _label_layer(active, labels):  # pragma: no cover - compiled by numba
    # Face-connected components of a 2D boolean image by union-find; returns the count and
    # fills labels with 1..count (0 for inactive pixels), numbered in raster order.
    rows, columns = active.shape
    parent = np.arange(rows * columns)

    def find(node):
        while parent[node] != node:
            parent[node] = parent[parent[node]]
            node = parent[node]
        return node

    for r in range(rows):
        for c in range(columns):
            if not active[r, c]:
                continue
            node = r * columns + c
            if r > 0 and active[r - 1, c]:
                a = find(node)
                b = find(node - columns)
                if a != b:
                    parent[max(a, b)] = min(a, b)
            if c > 0 and active[r, c - 1]:
                a = find(node)
                b = find(node - 1)
                if a != b:
                    parent[max(a, b)] = min(a, b)

    count = 0
    names = np.zeros(rows * columns, dtype=np.int64)
    for r in range(rows):
        for c in range(columns):
            labels[r, c] = 0
            if active[r, c]:
                root = find(r * columns + c)
                if names[root] == 0:
                    count += 1
                    names[root] = count
                labels[r, c] = names[root]
    return count


def label_clusters(layer_adc: np.ndarray) -> tuple[np.ndarray, int]:
    """Label the face-connected clusters of non-zero voxels in one (azimuth, time) layer.

    Returns int64 labels (0 = empty, 1..count in raster order) and the count.
    """
    if layer_adc.ndim != 2:
        raise ValueError(f"expected a 2D (azimuth, time) layer, got shape {layer_adc.shape}")
    labels = np.zeros(layer_adc.shape, dtype=np.int64)
    count = _label_layer(np.ascontiguousarray(layer_adc != 0), labels)
    return labels, int(count)


@dataclass(frozen=True)
class ClusterSizes:
    """Per-cluster extents: pads spanned, time samples spanned, and non-zero voxels."""

    pads: np.ndarray
    samples: np.ndarray
    voxels: np.ndarray


def cluster_sizes(adc: np.ndarray) -> ClusterSizes:
    """Measure the clusters of every layer of a (16, 192, 249) wedge."""
    adc = check_adc_array(adc, WEDGE_SHAPE, "adc")
    pads, samples, voxels = [], [], []
    for layer in adc:
        labels, count = label_clusters(layer)
        if count == 0:
            continue
        azimuth, time = np.nonzero(labels)
        ids = labels[azimuth, time] - 1
        voxels.append(np.bincount(ids, minlength=count))
        for coordinate, out in ((azimuth, pads), (time, samples)):
            low = np.full(count, np.iinfo(np.int64).max)
            high = np.full(count, -1)
            np.minimum.at(low, ids, coordinate)
            np.maximum.at(high, ids, coordinate)
            out.append(high - low + 1)
    if not voxels:
        empty = np.zeros(0, dtype=np.int64)
        return ClusterSizes(empty, empty, empty)
    return ClusterSizes(np.concatenate(pads), np.concatenate(samples), np.concatenate(voxels))


@dataclass(frozen=True)
class WedgeSummary:
    """Statistics over a set of wedges (see :func:`summarize`)."""

    wedges: int
    occupancy: np.ndarray
    log_adc_counts: np.ndarray
    log_adc_edges: np.ndarray
    saturated_fraction: float
    min_recorded_adc: int
    cluster_pads: np.ndarray
    cluster_samples: np.ndarray
    cluster_voxels: np.ndarray

    def as_dict(self) -> dict:
        """Return a JSON-ready dictionary of the main numbers (histogram included)."""
        occupancy = self.occupancy

        def stats(values):
            if values.size == 0:
                return {"count": 0}
            return {
                "count": int(values.size),
                "mean": float(values.mean()),
                "median": float(np.median(values)),
                "p10": float(np.percentile(values, 10)),
                "p90": float(np.percentile(values, 90)),
            }

        return {
            "wedges": self.wedges,
            "occupancy": {
                "mean": float(occupancy.mean()) if occupancy.size else None,
                "min": float(occupancy.min()) if occupancy.size else None,
                "max": float(occupancy.max()) if occupancy.size else None,
                "p05": float(np.percentile(occupancy, 5)) if occupancy.size else None,
                "p95": float(np.percentile(occupancy, 95)) if occupancy.size else None,
            },
            "min_recorded_adc": self.min_recorded_adc,
            "saturated_fraction": self.saturated_fraction,
            "log_adc_histogram": {
                "edges": self.log_adc_edges.tolist(),
                "counts": self.log_adc_counts.tolist(),
            },
            "cluster_pads": stats(self.cluster_pads),
            "cluster_samples": stats(self.cluster_samples),
            "cluster_voxels": stats(self.cluster_voxels),
        }


def summarize(wedges: Iterable[np.ndarray], clusters: bool = True) -> WedgeSummary:
    """Accumulate occupancy, log-ADC histogram, saturation and cluster sizes over wedges.

    Each wedge is a (16, 192, 249) array of raw ADC counts. ``clusters=False`` skips the
    cluster measurement, the slowest part (about 50 ms per wedge).
    """
    occupancies = []
    counts = np.zeros(LOG_ADC_EDGES.size - 1, dtype=np.int64)
    recorded = 0
    saturated = 0
    smallest = None
    pads, samples, voxels = [], [], []
    for adc in wedges:
        adc = check_adc_array(adc, WEDGE_SHAPE, "adc")
        values = adc[adc != 0]
        occupancies.append(values.size / WEDGE_VOXELS)
        counts += np.histogram(log_adc(values), bins=LOG_ADC_EDGES)[0]
        recorded += values.size
        saturated += int(np.count_nonzero(values == 1023))
        if values.size:
            smallest = int(values.min()) if smallest is None else min(smallest, int(values.min()))
        if clusters:
            sizes = cluster_sizes(adc)
            pads.append(sizes.pads)
            samples.append(sizes.samples)
            voxels.append(sizes.voxels)

    def joined(parts):
        return np.concatenate(parts) if parts else np.zeros(0, dtype=np.int64)

    return WedgeSummary(
        wedges=len(occupancies),
        occupancy=np.asarray(occupancies),
        log_adc_counts=counts,
        log_adc_edges=LOG_ADC_EDGES,
        saturated_fraction=saturated / recorded if recorded else 0.0,
        min_recorded_adc=smallest if smallest is not None else 0,
        cluster_pads=joined(pads),
        cluster_samples=joined(samples),
        cluster_voxels=joined(voxels),
    )

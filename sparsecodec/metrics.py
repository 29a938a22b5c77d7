"""Reconstruction quality and compression metrics of one wedge, and their summary over many.

Quality metrics compare a reconstructed wedge with the true one in log ADC, log2(ADC + 1), over
all voxels of the wedge (zeros included), as ``docs/metrics.md`` defines them. Arrays may have
any shape as long as both have the same one. Undefined values (recall of a wedge without
signal, PSNR of an all-zero true wedge) are NaN, and summaries skip them.
"""

from __future__ import annotations

import math

import numpy as np

from .model.gate import paper_compression_ratio

#: Bytes of one uncompressed wedge: 16-bit ADC words for every voxel of (16, 192, 249).
FULL_WEDGE_BYTES = 16 * 192 * 249 * 2
#: Bits per non-zero voxel of the zero-suppressed sparse input: 4 + 8 + 8 coordinate bits and a
#: 10-bit ADC value, bit-packed without framing.
SPARSE_BITS_PER_VOXEL = 4 + 8 + 8 + 10

#: Per-wedge metrics in the order tables, CSV columns and plots list them.
METRIC_NAMES = (
    "occupancy",
    "kept_fraction",
    "paper_compression_ratio",
    "compression_ratio_full",
    "compression_ratio_sparse",
    "bits_per_kept_voxel",
    "coordinate_bits_per_kept_voxel",
    "value_bits_per_kept_voxel",
    "l1",
    "mse",
    "psnr",
    "psnr_authors",
    "recall",
    "precision",
)


def log_adc(adc) -> np.ndarray:
    """Return log2(ADC + 1) as float64."""
    return np.log2(np.asarray(adc, dtype=np.float64) + 1.0)


def _pair(reconstruction, truth) -> tuple[np.ndarray, np.ndarray]:
    reconstruction = np.asarray(reconstruction, dtype=np.float64)
    truth = np.asarray(truth, dtype=np.float64)
    if reconstruction.shape != truth.shape:
        raise ValueError(f"reconstruction has shape {reconstruction.shape}, truth {truth.shape}; they must match")
    if truth.size == 0:
        raise ValueError("metrics need at least one voxel, got empty arrays")
    for name, array in (("reconstruction", reconstruction), ("truth", truth)):
        if not np.isfinite(array).all():
            raise ValueError(f"{name} contains NaN or infinite values")
    return reconstruction, truth


def l1_error(reconstruction, truth) -> float:
    """Return mean |reconstruction - truth| over all voxels."""
    reconstruction, truth = _pair(reconstruction, truth)
    return float(np.mean(np.abs(reconstruction - truth)))


def mean_squared_error(reconstruction, truth) -> float:
    """Return mean (reconstruction - truth)^2 over all voxels (the L2 metric)."""
    reconstruction, truth = _pair(reconstruction, truth)
    return float(np.mean((reconstruction - truth) ** 2))


def psnr(reconstruction, truth) -> float:
    """Return 10 log10(max(truth)^2 / MSE) in dB; inf for a perfect match, NaN when max(truth) is 0."""
    reconstruction, truth = _pair(reconstruction, truth)
    peak = float(truth.max())
    mse = float(np.mean((reconstruction - truth) ** 2))
    if peak <= 0:
        return math.nan
    return math.inf if mse == 0 else 10.0 * math.log10(peak**2 / mse)


def psnr_authors(reconstruction, truth) -> float:
    """Return 10 log10(max(truth)^2 / sqrt(MSE)), the PSNR variant of the BCAE-VS authors' script.

    ``evaluate/evaluate.py`` of BNL-DAQ-LDRD/NeuralCompression_v3 divides by the root of the
    MSE instead of the MSE, so this is not the standard PSNR. Use it only to compare with
    numbers the BCAE-VS authors published.
    """
    reconstruction, truth = _pair(reconstruction, truth)
    peak = float(truth.max())
    mse = float(np.mean((reconstruction - truth) ** 2))
    if peak <= 0:
        return math.nan
    return math.inf if mse == 0 else 10.0 * math.log10(peak**2 / math.sqrt(mse))


def recall(reconstruction, truth) -> float:
    """Return the fraction of true signal voxels (truth != 0) reconstructed non-zero; NaN without signal."""
    reconstruction, truth = _pair(reconstruction, truth)
    signal = truth != 0
    count = int(signal.sum())
    return math.nan if count == 0 else float(np.count_nonzero(reconstruction[signal])) / count


def precision(reconstruction, truth) -> float:
    """Return the fraction of non-zero reconstructed voxels that are true signal; NaN if none is non-zero."""
    reconstruction, truth = _pair(reconstruction, truth)
    predicted = reconstruction != 0
    count = int(predicted.sum())
    return math.nan if count == 0 else float(np.count_nonzero(truth[predicted])) / count


def occupancy(truth) -> float:
    """Return the fraction of voxels that are non-zero."""
    truth = np.asarray(truth)
    if truth.size == 0:
        raise ValueError("occupancy needs at least one voxel, got an empty array")
    return float(np.count_nonzero(truth)) / truth.size


def sparse_input_bytes(signal_count: int) -> float:
    """Return the size in bytes of a zero-suppressed wedge: 30 bits per non-zero voxel."""
    return signal_count * SPARSE_BITS_PER_VOXEL / 8


def byte_compression_ratio(original_bytes: float, compressed_bytes: float) -> float:
    """Return original / compressed bytes; infinite for zero compressed bytes."""
    if compressed_bytes < 0 or original_bytes < 0:
        raise ValueError(f"byte counts must be non-negative, got {original_bytes} and {compressed_bytes}")
    return math.inf if compressed_bytes == 0 else original_bytes / compressed_bytes


def wedge_metrics(reconstruction_log_adc, truth_log_adc, kept_count: int, record_bytes: int,
                  coordinate_bytes: int, value_bytes: int) -> dict[str, float]:
    """Return every metric of :data:`METRIC_NAMES` for one wedge.

    Args:
        reconstruction_log_adc, truth_log_adc: the wedge in log ADC, same shape.
        kept_count: key points stored for the wedge.
        record_bytes: bytes of the wedge's record in the file, framing and id included.
        coordinate_bytes, value_bytes: bytes of the record's coordinate and value blocks.
    """
    reconstruction, truth = _pair(reconstruction_log_adc, truth_log_adc)
    signal_count = int(np.count_nonzero(truth))
    occupancy_fraction = signal_count / truth.size
    kept_fraction = math.nan if signal_count == 0 else kept_count / signal_count
    full_bytes = truth.size * 2
    return {
        "occupancy": occupancy_fraction,
        "kept_fraction": kept_fraction,
        "paper_compression_ratio": paper_compression_ratio(occupancy_fraction, kept_fraction)
        if signal_count else math.nan,
        "compression_ratio_full": byte_compression_ratio(full_bytes, record_bytes),
        "compression_ratio_sparse": byte_compression_ratio(sparse_input_bytes(signal_count), record_bytes),
        "bits_per_kept_voxel": math.nan if kept_count == 0 else 8 * record_bytes / kept_count,
        "coordinate_bits_per_kept_voxel": math.nan if kept_count == 0 else 8 * coordinate_bytes / kept_count,
        "value_bits_per_kept_voxel": math.nan if kept_count == 0 else 8 * value_bytes / kept_count,
        "l1": l1_error(reconstruction, truth),
        "mse": mean_squared_error(reconstruction, truth),
        "psnr": psnr(reconstruction, truth),
        "psnr_authors": psnr_authors(reconstruction, truth),
        "recall": recall(reconstruction, truth),
        "precision": precision(reconstruction, truth),
    }


def summarize(rows: list[dict[str, float]]) -> dict[str, dict[str, float]]:
    """Return mean, standard deviation, minimum and maximum of each metric over wedges.

    NaN entries are skipped; infinite ones count (a mean with an infinite entry is infinite).
    A metric with no finite-or-infinite entry gets NaN everywhere, and ``count`` says how many
    entries were used.
    """
    summary = {}
    for name in METRIC_NAMES:
        values = np.array([row[name] for row in rows if name in row], dtype=np.float64)
        values = values[~np.isnan(values)]
        if values.size == 0:
            summary[name] = {"mean": math.nan, "std": math.nan, "min": math.nan, "max": math.nan, "count": 0}
            continue
        finite = np.isfinite(values).all()
        summary[name] = {
            "mean": float(values.mean()),
            "std": float(values.std()) if finite else math.nan,
            "min": float(values.min()),
            "max": float(values.max()),
            "count": int(values.size),
        }
    return summary


def file_totals(wedge_count: int, file_bytes: int, signal_count: int, kept_count: int,
                wedge_voxels: int = 16 * 192 * 249) -> dict[str, float]:
    """Return compression over a whole file: its real size against all wedges' full and sparse sizes.

    Header and trailer bytes count, so these are the ratios a user sees on disk.
    """
    full_bytes = wedge_count * wedge_voxels * 2
    return {
        "wedges": wedge_count,
        "file_bytes": file_bytes,
        "signal_voxels": signal_count,
        "kept_voxels": kept_count,
        "compression_ratio_full": byte_compression_ratio(full_bytes, file_bytes),
        "compression_ratio_sparse": byte_compression_ratio(sparse_input_bytes(signal_count), file_bytes),
        "bits_per_kept_voxel": math.nan if kept_count == 0 else 8 * file_bytes / kept_count,
    }

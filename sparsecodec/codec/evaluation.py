"""Compress a set of wedges, decompress the file, and measure what was saved and what was lost.

Quality is measured on what ``decompress`` writes: the reconstruction rounded to whole ADC
counts and clipped to 0..1023, in log ADC log2(ADC + 1), against the input wedge. Sizes are the
real bytes of the written file. ``docs/metrics.md`` defines every metric.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import math
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .. import metrics
from ..model import GateConfig
from .format import RecordInfo
from .inputs import WedgeSource
from ..atomic import write_atomic
from .pipeline import CodecModel, adc_from_reconstruction, compress_to_file, decompress_file

log = logging.getLogger(__name__)

#: Axis labels with units of the plotted metrics; the others are plain ratios or fractions.
AXIS_LABELS = {
    "bits_per_kept_voxel": "bits per kept voxel (whole record)",
    "coordinate_bits_per_kept_voxel": "coordinate bits per kept voxel",
    "value_bits_per_kept_voxel": "value bits per kept voxel",
    "l1": "L1 (log ADC)",
    "mse": "MSE (log ADC squared)",
    "psnr": "PSNR (dB)",
    "psnr_authors": "PSNR as in the BCAE-VS script (dB)",
}

#: Per-wedge CSV columns before the metrics.
RECORD_COLUMNS = ("wedge_id", "signal_count", "kept_count", "record_bytes", "coordinate_coding",
                  "coordinate_bytes", "value_coding", "value_bytes")


@dataclass(frozen=True)
class Evaluation:
    """Per-wedge rows (record fields and metrics), their summary, and whole-file totals."""

    rows: list[dict]
    summary: dict[str, dict[str, float]]
    totals: dict[str, float]


def evaluate(codec: CodecModel, source: WedgeSource, compressed_path: str | Path, gate: GateConfig, *,
             batch_size: int = 1, force: bool = False, coordinate_coding: str = "auto",
             value_coding: str = "auto", metadata: dict | None = None, progress=None) -> Evaluation:
    """Compress ``source`` into ``compressed_path``, decode it, and compare each wedge with its input.

    The inputs are read twice (once to compress, once to compare), one batch at a time.
    ``progress`` is called with the number of wedges finished, during both passes.
    """
    infos = compress_to_file(codec, source, compressed_path, gate, batch_size=batch_size, force=force,
                             coordinate_coding=coordinate_coding, value_coding=value_coding,
                             metadata=metadata, progress=progress)
    rows = []
    decoded = decompress_file(codec, compressed_path, batch_size=batch_size)
    for (wedge_id, adc), (info, reconstruction) in zip(source, decoded):
        if info.wedge_id != wedge_id:
            raise ValueError(f"input changed between passes: wedge {info.index} is {wedge_id!r} now, "
                             f"{info.wedge_id!r} in {compressed_path}")
        truth = metrics.log_adc(adc)
        output = metrics.log_adc(adc_from_reconstruction(reconstruction))
        rows.append(_row(info, metrics.wedge_metrics(output, truth, info.kept_count, info.record_bytes,
                                                     info.coordinate_bytes, info.value_bytes)))
        if progress is not None:
            progress(1)
    if len(rows) != len(infos):
        raise ValueError(f"input changed between passes: {len(infos)} wedges compressed, {len(rows)} read again")

    volume = int(np.prod(codec.wedge_shape))
    totals = metrics.file_totals(len(infos), os.path.getsize(compressed_path),
                                 sum(info.signal_count for info in infos), sum(info.kept_count for info in infos),
                                 volume)
    return Evaluation(rows, metrics.summarize(rows), totals)


def _row(info: RecordInfo, values: dict[str, float]) -> dict:
    row = {column: getattr(info, column) for column in RECORD_COLUMNS}
    row.update(values)
    return row


def write_csv(path: Path, evaluation: Evaluation) -> None:
    """Write one row per wedge: record fields, then every metric (``repr`` of floats, ``nan``/``inf`` as is)."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(RECORD_COLUMNS) + list(metrics.METRIC_NAMES),
                            lineterminator="\n")
    writer.writeheader()
    writer.writerows(evaluation.rows)
    write_atomic(path, buffer.getvalue().encode())


def _json_safe(value):
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, float) and math.isinf(value):
        return "inf" if value > 0 else "-inf"
    if isinstance(value, dict):
        return {key: _json_safe(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(item) for item in value]
    return value


def write_json(path: Path, evaluation: Evaluation, context: dict) -> None:
    """Write context (model, gate, input), file totals, the summary and every wedge's row.

    JSON has no NaN or infinity: NaN is written as null and infinity as the string "inf".
    """
    document = {"context": context, "file": evaluation.totals, "summary": evaluation.summary,
                "wedges": evaluation.rows}
    write_atomic(path, json.dumps(_json_safe(document), indent=2).encode())


def plot_names() -> list[str]:
    """Return the metrics plotted against occupancy (every metric but occupancy itself)."""
    return [name for name in metrics.METRIC_NAMES if name != "occupancy"]


def write_plots(folder: Path, evaluation: Evaluation) -> list[Path]:
    """Write one PNG per metric versus occupancy into ``folder``; returns the paths."""
    # The object-oriented API with the Agg canvas leaves pyplot's global backend alone.
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    occupancy = np.array([row["occupancy"] for row in evaluation.rows], dtype=np.float64)
    paths = []
    for name in plot_names():
        values = np.array([row[name] for row in evaluation.rows], dtype=np.float64)
        shown = np.isfinite(values)
        figure = Figure(figsize=(5, 3.5), dpi=100)
        FigureCanvasAgg(figure)
        axes = figure.add_subplot()
        axes.scatter(occupancy[shown], values[shown], s=12)
        axes.set_xlabel("occupancy (fraction of non-zero voxels)")
        axes.set_ylabel(AXIS_LABELS.get(name, name.replace("_", " ")))
        hidden = int((~shown).sum())
        title = f"{name.replace('_', ' ')} vs occupancy"
        axes.set_title(title if not hidden else f"{title} ({hidden} undefined not shown)")
        figure.tight_layout()
        buffer = io.BytesIO()
        figure.savefig(buffer, format="png")
        path = folder / f"{name}_vs_occupancy.png"
        write_atomic(path, buffer.getvalue())
        paths.append(path)
    return paths


def format_table(evaluation: Evaluation) -> str:
    """Return the summary as a text table: mean, std, min and max of each metric over wedges, then file totals."""
    lines = [f"{'metric':<32} {'mean':>10} {'std':>10} {'min':>10} {'max':>10}"]
    for name in metrics.METRIC_NAMES:
        entry = evaluation.summary[name]
        cells = " ".join(f"{entry[key]:>10.4g}" for key in ("mean", "std", "min", "max"))
        lines.append(f"{name:<32} {cells}")
    totals = evaluation.totals
    lines.append("")
    lines.append(f"file: {totals['wedges']} wedges in {totals['file_bytes']} bytes, "
                 f"{totals['kept_voxels']} of {totals['signal_voxels']} signal voxels kept")
    lines.append(f"file compression ratio vs full 16-bit wedges:       {totals['compression_ratio_full']:.4g}")
    lines.append(f"file compression ratio vs zero-suppressed input:    {totals['compression_ratio_sparse']:.4g} "
                 f"({metrics.SPARSE_BITS_PER_VOXEL} bits per non-zero voxel)")
    lines.append(f"file bits per kept voxel:                           {totals['bits_per_kept_voxel']:.4g}")
    return "\n".join(lines)

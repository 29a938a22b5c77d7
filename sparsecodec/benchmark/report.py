"""Tables and plots of a throughput sweep."""

from __future__ import annotations

import io
import json
import platform
from collections import defaultdict
from pathlib import Path

from ..atomic import write_atomic
from .floors import MachineRates
from .sweep import Record, records_as_dicts

PEER_ORDER = ("native", "spconv", "minkowski", "torchsparse", "dense")


def _points(records: list[Record]) -> list[str]:
    """Sweep points in order of increasing measured occupancy."""
    occupancy = {}
    for record in records:
        occupancy.setdefault(record.point, record.occupancy)
    return sorted(occupancy, key=occupancy.get)


def _backends(records: list[Record]) -> list[str]:
    present = {record.backend for record in records}
    return [name for name in PEER_ORDER if name in present]


def select(records: list[Record], dtype: str = "float32", batch_size: int | None = 1) -> dict:
    """Return {(point, backend): record}; ``batch_size=None`` keeps each pair's best batch size."""
    chosen: dict = {}
    for record in records:
        if record.dtype != dtype or (batch_size is not None and record.batch_size != batch_size):
            continue
        key = (record.point, record.backend)
        if key not in chosen or record.wedges_per_second > chosen[key].wedges_per_second:
            chosen[key] = record
    return chosen


def native_ratios(chosen: dict) -> dict[str, float]:
    """Return, per point, native wedges/s over the fastest other library's (dense excluded)."""
    ratios = {}
    by_point = defaultdict(dict)
    for (point, backend), record in chosen.items():
        by_point[point][backend] = record.wedges_per_second
    for point, speeds in by_point.items():
        peers = [speed for name, speed in speeds.items() if name not in ("native", "dense")]
        if "native" in speeds and peers:
            ratios[point] = speeds["native"] / max(peers)
    return ratios


def _rows(records: list[Record], batch_size: int | None, dtype: str):
    """Yield (point, {backend: record}) in order of occupancy, for points with any record."""
    chosen = select(records, dtype, batch_size)
    names = _backends(records)
    for point in _points(records):
        row = {name: chosen[(point, name)] for name in names if (point, name) in chosen}
        if row:
            yield point, row


def _point_label(point: str, row: dict) -> str:
    record = next(iter(row.values()))
    return f"{record.occupancy:.4f} ({point})"


def _table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(cells) + " |" for cells in rows]
    return "\n".join(lines)


def markdown_table(records: list[Record], batch_size: int | None = 1, dtype: str = "float32") -> str:
    """Wedges/s per backend and occupancy, and native over the fastest other library."""
    names = _backends(records)
    ratios = native_ratios(select(records, dtype, batch_size))
    rows = []
    for point, row in _rows(records, batch_size, dtype):
        first = next(iter(row.values()))
        cells = [_point_label(point, row), f"{first.voxels / first.batch_size:,.0f}"]
        for name in names:
            record = row.get(name)
            text = "-" if record is None else f"{record.wedges_per_second:,.1f}"
            if record is not None and batch_size is None:
                text += f" (b{record.batch_size})"
            cells.append(text)
        cells.append(f"{ratios[point]:.1f}x" if point in ratios else "-")
        rows.append(cells)
    return _table(["occupancy", "voxels/wedge"] + [f"{name} wedges/s" for name in names] + ["native / best peer"], rows)


def kernel_map_table(records: list[Record], dtype: str = "float32") -> str:
    """Kernel-map share of (kernel maps + convolutions) time per backend, batch 1."""
    names = _backends(records)
    rows = []
    for point, row in _rows(records, 1, dtype):
        cells = [_point_label(point, row)]
        for name in names:
            record = row.get(name)
            cells.append("-" if record is None else
                         f"{100 * record.kernel_map_share:.0f} % ({1e3 * record.kernel_map_seconds:.2f} ms)")
        rows.append(cells)
    return _table(["occupancy"] + [f"{name} kernel maps" for name in names], rows)


def floor_table(records: list[Record], rates: MachineRates, dtype: str = "float32") -> str:
    """Compute and memory floors per wedge, and each backend's time over the larger floor, batch 1."""
    names = _backends(records)
    rows = []
    for point, row in _rows(records, 1, dtype):
        voxels = next(iter(row.values())).voxels
        cells = [_point_label(point, row), f"{1e3 * rates.compute_floor(voxels):.3f}",
                 f"{1e3 * rates.memory_floor(voxels):.3f}"]
        for name in names:
            record = row.get(name)
            cells.append("-" if record is None else f"{record.times_floor:,.0f}x")
        rows.append(cells)
    return _table(["occupancy", "compute floor ms", "memory floor ms"] + [f"{name} / floor" for name in names], rows)


def precision_table(records: list[Record]) -> str:
    """Native speed and max |p, v| error per dtype, batch 1."""
    rows = defaultdict(dict)
    for record in records:
        if record.backend == "native" and record.batch_size == 1:
            rows[record.point][record.dtype] = record
    dtypes = sorted({dtype for row in rows.values() for dtype in row})
    if len(dtypes) < 2:
        return ""
    header = ["occupancy"] + [f"{dtype} wedges/s" for dtype in dtypes] + [f"{dtype} max error" for dtype in dtypes]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for point in _points(records):
        if point not in rows:
            continue
        row = rows[point]
        cells = [point]
        cells += [f"{row[d].wedges_per_second:,.1f}" if d in row else "-" for d in dtypes]
        cells += [f"{row[d].max_error:.2g}" if d in row else "-" for d in dtypes]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def plot(records: list[Record], path: Path) -> None:
    """Write a PNG: wedges/s versus occupancy per library (batch 1), and the kernel-map share."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    chosen = select(records, "float32", 1)
    figure, (speed_axis, share_axis) = plt.subplots(1, 2, figsize=(11, 4.2))
    for name in _backends(records):
        points = sorted((record.occupancy, record) for (_, backend), record in chosen.items() if backend == name)
        if not points:
            continue
        occupancy = [value for value, _ in points]
        speed_axis.plot(occupancy, [record.wedges_per_second for _, record in points], marker="o", label=name)
        share_axis.plot(occupancy, [100 * record.kernel_map_share for _, record in points], marker="o", label=name)
    floors = sorted((record.occupancy, 1 / record.floor_seconds) for record in chosen.values())
    if floors:
        speed_axis.plot([o for o, _ in floors], [f for _, f in floors], "k:", label="floor")
    speed_axis.set(xscale="log", yscale="log", xlabel="wedge occupancy", ylabel="wedges / s (batch 1)",
                   title="BCAE-VS encoder throughput")
    share_axis.set(xscale="log", xlabel="wedge occupancy", ylabel="kernel-map share of time (%)",
                   ylim=(0, 100), title="Kernel-map overhead")
    speed_axis.legend()
    speed_axis.grid(True, which="both", alpha=0.3)
    share_axis.grid(True, which="both", alpha=0.3)
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=110)
    plt.close(figure)
    write_atomic(path, buffer.getvalue())


def machine_description(rates: MachineRates) -> str:
    from ..kernels.openmp import runtime_description

    native = f", native parallel on {runtime_description()}" if str(rates.device) == "cpu" else ""
    return (f"{platform.processor() or platform.machine()}, {rates.threads} torch threads{native}, device "
            f"{rates.device}; measured {rates.matmul_flops / 1e9:.1f} GFLOP/s float32 matmul and "
            f"{rates.copy_bandwidth / 1e9:.1f} GB/s copy")


def write_report(records: list[Record], rates: MachineRates, directory: Path, skipped: list[str],
                 command: str) -> Path:
    """Write results.json, table.md and throughput.png to ``directory``, each atomically; return table.md's path."""
    directory.mkdir(parents=True, exist_ok=True)
    write_atomic(directory / "results.json", json.dumps({
        "command": command,
        "machine": machine_description(rates),
        "rates": {"matmul_flops": rates.matmul_flops, "copy_bandwidth": rates.copy_bandwidth},
        "records": records_as_dicts(records),
        "skipped": skipped,
    }, indent=2).encode())
    plot(records, directory / "throughput.png")
    sections = [
        f"Command: `{command}`",
        f"Machine: {machine_description(rates)}",
        "",
        "Encoder throughput, batch 1, float32 (wedges per second):",
        "",
        markdown_table(records, 1),
        "",
        "Best batch size per backend, float32 (wedges per second, batch size in brackets):",
        "",
        markdown_table(records, None),
        "",
        "Kernel-map share of the kernel-map plus convolution time, batch 1, float32 (time per wedge):",
        "",
        kernel_map_table(records),
        "",
        "Floors per wedge and each backend's time over the larger floor, batch 1, float32:",
        "",
        floor_table(records, rates),
    ]
    precision = precision_table(records)
    if precision:
        sections += ["", "Native encoder by dtype (batch 1):", "", precision]
    if skipped:
        sections += ["", f"Skipped for the time budget: {', '.join(skipped)}"]
    path = directory / "table.md"
    write_atomic(path, ("\n".join(sections) + "\n").encode())
    return path

"""Pictures of a wedge for a physicist's eye: projections, a 3D view and the log-ADC histogram.

matplotlib is imported when a picture is drawn, and only its object-oriented API with the Agg
canvas is used, so drawing works without a display and leaves pyplot's global state alone.
"""

from __future__ import annotations

import io
import math

import numpy as np

from .layout import WEDGE_SHAPE
from ..atomic import write_atomic
from .simulate.detector import SPHENIX_2021, Detector
from .sparse import ZERO_SUPPRESSION_ADC, log_adc
from .validation import check_adc_array

#: At most this many voxels go into the 3D scatter plot (an even subsample of the rest).
MAX_SCATTER_POINTS = 20000
#: Log ADC from which a voxel counts as a cluster core in the 3D view of busy wedges.
CORE_LOG_ADC = 7.0


def _global_coordinates(adc: np.ndarray, side: int, sector: int, detector: Detector):
    layer, azimuth, time = np.nonzero(adc)
    radius = detector.inner_radius + (layer + 0.5) * detector.layer_thickness
    phi = -math.pi + (sector * WEDGE_SHAPE[1] + azimuth + 0.5) * detector.pad_angle
    bins = side * WEDGE_SHAPE[2] + time
    z = -detector.drift_length + (bins + 0.5) * detector.time_bin_length
    return radius, phi, z, log_adc(adc[layer, azimuth, time])


def render_wedge(
    adc: np.ndarray,
    path,
    title: str | None = None,
    side: int = 0,
    sector: int = 0,
    detector: Detector = SPHENIX_2021,
    dpi: int = 90,
) -> None:
    """Draw a (16, 192, 249) wedge of raw ADC counts to a PNG file at ``path`` (written atomically).

    Four panels: the middle pad row (azimuth x time), the z-azimuth projection (largest log
    ADC over layers), a 3D view of the non-zero voxels in (z, r*dphi, r) and the histogram of
    log ADC values. ``side`` and ``sector`` place the wedge
    in the detector (they set the z and azimuth of the axes); positions use the 2021
    simulation geometry of the outer layer group.
    """
    adc = check_adc_array(adc, WEDGE_SHAPE, "adc")
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    radius, phi, z, values = _global_coordinates(adc, side, sector, detector)
    figure = Figure(figsize=(12, 9))
    FigureCanvasAgg(figure)
    grid = figure.add_gridspec(2, 2)
    colour = {"cmap": "viridis", "vmin": 6.0, "vmax": 10.0}

    # One pad row in full detail: clusters and their zero-suppression blocks.
    layer = WEDGE_SHAPE[0] // 2
    row_view = figure.add_subplot(grid[0, 0])
    row = adc[layer]
    shown_row = row_view.imshow(
        np.where(row > 0, log_adc(row), np.nan), origin="lower", aspect="auto", interpolation="nearest",
        extent=(0, WEDGE_SHAPE[2], 0, WEDGE_SHAPE[1]), **colour,
    )
    row_view.set_xlabel("time sample")
    row_view.set_ylabel("pad in sector (azimuth)")
    row_view.set_title(f"layer {layer} (r = {detector.layer_radius(layer):.1f} cm)")
    figure.colorbar(shown_row, ax=row_view, label="log2(ADC + 1)")

    # z-azimuth projection, the view in which the time axis is the drift direction.
    projection = figure.add_subplot(grid[0, 1])
    image = np.where(adc.max(axis=0) > 0, log_adc(adc.max(axis=0)), np.nan)
    z_edges = -detector.drift_length + (side * WEDGE_SHAPE[2] + np.array([0, WEDGE_SHAPE[2]])) * detector.time_bin_length
    shown = projection.imshow(
        image, origin="lower", aspect="auto", interpolation="nearest",
        extent=(z_edges[0], z_edges[1], 0, WEDGE_SHAPE[1]), **colour,
    )
    projection.set_xlabel("z [cm] (time sample)")
    projection.set_ylabel("pad in sector (azimuth)")
    projection.set_title("z-azimuth projection (largest over layers)")
    figure.colorbar(shown, ax=projection, label="log2(ADC + 1)")

    # 3D view: tracks are lines through the 16 layers. In a busy wedge only the cluster cores
    # (log ADC of 7 and above, about 2 x the threshold over pedestal) are drawn, so that
    # single tracks stay visible.
    view = figure.add_subplot(grid[1, 0], projection="3d")
    order = np.arange(values.size)
    cut = ""
    if values.size > MAX_SCATTER_POINTS:
        order = np.nonzero(values >= CORE_LOG_ADC)[0]
        cut = f", log ADC >= {CORE_LOG_ADC:g}"
    if order.size > MAX_SCATTER_POINTS:
        order = order[np.linspace(0, order.size - 1, MAX_SCATTER_POINTS).astype(np.int64)]
    phi_centre = -math.pi + (sector + 0.5) * WEDGE_SHAPE[1] * detector.pad_angle
    view.scatter(
        z[order], radius[order] * (phi[order] - phi_centre), radius[order], c=values[order], s=0.5,
        depthshade=False, **colour,
    )
    view.set_xlabel("z [cm]")
    view.set_ylabel("r*dphi [cm]")
    view.set_zlabel("r [cm]")
    view.set_title(f"non-zero voxels: {values.size} ({order.size} drawn{cut})")

    histogram = figure.add_subplot(grid[1, 1])
    lowest = min(6.0, math.floor(float(values.min()))) if values.size else 6.0
    histogram.hist(values, bins=np.arange(lowest, 10.05, 0.05), color="tab:blue")
    histogram.axvline(math.log2(ZERO_SUPPRESSION_ADC + 1), color="tab:red", linestyle="--", label="ADC 64")
    histogram.set_yscale("log")
    histogram.set_xlabel("log2(ADC + 1)")
    histogram.set_ylabel("voxels")
    occupancy = values.size / adc.size
    histogram.set_title(f"log ADC histogram, occupancy {occupancy:.2%}")
    histogram.legend()

    if title:
        figure.suptitle(title)
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=dpi)
    write_atomic(path, buffer.getvalue())

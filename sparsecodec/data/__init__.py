"""TPC wedges: the public dataset layout, sparse conversion, a torch Dataset and a simulator.

Conventions (see :mod:`sparsecodec.data.layout` for details):

* A wedge is a uint16 numpy array of raw 10-bit ADC counts with shape :data:`WEDGE_SHAPE` =
  (16, 192, 249) = (layer, azimuth, time). Public files store (azimuth, time, layer); the
  transposes happen only in :func:`~sparsecodec.data.layout.to_file_layout` and
  :func:`~sparsecodec.data.layout.from_file_layout`.
* Log ADC is ``log2(ADC + 1)`` (:func:`log_adc`), so 0..1023 maps to 0..10. The BCAE papers
  zero voxels below :data:`ZERO_SUPPRESSION_ADC` = 64 (log ADC about 6); sPHENIX zero
  suppression never records a value that low, so the cut changes nothing on the public data
  or on simulated data.
* :class:`WedgeId` (experiment, event, side, sector) names a wedge; ``str(wedge_id)`` is the
  record id ``"experiment-event-side-sector"``.

Reading and writing:

* :func:`load_wedge` (validated, errors name the file) and :func:`save_wedge` (atomic, public
  layout); :func:`read_manifest`, :func:`write_manifest`, :func:`read_occupancy_table`,
  :func:`write_occupancy_table`.
* :class:`TPCDataset` (``root``, ``split``, ``form`` = "adc", "log_adc" or "sparse") yields
  ``(wedge_id, wedge)``; :func:`collate_sparse` batches the sparse form.

Sparse form:

* :func:`to_sparse` gives int32 coordinates (N, 3) = (layer, azimuth, time) and float32 log
  ADC (N,); :func:`to_dense` inverts it; :func:`batch_sparse` stacks wedges into coordinates
  (M, 4) = (batch, layer, azimuth, time) for :mod:`sparsecodec.backends`; :func:`split_batch`
  undoes it.

Simulation (imported on first use, it compiles numba kernels):

* :func:`simulate_dataset` writes a dataset in the public layout; :func:`simulate_wedges`
  returns wedges in memory for a preset, a :class:`SimulationConfig` or a target occupancy;
  :func:`simulate_event` returns the 24 wedges of one event; :data:`PRESETS` lists the
  presets ("auau-central-170khz", "auau-minbias", "pp").
* :func:`summarize` (in :mod:`sparsecodec.data.statistics`) measures occupancy, the log-ADC
  histogram and cluster sizes; :func:`render_wedge` (in :mod:`sparsecodec.data.show`) draws a
  wedge to a PNG file.
"""

from __future__ import annotations

import importlib

from .dataset import TPCDataset, collate_sparse
from .layout import (
    FILE_SHAPE,
    MAX_ADC,
    NUM_SECTORS,
    NUM_SIDES,
    WEDGE_AXES,
    WEDGE_SHAPE,
    WEDGES_PER_EVENT,
    WedgeId,
    from_file_layout,
    to_file_layout,
)
from .reader import (
    OccupancyRecord,
    load_wedge,
    read_manifest,
    read_occupancy_table,
    save_wedge,
    write_manifest,
    write_occupancy_table,
)
from .sparse import ZERO_SUPPRESSION_ADC, adc_from_log_adc, batch_sparse, log_adc, split_batch, to_dense, to_sparse

_LAZY = {
    "simulate_dataset": ".simulate",
    "simulate_wedges": ".simulate",
    "simulate_event": ".simulate",
    "SimulationConfig": ".simulate",
    "PRESETS": ".simulate",
    "summarize": ".statistics",
    "occupancy": ".statistics",
    "cluster_sizes": ".statistics",
    "render_wedge": ".show",
}

__all__ = [
    "FILE_SHAPE", "MAX_ADC", "NUM_SECTORS", "NUM_SIDES", "WEDGE_AXES", "WEDGE_SHAPE", "WEDGES_PER_EVENT",
    "ZERO_SUPPRESSION_ADC", "OccupancyRecord", "TPCDataset", "WedgeId", "adc_from_log_adc", "batch_sparse",
    "collate_sparse", "from_file_layout", "load_wedge", "log_adc", "read_manifest", "read_occupancy_table",
    "save_wedge", "split_batch", "to_dense", "to_file_layout", "to_sparse", "write_manifest",
    "write_occupancy_table", *_LAZY,
]


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name], __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

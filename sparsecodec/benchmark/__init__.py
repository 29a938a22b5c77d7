"""Throughput of the BCAE-VS encoder per sparse-convolution library versus occupancy.

:func:`run_sweep` measures every backend on simulated wedges at each occupancy, with the
kernel-map and convolution steps timed apart and the output checked against the float64 dense
encoder; :func:`write_report` writes a table, a JSON file and a PNG plot.
"""

from .floors import MachineRates, measure_rates
from .inputs import CENTRAL_MIX, SWEEP_OCCUPANCIES, EncoderInput, simulated_input
from .report import markdown_table, native_ratios, select, write_report
from .sweep import Record, SweepConfig, reference_encoder, run_sweep
from .timing import Timing, time_encoder

__all__ = [
    "CENTRAL_MIX",
    "EncoderInput",
    "MachineRates",
    "Record",
    "SWEEP_OCCUPANCIES",
    "SweepConfig",
    "Timing",
    "markdown_table",
    "measure_rates",
    "native_ratios",
    "reference_encoder",
    "run_sweep",
    "select",
    "simulated_input",
    "time_encoder",
    "write_report",
]

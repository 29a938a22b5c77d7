"""``sparsecodec bench``: encoder throughput per library versus occupancy, as a table and a plot."""

from __future__ import annotations

import logging
import shlex
from pathlib import Path

from . import CommandError

log = logging.getLogger(__name__)

DTYPES = ("float32", "float64", "bfloat16", "float16")


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "bench",
        help="measure encoder throughput per sparse-convolution library versus occupancy",
        description=(
            "Encode simulated wedges with every available backend at each occupancy and batch size, "
            "time the kernel-map and convolution steps apart, check every output against the float64 "
            "dense encoder, and write results.json, table.md and throughput.png."
        ),
    )
    parser.add_argument("-o", "--output", type=Path, required=True, help="directory for the report (created)")
    parser.add_argument("--backends", default="", help="comma-separated backend names (default: every available one)")
    parser.add_argument("--occupancies", default="0.001,0.01,0.05,0.1,0.2,0.3",
                        help="comma-separated target wedge occupancies (fraction of non-zero voxels; default: %(default)s)")
    parser.add_argument("--no-central-mix", action="store_true",
                        help="leave out the occupancy mix of the central Au+Au 170 kHz preset")
    parser.add_argument("--batch-sizes", default="1,8",
                        help="comma-separated numbers of wedges per encoder call (default: %(default)s)")
    parser.add_argument("--dtypes", default="float32",
                        help=f"comma-separated encoder dtypes from {', '.join(DTYPES)} (default: %(default)s)")
    parser.add_argument("--device", default="cpu", help="torch device, e.g. cpu or cuda (CUDA must be available)")
    parser.add_argument("--time-budget", type=float, default=600.0,
                        help="seconds after which remaining cases are skipped and listed (default 600)")
    parser.add_argument("--min-time", type=float, default=0.5,
                        help="seconds of repeated calls per timed region (default 0.5)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the simulated wedges")
    parser.set_defaults(func=run)


def _floats(text: str, option: str) -> tuple[float, ...]:
    try:
        values = tuple(float(item) for item in text.split(",") if item.strip())
    except ValueError:
        raise CommandError(f"{option} must be comma-separated numbers, got {text!r}") from None
    for value in values:
        if not 0 < value < 1:
            raise CommandError(f"{option} values must be between 0 and 1, got {value}")
    return values


def _ints(text: str, option: str) -> tuple[int, ...]:
    try:
        values = tuple(int(item) for item in text.split(",") if item.strip())
    except ValueError:
        raise CommandError(f"{option} must be comma-separated integers, got {text!r}") from None
    if not values or min(values) < 1:
        raise CommandError(f"{option} values must be positive integers, got {text!r}")
    return values


def run(args) -> int:
    import torch

    from ..benchmark import CENTRAL_MIX, SweepConfig, run_sweep, write_report

    dtypes = []
    for name in (item.strip() for item in args.dtypes.split(",") if item.strip()):
        if name not in DTYPES:
            raise CommandError(f"--dtypes: unknown dtype {name!r}; choose from {', '.join(DTYPES)}")
        dtypes.append(getattr(torch, name))
    points = _floats(args.occupancies, "--occupancies")
    if not args.no_central_mix:
        points += (CENTRAL_MIX,)
    config = SweepConfig(
        backends=tuple(name.strip() for name in args.backends.split(",") if name.strip()),
        points=points,
        batch_sizes=_ints(args.batch_sizes, "--batch-sizes"),
        dtypes=tuple(dtypes),
        device=args.device,
        time_budget=args.time_budget,
        min_time=args.min_time,
        seed=args.seed,
    )

    from tqdm import tqdm

    with tqdm(desc="benchmark cases", unit="case", disable=None) as bar:
        def progress(done, total):
            bar.total = total
            bar.update(done - bar.n)

        records, rates = run_sweep(config, progress)
    command = " ".join(shlex.quote(arg) for arg in args.command_line)
    table = write_report(records, rates, args.output, config.skipped, command)
    print(table.read_text())
    log.info("report written to %s", args.output)
    return 0

"""``sparsecodec evaluate``: compress and decompress wedges, then report ratios and reconstruction quality."""

from __future__ import annotations

import logging
from pathlib import Path

from . import CommandError
from .compress_command import (
    add_gate_options,
    add_input_options,
    add_model_options,
    backend_name,
    check_common_args,
    gate_from_args,
    open_codec,
    progress_bar,
    wedge_source,
)

log = logging.getLogger(__name__)

COMPRESSED_FILE = "compressed.scz"
CSV_FILE = "metrics.csv"
JSON_FILE = "metrics.json"
PLOT_FOLDER = "plots"


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "evaluate",
        help="compress, decompress and measure compression ratios and reconstruction quality",
        description="Compress the input wedges into DIR/compressed.scz, decompress the file, compare every "
                    "wedge with its input in log ADC = log2(ADC + 1), and write DIR/metrics.csv (one row per "
                    "wedge), DIR/metrics.json (summary, file totals, rows) and DIR/plots/*.png (each metric "
                    "versus occupancy). Prints the summary table. docs/metrics.md defines the metrics.",
    )
    add_input_options(parser, default_split="test")
    parser.add_argument("-o", "--output", required=True, metavar="DIR", help="folder for the file, tables and plots")
    parser.add_argument("--force", action="store_true", help="overwrite earlier results in DIR")
    add_model_options(parser)
    add_gate_options(parser)
    parser.set_defaults(func=run)


def run(args) -> int:
    from ..codec import evaluation

    output = Path(args.output)
    if output.exists() and not output.is_dir():
        raise CommandError(f"output {output} exists and is not a folder")
    results = [output / COMPRESSED_FILE, output / CSV_FILE, output / JSON_FILE]
    results += [output / PLOT_FOLDER / f"{name}_vs_occupancy.png" for name in evaluation.plot_names()]
    existing = [path for path in results if path.exists()]
    if existing and not args.force:
        raise CommandError(f"{existing[0]} exists from an earlier run; pass --force to overwrite the results in {output}")

    check_common_args(args)
    gate = gate_from_args(args)
    backend = backend_name(args)
    codec = open_codec(args)
    source = wedge_source(args, codec.wedge_shape)
    log.info("evaluating %s with %s, gate %s, seed %d", source.description, codec.name, gate.describe(), gate.seed)
    context = {
        "command": getattr(args, "command_line", None),
        "input": source.description,
        "model": {"name": codec.name, "sha256": codec.sha256},
        "gate": {"mode": gate.mode, "value": gate.value, "seed": gate.seed},
        "backend": backend,
        "device": str(codec.device),
    }

    output.mkdir(parents=True, exist_ok=True)
    with progress_bar(2 * len(source), "evaluate", args) as bar:
        result = evaluation.evaluate(codec, source, output / COMPRESSED_FILE, gate, batch_size=args.batch_size,
                                     force=args.force, coordinate_coding=args.coordinate_coding,
                                     value_coding=args.value_coding,
                                     metadata={"backend": backend, "input": source.description},
                                     progress=bar.update)
    evaluation.write_csv(output / CSV_FILE, result)
    evaluation.write_json(output / JSON_FILE, result, context)
    evaluation.write_plots(output / PLOT_FOLDER, result)

    print(f"{source.description}; model {codec.name}; gate {gate.describe()}, seed {gate.seed}")
    print(evaluation.format_table(result))
    print(f"results in {output}: {COMPRESSED_FILE}, {CSV_FILE}, {JSON_FILE}, {PLOT_FOLDER}/")
    return 0

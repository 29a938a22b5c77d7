"""``sparsecodec compress``: encode wedges with BCAE-VS and write a compressed file.

The option helpers here are shared with ``evaluate``.
"""

from __future__ import annotations

import argparse
import itertools
import logging
import os

from . import CommandError

log = logging.getLogger(__name__)

GATE_VALUE_HELP = (
    "value of the gate mode: threshold theta in [0, 1) for 'fixed', fraction of signal voxels to keep "
    "in [0, 1] for 'retention', target compression ratio C = 4 / (9 * occupancy * kept fraction) for "
    "'ratio'; not used by 'random'"
)


def add_input_options(parser: argparse.ArgumentParser, default_split: str) -> None:
    parser.add_argument("inputs", nargs="*", metavar="INPUT",
                        help="wedge .npy files (public layout: azimuth, time, layer = 192 x 249 x 16, raw ADC) "
                             "or dataset folders (train.txt / test.txt manifests, else every .npy below)")
    parser.add_argument("--split", choices=("train", "test", "all"), default=default_split,
                        help=f"which manifest of a dataset folder to read (default: {default_split})")
    parser.add_argument("--simulate", type=int, metavar="N",
                        help="instead of INPUT, simulate N events of 24 wedges each (sPHENIX TPC outer layers)")
    parser.add_argument("--simulate-seed", type=int, default=0, metavar="S",
                        help="seed of the simulation; also the experiment number in the wedge ids (default: 0)")
    parser.add_argument("--simulate-preset", default="auau-central-170khz", metavar="NAME",
                        help="simulation preset: auau-central-170khz (default), auau-minbias or pp")
    parser.add_argument("--limit", type=int, metavar="N", help="use only the first N wedges of the input")


def add_model_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", metavar="PATH",
                        help="model file: a sparsecodec model or the BCAE-VS authors' model_last.pth "
                             "(default: the model shipped with the package)")
    parser.add_argument("--backend", metavar="NAME",
                        help="sparse-convolution backend of the encoder (default: $SPARSE_BACKEND, else the "
                             "first available of native, spconv, minkowski, torchsparse, dense)")
    parser.add_argument("--device", default="cpu", metavar="DEVICE",
                        help="torch device: cpu (default), cuda or cuda:N; an error if CUDA is not available")
    parser.add_argument("--batch-size", type=int, default=1, metavar="B",
                        help="wedges per model call (default: 1); larger batches use more memory")


def add_gate_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--gate", choices=("random", "fixed", "retention", "ratio"), default="random",
                        help="how the gate picks the voxels to keep (default: random, as BCAE-VS was trained)")
    parser.add_argument("--gate-value", type=float, metavar="X", help=GATE_VALUE_HELP)
    parser.add_argument("--seed", type=int, default=0,
                        help="seed of the random gate thresholds (default: 0); stored in the file")
    parser.add_argument("--coordinate-coding", choices=("auto", "bitpacked", "delta-zstd"), default="auto",
                        help="coordinate coding of each record: auto (default, the smaller per record), "
                             "bitpacked (4 + 8 + 8 bits per voxel) or delta-zstd (sorted index gaps + zstd)")
    parser.add_argument("--value-coding", choices=("auto", "raw", "zstd"), default="auto",
                        help="float16 value coding: auto (default, the smaller per record), raw or zstd")


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "compress",
        help="compress TPC wedges into a .scz file",
        description="Encode wedges with BCAE-VS and write the kept voxels (coordinates and float16 values) "
                    "to a compressed file. The file appears only when complete.",
    )
    add_input_options(parser, default_split="all")
    parser.add_argument("-o", "--output", required=True, metavar="FILE", help="compressed file to write (.scz)")
    parser.add_argument("--force", action="store_true", help="overwrite the output file if it exists")
    add_model_options(parser)
    add_gate_options(parser)
    parser.set_defaults(func=run)


def gate_from_args(args):
    from ..model import GateConfig

    value = args.gate_value
    if args.gate == "random" and value is not None:
        raise CommandError("--gate random takes no --gate-value")
    if args.gate != "random" and value is None:
        raise CommandError(f"--gate {args.gate} needs --gate-value ({GATE_VALUE_HELP})")
    return GateConfig(args.gate, value, args.seed)


def check_common_args(args) -> None:
    """Raise CommandError for option combinations that are wrong before anything is loaded."""
    from ..codec.pipeline import resolve_device

    if args.simulate is not None and args.inputs:
        raise CommandError("give either INPUT files or --simulate N, not both")
    if args.simulate is None and not args.inputs:
        raise CommandError("no input: give wedge files, a dataset folder, or --simulate N")
    if args.limit is not None and args.limit < 1:
        raise CommandError(f"--limit must be at least 1, got {args.limit}")
    if args.batch_size < 1:
        raise CommandError(f"--batch-size must be at least 1, got {args.batch_size}")
    resolve_device(args.device)


def wedge_source(args, shape):
    """Return the input :class:`WedgeSource` of ``args`` (files or simulation), limited by ``--limit``."""
    from ..codec import inputs

    if args.simulate is not None:
        from ..data.layout import WEDGE_SHAPE

        if tuple(shape) != WEDGE_SHAPE:
            raise CommandError(f"--simulate makes wedges of shape {WEDGE_SHAPE}, but the model takes {tuple(shape)}")
        source = inputs.simulated_events(args.simulate, args.simulate_seed, args.simulate_preset)
    else:
        source = inputs.from_paths(args.inputs, shape, args.split)
    if args.limit is not None:
        full = source
        count = min(args.limit, len(full))
        source = inputs.WedgeSource(f"first {inputs.count_of(count, 'wedge')} of {full.description}", count,
                                    lambda: itertools.islice(iter(full), count))
    return source


def progress_bar(total: int, description: str, args):
    from tqdm import tqdm

    quiet = getattr(args, "quiet", False)
    # disable=None turns the bar off when stderr is not a terminal (logs, tests).
    return tqdm(total=total, desc=description, unit="wedge", disable=True if quiet else None)


def open_codec(args):
    from ..codec.pipeline import open_model

    return open_model(args.model, backend=args.backend, device=args.device)


def backend_name(args) -> str:
    """Return the name of the backend the encoder will use (checks that it can run here)."""
    from .. import backends

    return backends.get(args.backend).name


def run(args) -> int:
    from ..codec.pipeline import compress_to_file
    from ..codec.writer import check_output_path

    check_output_path(args.output, args.force)
    check_common_args(args)
    gate = gate_from_args(args)
    backend = backend_name(args)
    codec = open_codec(args)
    source = wedge_source(args, codec.wedge_shape)
    log.info("compressing %s with %s, gate %s, seed %d", source.description, codec.name, gate.describe(), gate.seed)

    metadata = {"backend": backend, "input": source.description}
    with progress_bar(len(source), "compress", args) as bar:
        infos = compress_to_file(codec, source, args.output, gate, batch_size=args.batch_size, force=args.force,
                                 coordinate_coding=args.coordinate_coding, value_coding=args.value_coding,
                                 metadata=metadata, progress=bar.update)

    size = os.path.getsize(args.output)
    kept = sum(info.kept_count for info in infos)
    signal = sum(info.signal_count for info in infos)
    print(f"{args.output}: {len(infos)} wedge{'' if len(infos) == 1 else 's'}, {size} bytes, {kept} of {signal} signal voxels kept, "
          f"{8 * size / kept if kept else float('nan'):.2f} bits per kept voxel")
    return 0

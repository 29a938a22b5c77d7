"""``sparsecodec show``: draw a wedge to PNG, or print statistics of a dataset."""

from __future__ import annotations

import json
from pathlib import Path

from . import CommandError


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "show",
        help="draw a wedge to a PNG picture, or print dataset statistics",
        description=(
            "SOURCE is a wedge .npy file in the public layout or a dataset root. With a root, "
            "--wedge picks the wedge by id (experiment-event-side-sector); the default is the "
            "first wedge of the split's manifest. --stats prints occupancy, log-ADC histogram "
            "and cluster sizes over the split instead of drawing."
        ),
    )
    parser.add_argument("source", help="wedge .npy file or dataset root")
    parser.add_argument("-o", "--output", help="PNG file to write (required unless --stats)")
    parser.add_argument("--wedge", help="wedge id experiment-event-side-sector inside a dataset root")
    parser.add_argument("--split", default="train", choices=("train", "test"), help="manifest to read; default train")
    parser.add_argument("--stats", action="store_true", help="print statistics of all wedges of the split")
    parser.add_argument("--limit", type=int, default=None, help="with --stats: use at most this many wedges")
    parser.add_argument("--no-clusters", action="store_true", help="with --stats: skip the cluster-size measurement")
    parser.add_argument("--json", action="store_true", help="with --stats: print the statistics as JSON")
    parser.set_defaults(func=run)


def _wedge_from_root(root: Path, split: str, wedge: str | None):
    from ..data import WedgeId, read_manifest

    paths = read_manifest(root, split)
    if not paths:
        other_split = "test" if split == "train" else "train"
        raise CommandError(f"{root / (split + '.txt')} lists no wedges; try --split {other_split} (a dataset simulated "
                           f"with few events may have an empty test split)")
    if wedge is None:
        return paths[0]
    wanted = WedgeId.from_string(wedge)
    for path in paths:
        try:
            if WedgeId.from_path(path) == wanted:
                return path
        except ValueError:
            continue
    raise CommandError(f"wedge {wedge} is not listed in {root / (split + '.txt')}")


def _print_stats(root: Path, args) -> int:
    from ..data import load_wedge, read_manifest
    from ..data.statistics import summarize

    paths = read_manifest(root, args.split)
    if args.limit is not None:
        if args.limit < 1:
            raise CommandError(f"--limit must be a positive number of wedges, got {args.limit}")
        paths = paths[: args.limit]
    summary = summarize((load_wedge(path) for path in paths), clusters=not args.no_clusters).as_dict()
    if args.json:
        print(json.dumps(summary, indent=2))
        return 0

    occupancy = summary["occupancy"]
    print(f"wedges              {summary['wedges']}")
    if summary["wedges"]:
        print(
            f"occupancy           mean {occupancy['mean']:.5f}  min {occupancy['min']:.5f}  "
            f"p05 {occupancy['p05']:.5f}  p95 {occupancy['p95']:.5f}  max {occupancy['max']:.5f}"
        )
    print(f"smallest ADC        {summary['min_recorded_adc']}")
    print(f"saturated (1023)    {summary['saturated_fraction']:.3e} of recorded values")
    for name in ("cluster_pads", "cluster_samples", "cluster_voxels"):
        stats = summary[name]
        if stats.get("count"):
            print(
                f"{name:<20}mean {stats['mean']:.2f}  median {stats['median']:.1f}  "
                f"p10 {stats['p10']:.1f}  p90 {stats['p90']:.1f}  ({stats['count']} clusters)"
            )
    histogram = summary["log_adc_histogram"]
    total = sum(histogram["counts"]) or 1
    print("log ADC histogram (bin start, percent of recorded values):")
    for start, count in zip(histogram["edges"], histogram["counts"]):
        if count:
            print(f"  {start:4.1f}  {100.0 * count / total:7.3f}")
    return 0


def run(args) -> int:
    from ..data import WedgeId, load_wedge
    from ..data.show import render_wedge

    source = Path(args.source)
    if args.stats:
        if not source.is_dir():
            raise CommandError(f"--stats needs a dataset root folder, got {source}")
        return _print_stats(source, args)
    if args.output is None:
        raise CommandError("-o/--output PNG file is required to draw a wedge")

    path = _wedge_from_root(source, args.split, args.wedge) if source.is_dir() else source
    adc = load_wedge(path)
    try:
        wedge_id = WedgeId.from_path(path)
        side, sector, title = wedge_id.side, wedge_id.sector, f"wedge {wedge_id}"
    except ValueError:
        side, sector, title = 0, 0, path.name
    render_wedge(adc, args.output, title=title, side=side, sector=sector)
    print(args.output)
    return 0

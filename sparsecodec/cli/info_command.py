"""``sparsecodec info``: the header and a per-wedge summary of a compressed file, without decoding."""

from __future__ import annotations

import json
import math
import os

from .decompress_command import EXIT_DAMAGED


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "info",
        help="show the header and per-wedge sizes of a .scz file",
        description="Print the header (model, gate, wedge shape, codings) and one line per wedge record "
                    "(voxel counts, codings, bytes, bits per kept voxel). Checksums are verified; no model "
                    "is loaded and no block is decoded. With --skip-damaged a damaged file is listed up to "
                    f"and past its damaged regions, which are reported, and the exit status is {EXIT_DAMAGED}.",
    )
    parser.add_argument("file", metavar="FILE", help="compressed file (.scz)")
    parser.add_argument("--json", action="store_true", help="print the report as a JSON object")
    parser.add_argument("--skip-damaged", action="store_true",
                        help="list the intact records of a damaged file and report each damaged region "
                             "(byte range, lost record indices) instead of stopping at the first")
    parser.set_defaults(func=run)


def run(args) -> int:
    from ..codec.reader import CompressedFileReader

    with CompressedFileReader(args.file) as reader:
        infos = [info for info, _ in reader.records(decode=False, skip_damaged=args.skip_damaged)]
        header = reader.header
        version = reader.version
        damaged = list(reader.damaged)
    status = EXIT_DAMAGED if damaged else 0
    size = os.path.getsize(args.file)
    kept = sum(info.kept_count for info in infos)
    signal = sum(info.signal_count for info in infos)

    if args.json:
        report = {
            "file": str(args.file),
            "bytes": size,
            "format_version": version,
            "header": json.loads(header.to_json()),
            "wedges": len(infos),
            "signal_voxels": signal,
            "kept_voxels": kept,
            "damaged_regions": [region.describe() for region in damaged],
            "records": [
                {"index": info.index, "wedge_id": info.wedge_id, "signal_count": info.signal_count,
                 "kept_count": info.kept_count, "coordinate_coding": info.coordinate_coding,
                 "coordinate_bytes": info.coordinate_bytes, "value_coding": info.value_coding,
                 "value_bytes": info.value_bytes, "record_bytes": info.record_bytes}
                for info in infos
            ],
        }
        print(json.dumps(report, indent=2))
        return status

    layers, azimuths, times = header.wedge_shape
    gate = header.gate_mode if header.gate_value is None else f"{header.gate_mode}={header.gate_value:g}"
    print(f"file:          {args.file} ({size} bytes, format version {version}, {'damaged' if damaged else 'complete'})")
    print(f"model:         {header.model_name} (weights sha256 {header.model_sha256})")
    print(f"gate:          {gate}, seed {header.gate_seed}")
    print(f"wedge shape:   {layers} x {azimuths} x {times} (layer, azimuth, time), float16 values")
    print(f"codings:       coordinates {header.coordinate_coding}, values {header.value_coding}")
    print(f"created by:    {header.created_by or 'unknown'}")
    for key, value in sorted(header.metadata.items()):
        print(f"{key + ':':<14} {value}")
    bits = 8 * size / kept if kept else math.nan
    print(f"wedges:        {len(infos)}, {kept} of {signal} signal voxels kept, {bits:.2f} file bits per kept voxel")
    for region in damaged:
        print(f"damaged:       {region.describe()}")
    if not infos:
        return status

    print()
    width = max(7, max(len(info.wedge_id) for info in infos))
    print(f"{'index':>5}  {'wedge id':<{width}}  {'signal':>7}  {'kept':>7}  {'kept %':>6}  "
          f"{'coordinates':>17}  {'values':>12}  {'bytes':>8}  {'bits/kept':>9}")
    for info in infos:
        fraction = 100 * info.kept_count / info.signal_count if info.signal_count else math.nan
        coordinates = f"{info.coordinate_coding} {info.coordinate_bytes}"
        values = f"{info.value_coding} {info.value_bytes}"
        print(f"{info.index:>5}  {info.wedge_id:<{width}}  {info.signal_count:>7}  {info.kept_count:>7}  "
              f"{fraction:>6.2f}  {coordinates:>17}  {values:>12}  {info.record_bytes:>8}  "
              f"{info.bits_per_kept_voxel:>9.2f}")
    return status

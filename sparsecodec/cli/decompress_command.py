"""``sparsecodec decompress``: rebuild wedges from a compressed file and write them as ``.npy`` files."""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from pathlib import Path

from . import CommandError
from .compress_command import add_model_options, open_codec, progress_bar

log = logging.getLogger(__name__)

#: Exit status when damaged records were skipped with --skip-damaged and the rest was written.
EXIT_DAMAGED = 3


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "decompress",
        help="rebuild wedges from a .scz file",
        description="Decode every wedge of a compressed file with the model it was written with and write "
                    "each as a uint16 .npy file of raw ADC counts in the public layout (azimuth, time, layer). "
                    "Wedges with public-layout ids go to 12-2_{sector}-{side}/...npy under DIR. Nothing is "
                    f"written unless every wedge decodes; with --skip-damaged the exit status is {EXIT_DAMAGED} "
                    "when damaged records were skipped.",
    )
    parser.add_argument("file", metavar="FILE", help="compressed file (.scz)")
    parser.add_argument("-o", "--output", required=True, metavar="DIR", help="folder to write the wedges into")
    parser.add_argument("--force", action="store_true", help="overwrite wedge files that exist in DIR")
    parser.add_argument("--skip-damaged", action="store_true",
                        help="skip damaged records, report them, and write every intact wedge")
    add_model_options(parser)
    parser.set_defaults(func=run)


def run(args) -> int:
    from ..codec.inputs import output_path_of, save_wedge_file
    from ..codec.pipeline import adc_from_reconstruction, check_model_matches, decompress_file
    from ..codec.reader import CompressedFileReader

    output = Path(args.output)
    if output.exists() and not output.is_dir():
        raise CommandError(f"output {output} exists and is not a folder")

    with CompressedFileReader(args.file) as reader:
        codec = open_codec(args)
        check_model_matches(codec, reader.header, reader.path)

        # First pass: checksums and ids only, so damage or a name clash stops us before any decoding.
        targets = {}
        for info, _ in reader.records(decode=False, skip_damaged=args.skip_damaged):
            relative = output_path_of(info.wedge_id)
            if relative in targets.values():
                raise CommandError(f"{args.file}: two records map to the same output file {relative}")
            targets[info.index] = relative
        existing = [str(output / relative) for relative in targets.values() if (output / relative).exists()]
        if existing and not args.force:
            raise CommandError(f"output file {existing[0]} exists ({len(existing)} in all); pass --force to overwrite")

        output.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(dir=output.parent, prefix=f".{output.name}.", suffix=".partial"))
        try:
            written = []
            with progress_bar(len(targets), "decompress", args) as bar:
                for info, reconstruction in decompress_file(codec, reader.path, batch_size=args.batch_size,
                                                            skip_damaged=args.skip_damaged, reader=reader):
                    relative = targets.get(info.index) or output_path_of(info.wedge_id)
                    save_wedge_file(staging / relative, adc_from_reconstruction(reconstruction))
                    written.append(relative)
                    bar.update(1)
            for relative in written:
                (output / relative).parent.mkdir(parents=True, exist_ok=True)
                os.replace(staging / relative, output / relative)
        finally:
            shutil.rmtree(staging, ignore_errors=True)

        print(f"{args.file}: wrote {len(written)} wedge{'' if len(written) == 1 else 's'} to {output}")
        if reader.damaged:
            for region in reader.damaged:
                log.error("%s: skipped damaged %s", args.file, region.describe())
            print(f"{args.file}: {len(reader.damaged)} damaged regions skipped; see the errors above")
            return EXIT_DAMAGED
    return 0

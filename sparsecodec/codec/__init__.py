"""The compressed file format and the compress / decompress pipeline around BCAE-VS.

``docs/format.md`` specifies the format. :class:`CompressedFileWriter` and
:class:`CompressedFileReader` stream one wedge record at a time. :func:`open_model`,
:func:`compress_to_file` and :func:`decompress_file` run the model around them.
"""

from .errors import ChecksumError, FormatError, FormatVersionError, OutputExistsError, TruncatedFileError
from .format import FILE_SUFFIX, FORMAT_VERSION, MAGIC, FileHeader, RecordInfo, WedgeRecord
from .pipeline import CodecModel, compress_to_file, decompress_file, open_model
from .reader import CompressedFileReader, DamagedRegion, read_records
from .writer import CompressedFileWriter

__all__ = [
    "ChecksumError",
    "CodecModel",
    "CompressedFileReader",
    "CompressedFileWriter",
    "DamagedRegion",
    "FILE_SUFFIX",
    "FORMAT_VERSION",
    "FileHeader",
    "FormatError",
    "FormatVersionError",
    "MAGIC",
    "OutputExistsError",
    "RecordInfo",
    "TruncatedFileError",
    "WedgeRecord",
    "compress_to_file",
    "decompress_file",
    "open_model",
    "read_records",
]

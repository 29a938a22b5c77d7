"""The compressed file format and the compress / decompress pipeline around BCAE-VS.

``docs/format.md`` specifies the format. :class:`CompressedFileWriter` and
:class:`CompressedFileReader` stream one wedge record at a time; :mod:`.pipeline` runs the model.
"""

from .errors import ChecksumError, FormatError, FormatVersionError, OutputExistsError, TruncatedFileError
from .format import FILE_SUFFIX, FORMAT_VERSION, MAGIC, FileHeader, RecordInfo, WedgeRecord
from .reader import CompressedFileReader, DamagedRegion, read_records
from .writer import CompressedFileWriter

__all__ = [
    "ChecksumError",
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
    "read_records",
]

"""Exceptions of the compressed file format.

Every problem found in a file's bytes raises :class:`FormatError` or a subclass, which is a
``ValueError``: callers that accept files from elsewhere need to catch only that one type.
"""

from __future__ import annotations


class FormatError(ValueError):
    """A file is not a valid sparsecodec compressed file; the message names the file and the spot."""


class FormatVersionError(FormatError):
    """A file uses a format version that this reader cannot read (usually a newer one)."""


class ChecksumError(FormatError):
    """A stored CRC32 does not match the bytes it covers: the file is damaged."""


class TruncatedFileError(FormatError):
    """A file ends before its end trailer: it was cut short, for example by an interrupted copy."""


class OutputExistsError(FileExistsError):
    """An output path exists and overwriting it was not requested (``--force``)."""

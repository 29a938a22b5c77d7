"""Atomic file writes: a temporary file in the target folder, fsync, then ``os.replace``."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


def file_mode() -> int:
    """Return the permission bits of a new file under the current umask (0o666 minus the umask)."""
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


def create_temporary(path: Path) -> tuple[int, Path]:
    """Create a temporary file beside ``path`` with the mode a plain ``open`` would give it.

    Returns (file descriptor, temporary path). ``mkstemp`` alone makes the file readable by its
    owner only, which would carry over to the output after the rename.
    """
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".partial")
    os.chmod(temporary, file_mode())
    return handle, Path(temporary)


def write_atomic(path: str | Path, data: bytes) -> None:
    """Write ``data`` to ``path`` so that readers see either the old file or the complete new one."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = create_temporary(path)
    try:
        with os.fdopen(handle, "wb") as stream:
            stream.write(data)
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise

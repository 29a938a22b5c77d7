"""Atomic writes shared by every writer: permissions, no partial files, old file kept on failure."""

import os
import stat

import numpy as np
import pytest

from sparsecodec import atomic
from sparsecodec.data import load_wedge, save_wedge
from sparsecodec.model import BCAEVS, load_model, save_model


def _mode(path):
    return stat.S_IMODE(os.stat(path).st_mode)


@pytest.fixture
def umask_022():
    previous = os.umask(0o022)
    yield
    os.umask(previous)


def test_write_atomic_replaces_content_and_leaves_no_temporary(tmp_path, umask_022):
    target = tmp_path / "sub" / "file.bin"
    atomic.write_atomic(target, b"first")
    atomic.write_atomic(target, b"second")

    assert target.read_bytes() == b"second"
    assert _mode(target) == 0o644
    assert sorted(p.name for p in target.parent.iterdir()) == ["file.bin"]


def test_failed_replace_keeps_the_old_file(tmp_path, monkeypatch):
    target = tmp_path / "file.bin"
    target.write_bytes(b"old")

    def fail_replace(source, destination):
        raise OSError("disk full")

    monkeypatch.setattr(atomic.os, "replace", fail_replace)
    with pytest.raises(OSError, match="disk full"):
        atomic.write_atomic(target, b"new")

    assert target.read_bytes() == b"old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file.bin"]


def test_wedge_and_model_files_follow_the_umask(tmp_path, umask_022):
    wedge = np.zeros((16, 192, 249), dtype=np.uint16)
    wedge[3, 10, 20] = 100
    save_wedge(tmp_path / "wedge.npy", wedge)
    save_model(BCAEVS(backend="dense"), tmp_path / "model.pt", name="test-model")

    assert _mode(tmp_path / "wedge.npy") == 0o644
    assert _mode(tmp_path / "model.pt") == 0o644
    assert np.array_equal(load_wedge(tmp_path / "wedge.npy"), wedge)
    assert load_model(tmp_path / "model.pt", backend="dense")[1] == "test-model"

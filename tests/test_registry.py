"""Backend selection, availability report and lazy imports."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

import sparsecodec.backends as backends


def test_available_lists_every_backend():
    report = backends.available()
    assert list(report) == ["dense", "native", "spconv", "minkowski", "torchsparse"]
    assert report["dense"] == "ok"
    assert report["native"] == "ok"
    for name, status in report.items():
        assert status == "ok" or status.startswith(("not installed", "import failed", "unsupported", "no CUDA")), (name, status)


def test_unknown_name_lists_valid_names():
    with pytest.raises(ValueError, match="valid names: dense, native, spconv, minkowski, torchsparse"):
        backends.get("cuda-magic")


def test_unknown_name_from_environment(monkeypatch):
    monkeypatch.setenv("SPARSE_BACKEND", "nope")
    with pytest.raises(ValueError, match="from environment variable SPARSE_BACKEND"):
        backends.get()


def test_environment_selects_backend(monkeypatch):
    monkeypatch.setenv("SPARSE_BACKEND", "dense")
    assert backends.get().name == "dense"
    monkeypatch.setenv("SPARSE_BACKEND", " Native ")
    assert backends.get().name == "native"


def test_argument_beats_environment(monkeypatch):
    monkeypatch.setenv("SPARSE_BACKEND", "dense")
    assert backends.get("native").name == "native"


def test_default_is_first_available(monkeypatch):
    monkeypatch.delenv("SPARSE_BACKEND", raising=False)
    expected = next(name for name in backends.PREFERENCE_ORDER if backends.status(name) == "ok")
    assert backends.get().name == expected


def test_unavailable_backend_names_package_and_fix(monkeypatch):
    missing = [name for name, status in backends.available().items() if status.startswith("not installed")]
    if not missing:
        pytest.skip("every optional backend is installed here, so none can be reported missing")
    name = missing[0]
    with pytest.raises(backends.BackendUnavailableError, match=f"'{name}' is unavailable: not installed.*install with"):
        backends.get(name)


def test_import_loads_no_optional_library_and_no_cuda():
    # A fresh interpreter: import the package and the registry, then report what got loaded and
    # whether CUDA was initialised.
    script = (
        "import sys, json, torch\n"
        "import sparsecodec, sparsecodec.backends, sparsecodec.kernels\n"
        "loaded = [m for m in ('spconv', 'MinkowskiEngine', 'torchsparse', 'numba') if m in sys.modules]\n"
        "print(json.dumps({'loaded': loaded, 'cuda_initialized': torch.cuda.is_initialized()}))\n"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["loaded"] == []
    assert report["cuda_initialized"] is False

"""Finding torch's OpenMP runtime when other packages bring their own."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
import textwrap

import pytest
import torch

LINUX_OPENMP = sys.platform.startswith("linux") and "parallel backend: OpenMP" in torch.__config__.parallel_info()


@pytest.mark.skipif(not LINUX_OPENMP, reason="torch's OpenMP region is used only on Linux with torch built with OpenMP")
@pytest.mark.skipif(importlib.util.find_spec("spconv") is None,
                    reason="needs spconv, whose wheels bring a second libgomp")
def test_torch_runtime_found_beside_spconv_runtime():
    # spconv is imported first, so two OpenMP runtimes are mapped before native looks for one.
    script = textwrap.dedent("""
        import ctypes, os
        import torch
        import spconv.pytorch
        from sparsecodec.kernels import openmp

        class Info(ctypes.Structure):
            _fields_ = [("name", ctypes.c_char_p), ("base", ctypes.c_void_p),
                        ("symbol", ctypes.c_char_p), ("address", ctypes.c_void_p)]

        print(len(openmp._mapped_runtimes()))
        print(openmp.parallel_region() is not None)
        info = Info()
        ctypes.CDLL(None).dladdr(ctypes.cast(openmp._gomp_parallel(), ctypes.c_void_p), ctypes.byref(info))
        path = info.name.decode()
        # torch's Linux wheels ship libgomp next to libtorch_cpu.so, other builds use the system's.
        torch_lib = os.path.join(os.path.dirname(torch.__file__), "lib")
        bundled = any(name.startswith("libgomp") for name in os.listdir(torch_lib))
        print(os.path.dirname(path) == torch_lib if bundled else "spconv" not in path)
    """)
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    runtimes, found, in_torch = result.stdout.split()
    assert int(runtimes) >= 2
    assert found == "True"
    assert in_torch == "True"


@pytest.mark.skipif(not LINUX_OPENMP, reason="torch's OpenMP region is used only on Linux with torch built with OpenMP")
def test_openmp_region_disabled_by_environment(monkeypatch):
    from sparsecodec.kernels import openmp

    monkeypatch.setenv("SPARSECODEC_OPENMP", "0")
    assert openmp.parallel_region() is None
    assert openmp.runtime_description() == "Python threads"

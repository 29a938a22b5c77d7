"""Shared fixtures: the backend x device matrix and the float64 dense oracle."""

from __future__ import annotations

import os

import pytest
import torch

import sparsecodec.backends as backends

ALL_BACKENDS = tuple(backends.BACKENDS)

#: Conformance tolerance per feature dtype: max abs error <= TOLERANCE * max |oracle output|.
TOLERANCE = {
    torch.float64: 1e-12,
    torch.float32: 1e-5,
    torch.float16: 1e-2,
    torch.bfloat16: 2e-2,
}

_conformance_errors: dict[str, float] = {}


def selected_backends() -> tuple[str, ...]:
    """Backends under test: the one SPARSE_BACKEND names, else every known backend."""
    chosen = os.environ.get(backends.ENV_VAR, "").strip()
    return (chosen,) if chosen else ALL_BACKENDS


def _device_params():
    reason = f"CUDA not available (torch {torch.__version__})"
    return [
        pytest.param("cpu", id="cpu"),
        pytest.param("cuda", id="cuda", marks=pytest.mark.skipif(not torch.cuda.is_available(), reason=reason)),
    ]


@pytest.fixture(params=selected_backends())
def backend(request):
    """A loaded backend; unavailable ones skip with the reason, unless SPARSE_BACKEND asked for them."""
    name = request.param
    reason = backends.status(name)
    if reason != "ok":
        if os.environ.get(backends.ENV_VAR, "").strip():
            pytest.fail(f"{backends.ENV_VAR}={name} but the backend is unavailable: {reason}")
        pytest.skip(f"backend {name!r} unavailable: {reason}")
    return backends.get(name)


@pytest.fixture(params=_device_params())
def device(request, backend):
    """A device the current backend runs on."""
    if request.param not in backend.device_types:
        pytest.skip(f"backend {backend.name!r} does not run on {request.param}")
    return torch.device(request.param)


def oracle(coords, features, weight, dilation, spatial_shape, batch_size=None, bias=None):
    """Float64 dense reference on CPU."""
    dense = backends.get("dense")
    kernel_map = dense.build_kernel_map(
        coords.cpu(), spatial_shape, weight.shape[-1], dilation, batch_size=batch_size, cache=False
    )
    bias64 = None if bias is None else bias.detach().double().cpu()
    return dense.conv(features.detach().double().cpu(), kernel_map, weight.detach().double().cpu(), bias64)


def assert_close_to_oracle(output: torch.Tensor, reference: torch.Tensor, dtype: torch.dtype, label: str):
    """Check ``output`` against the oracle with the per-dtype tolerance and record the error."""
    assert output.shape == reference.shape, f"{label}: shape {tuple(output.shape)} != {tuple(reference.shape)}"
    if reference.numel() == 0:
        return
    error = (output.detach().double().cpu() - reference).abs().max().item()
    scale = reference.abs().max().item()
    relative = error / scale if scale > 0 else error
    _conformance_errors[label] = max(relative, _conformance_errors.get(label, 0.0))
    assert relative <= TOLERANCE[dtype], (
        f"{label}: max abs error {error:.3g} is {relative:.3g} of max |output| {scale:.3g}, "
        f"tolerance {TOLERANCE[dtype]:g} for {dtype}"
    )


def pytest_terminal_summary(terminalreporter):
    if not _conformance_errors:
        return
    worst: dict[str, float] = {}
    for label, relative in _conformance_errors.items():
        key = label.split(":")[0]
        worst[key] = max(worst.get(key, 0.0), relative)
    terminalreporter.section("conformance: max abs error / max |oracle| per backend, device and dtype")
    for key in sorted(worst):
        terminalreporter.write_line(f"{key:40s} {worst[key]:.3g}")

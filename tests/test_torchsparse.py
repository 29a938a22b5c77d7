"""The ``torchsparse`` adapter: availability reasons, offset order and its own kernel map.

Tests that need torchsparse skip with the reason when it is not installed; the availability and
layout tests run everywhere.
"""

from __future__ import annotations

import importlib.util
import itertools

import pytest
import torch

import sparsecodec.backends as backends
from conftest import assert_close_to_oracle, oracle
from sparse_cases import at_occupancy, batch_of, track_like
from sparsecodec.backends import torchsparse_backend
from sparsecodec.backends.torchsparse_backend import (
    canonical_to_torchsparse,
    kernel_offsets,
    torchsparse_to_canonical,
)

REASON = backends.status("torchsparse")
needs_torchsparse = pytest.mark.skipif(REASON != "ok", reason=f"backend 'torchsparse' unavailable: {REASON}")
SHAPE = (8, 40, 50)


@pytest.fixture
def fresh_extension_cache():
    torchsparse_backend.load_extension.cache_clear()
    yield
    torchsparse_backend.load_extension.cache_clear()


def brute_force_pairs(coords: torch.Tensor, offsets: torch.Tensor) -> set[tuple[int, int, int]]:
    """Return every (offset index, input row, output row) with input = output + offset, same batch."""
    position = {tuple(row): i for i, row in enumerate(coords.tolist())}
    pairs = set()
    for out_row, (batch, *site) in enumerate(coords.tolist()):
        for index, offset in enumerate(offsets.tolist()):
            neighbour = (batch, *(s + o for s, o in zip(site, offset)))
            if neighbour in position:
                pairs.add((index, position[neighbour], out_row))
    return pairs


# --- availability ---------------------------------------------------------------------------


def test_status_when_not_installed(monkeypatch):
    real_find_spec = importlib.util.find_spec

    def find_spec(name, *args, **kwargs):
        return None if name == "torchsparse" else real_find_spec(name, *args, **kwargs)

    monkeypatch.setattr(importlib.util, "find_spec", find_spec)
    reason = backends.status("torchsparse")
    assert reason.startswith("not installed: Python package 'torchsparse' not found")
    assert "github.com/mit-han-lab/torchsparse" in reason


def test_status_names_unsupported_version(monkeypatch):
    monkeypatch.setattr(torchsparse_backend, "installed_version", lambda: "1.4.0")
    assert torchsparse_backend.probe() == (
        "unsupported version: torchsparse 1.4.0 found, 2.x needed (verified: 2.0.0, 2.1.0)"
    )


def test_status_names_missing_extension(tmp_path, monkeypatch, fresh_extension_cache):
    package = tmp_path / "torchsparse"
    package.mkdir()
    (package / "__init__.py").write_text("raise RuntimeError('the package must not be imported')\n")
    (package / "version.py").write_text("__version__ = '2.1.0'\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(__import__("sys").modules, "torchsparse", raising=False)

    reason = torchsparse_backend.probe()
    assert reason.startswith("import failed: torchsparse 2.1.0 extension: ImportError: ")
    assert f"torchsparse at {package} has no compiled extension backend" in reason


# --- layout and offsets (no library needed) ---------------------------------------------------


def test_offsets_run_axis_zero_fastest():
    offsets = kernel_offsets(3, 1)
    assert offsets.dtype == torch.int32
    assert offsets.shape == (27, 3)
    assert offsets[0].tolist() == [-1, -1, -1]
    assert offsets[1].tolist() == [0, -1, -1]
    assert offsets[3].tolist() == [-1, 0, -1]
    assert offsets[9].tolist() == [-1, -1, 0]
    assert offsets[13].tolist() == [0, 0, 0], "the centre tap must be the middle index"


@pytest.mark.parametrize("dilation", [1, 2, 4])
def test_offsets_scale_with_dilation(dilation):
    steps = range(-dilation, dilation + 1, dilation)
    expected = [[a0, a1, a2] for a2, a1, a0 in itertools.product(steps, steps, steps)]
    assert kernel_offsets(3, dilation).tolist() == expected


@pytest.mark.parametrize("kernel_size", [1, 3, 5])
def test_weight_index_matches_offset_index(kernel_size):
    """Kernel index i of a converted weight contains the canonical tap of offset i."""
    radius = kernel_size // 2
    weight = torch.arange(kernel_size**3, dtype=torch.float64).reshape(1, 1, kernel_size, kernel_size, kernel_size)
    converted = canonical_to_torchsparse(weight)
    for index, (o0, o1, o2) in enumerate(kernel_offsets(kernel_size, 1).tolist()):
        assert converted[index, 0, 0] == weight[0, 0, o0 + radius, o1 + radius, o2 + radius]


@pytest.mark.parametrize("kernel_size", [1, 3, 5])
def test_layout_round_trip_is_exact(kernel_size):
    weight = torch.randn(4, 3, kernel_size, kernel_size, kernel_size)
    converted = canonical_to_torchsparse(weight)
    assert converted.shape == (kernel_size**3, 3, 4)
    assert torch.equal(torchsparse_to_canonical(converted), weight)


def test_layout_rejects_non_cubic_volume():
    with pytest.raises(ValueError, match="kernel volume 26"):
        torchsparse_to_canonical(torch.zeros(26, 2, 2))


# --- the kernel map built from torchsparse's hashing --------------------------------------------


@needs_torchsparse
@pytest.mark.parametrize("dilation", [1, 2, 4])
def test_kernel_map_matches_brute_force(dilation):
    backend = backends.get("torchsparse")
    coords = batch_of(at_occupancy(0.02, SHAPE, seed=dilation), track_like(tracks=3, shape=SHAPE, seed=dilation))
    kernel_map = backend.build_kernel_map(coords, SHAPE, 3, dilation, cache=False)
    neighbour_map, pair_counts = kernel_map.data

    assert neighbour_map.dtype == torch.int32
    assert pair_counts.dtype == torch.int32
    offset_index = torch.repeat_interleave(torch.arange(27), pair_counts.long())
    found = {
        (int(k), int(i), int(o)) for k, (i, o) in zip(offset_index, neighbour_map.tolist())
    }
    expected = brute_force_pairs(coords, kernel_offsets(3, dilation))
    assert found == expected
    assert len(found) == neighbour_map.shape[0], "no pair may appear twice"


@needs_torchsparse
def test_dilation_changes_the_kernel_map():
    # torchsparse's own conv3d would build the same map for both dilations.
    backend = backends.get("torchsparse")
    coords = torch.tensor([[0, 3, 5, 5], [0, 3, 5, 7], [0, 5, 5, 5]], dtype=torch.int32)
    dilated = backend.build_kernel_map(coords, SHAPE, 3, 2, cache=False).data[0]
    plain = backend.build_kernel_map(coords, SHAPE, 3, 1, cache=False).data[0]
    assert neighbour_pairs(plain) == {(0, 0), (1, 1), (2, 2)}
    # Every two of the three sites differ by 0 or 2 along each axis.
    assert neighbour_pairs(dilated) == {(i, o) for i in range(3) for o in range(3)}


def neighbour_pairs(neighbour_map: torch.Tensor) -> set[tuple[int, int]]:
    return {tuple(pair) for pair in neighbour_map.tolist()}


@needs_torchsparse
def test_hash_collision_between_sites_raises(monkeypatch):
    backend = backends.get("torchsparse")
    # Every site hashing to one value is the extreme collision: the table would keep one site.
    monkeypatch.setattr(backend, "_extension", FakeHashes(backend._extension, same_reference=True))
    coords = track_like(tracks=2, shape=SHAPE, seed=1)
    with pytest.raises(RuntimeError, match="hash collided for two input sites"):
        backend.build_kernel_map(coords, SHAPE, 3, 1, cache=False)


@needs_torchsparse
def test_hash_matching_wrong_site_raises(monkeypatch):
    backend = backends.get("torchsparse")
    # Hashing the unshifted rows for every offset makes each site its own neighbour everywhere,
    # as if the offsets (and with them the dilation) were ignored.
    monkeypatch.setattr(backend, "_extension", FakeHashes(backend._extension, ignore_offsets=True))
    coords = track_like(tracks=2, shape=SHAPE, seed=1)
    with pytest.raises(RuntimeError, match="matched a site that is not the requested neighbour"):
        backend.build_kernel_map(coords, SHAPE, 3, 2, cache=False)


class FakeHashes:
    """Wrap the extension and corrupt one hashing step."""

    def __init__(self, extension, same_reference=False, ignore_offsets=False):
        self._extension = extension
        self._same_reference = same_reference
        self._ignore_offsets = ignore_offsets

    def __getattr__(self, name):
        return getattr(self._extension, name)

    def hash_cpu(self, points):
        hashes = self._extension.hash_cpu(points)
        return torch.full_like(hashes, 12345) if self._same_reference else hashes

    def kernel_hash_cpu(self, points, offsets):
        if self._ignore_offsets:
            return self._extension.kernel_hash_cpu(points, torch.zeros_like(offsets))
        return self._extension.kernel_hash_cpu(points, offsets)


# --- convolution -------------------------------------------------------------------------------


@needs_torchsparse
def test_one_by_one_kernel_is_a_matmul():
    backend = backends.get("torchsparse")
    coords = at_occupancy(0.05, SHAPE, seed=2)
    features = torch.randn(coords.shape[0], 3, dtype=torch.float64)
    weight = torch.randn(2, 3, 1, 1, 1, dtype=torch.float64)
    kernel_map = backend.build_kernel_map(coords, SHAPE, 1, 1, cache=False)
    assert kernel_map.data is None
    output = backend.conv(features.float(), kernel_map, weight.float())
    assert_close_to_oracle(output, oracle(coords, features, weight, 1, SHAPE), torch.float32,
                           "torchsparse/cpu/float32: k1 matmul")


@needs_torchsparse
def test_float64_rejected_with_supported_dtypes():
    backend = backends.get("torchsparse")
    coords = at_occupancy(0.01, SHAPE, seed=3)
    kernel_map = backend.build_kernel_map(coords, SHAPE, 3, 1)
    features = torch.randn(coords.shape[0], 2, dtype=torch.float64)
    with pytest.raises(TypeError, match="backend 'torchsparse' supports feature dtypes float32, got torch.float64"):
        backend.conv(features, kernel_map, torch.randn(2, 2, 3, 3, 3, dtype=torch.float64))


@needs_torchsparse
def test_cuda_tensors_rejected():
    if not torch.cuda.is_available():
        pytest.skip(f"CUDA not available (torch {torch.__version__})")
    backend = backends.get("torchsparse")
    coords = at_occupancy(0.01, SHAPE, seed=3).cuda()
    with pytest.raises(ValueError, match="backend 'torchsparse' runs on cpu, not on cuda"):
        backend.build_kernel_map(coords, SHAPE, 3, 1)


@needs_torchsparse
def test_thread_setting_restored():
    backend = backends.get("torchsparse")
    before = torch.get_num_threads()
    coords = at_occupancy(0.02, SHAPE, seed=4)
    features = torch.randn(coords.shape[0], 2, requires_grad=True)
    weight = torch.randn(2, 2, 3, 3, 3, requires_grad=True)
    output = backends.submanifold_conv3d(coords, features, weight, dilation=2, spatial_shape=SHAPE, backend=backend)
    output.sum().backward()
    assert torch.get_num_threads() == before

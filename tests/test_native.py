"""Properties specific to the native backend: determinism, both code paths, the cache."""

from __future__ import annotations

import gc
from contextlib import contextmanager

import numpy as np
import pytest
import torch

import sparsecodec.backends as backends
from sparsecodec.kernels import canonical_to_offset_major, capabilities
from sparse_cases import WEDGE_SHAPE, at_occupancy, track_like


@pytest.fixture
def native():
    return backends.get("native")


@pytest.fixture(params=["openmp", "python"])
def runtime(request, monkeypatch):
    """Run native's numba kernels with parallel stacks on torch's OpenMP threads or on Python threads."""
    from sparsecodec.kernels import openmp

    monkeypatch.setattr(capabilities, "FORCE_TORCH_PATH", False)
    monkeypatch.setenv("SPARSECODEC_OPENMP", "1" if request.param == "openmp" else "0")
    if request.param == "openmp" and openmp.parallel_region() is None:
        pytest.skip("torch's OpenMP runtime is not reachable here (needs Linux and torch built with OpenMP)")
    return request.param


@contextmanager
def torch_threads(count: int):
    """Set torch's intra-op thread count for the block, then restore it."""
    previous = torch.get_num_threads()
    torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def assert_scratch_restored():
    from sparsecodec.kernels import cpu_numba

    for pool in cpu_numba._all_scratch_pools():
        for (name, _), array in pool.items():
            expected = -1 if name == "owners" else 0
            assert (array == expected).all(), f"scratch array {name!r} not restored after the stack"


def encoder_like_inputs(occupancy=0.1, seed=0):
    coords = at_occupancy(occupancy, seed=seed)
    generator = torch.Generator().manual_seed(seed)
    features = torch.randn(coords.shape[0], 2, generator=generator)
    weight = torch.randn(2, 2, 3, 3, 3, generator=generator)
    return coords, features, weight


@pytest.mark.parametrize("torch_path", [False, True], ids=["numba", "torch"])
def test_repeated_calls_bit_identical(native, monkeypatch, torch_path):
    monkeypatch.setattr(capabilities, "FORCE_TORCH_PATH", torch_path)
    coords, features, weight = encoder_like_inputs()
    first = backends.submanifold_conv3d(coords, features, weight, dilation=2, backend=native)
    for _ in range(3):
        fresh_map = native.build_kernel_map(coords, WEDGE_SHAPE, 3, 2, cache=False)
        again = native.conv(features, fresh_map, weight)
        assert torch.equal(again, first)


def test_numba_and_torch_paths_agree(native, monkeypatch):
    coords, features, weight = encoder_like_inputs(0.3, seed=1)
    kernel_map = native.build_kernel_map(coords, WEDGE_SHAPE, 3, 4)
    monkeypatch.setattr(capabilities, "FORCE_TORCH_PATH", False)
    fast = native.conv(features, kernel_map, weight)
    monkeypatch.setattr(capabilities, "FORCE_TORCH_PATH", True)
    reference = native.conv(features, kernel_map, weight)
    torch.testing.assert_close(fast, reference, rtol=1e-5, atol=1e-5)


def test_numba_switch_from_environment(monkeypatch):
    monkeypatch.setenv("SPARSECODEC_NUMBA", "0")
    assert capabilities.numba_enabled() is False
    monkeypatch.setenv("SPARSECODEC_NUMBA", "1")
    assert capabilities.numba_enabled() is True


def test_cache_keyed_on_identity_and_version(native):
    coords = track_like(tracks=5, seed=2)
    first = native.build_kernel_map(coords, WEDGE_SHAPE, 3, 1)
    assert native.build_kernel_map(coords, WEDGE_SHAPE, 3, 1) is first
    assert native.build_kernel_map(coords.clone(), WEDGE_SHAPE, 3, 1) is not first
    assert native.build_kernel_map(coords, WEDGE_SHAPE, 3, 2) is not first

    coords[0, 3] = (int(coords[0, 3]) + 1) % WEDGE_SHAPE[2]
    coords[0, 2] = (int(coords[0, 2]) + 100) % WEDGE_SHAPE[1]
    rebuilt = native.build_kernel_map(coords, WEDGE_SHAPE, 3, 1)
    assert rebuilt is not first, "an in-place edit of coords must invalidate the cached map"
    assert torch.equal(rebuilt.coords, coords)


def test_cache_entry_dies_with_coords(native):
    native.clear_cache()
    coords = track_like(tracks=5, seed=3)
    native.build_kernel_map(coords, WEDGE_SHAPE, 3, 1)
    assert len(native._map_cache) == 1
    del coords
    gc.collect()
    assert len(native._map_cache) == 0


def test_scratch_grid_left_zero(native, monkeypatch):
    from sparsecodec.kernels import cpu_numba

    monkeypatch.setattr(capabilities, "FORCE_TORCH_PATH", False)
    coords, features, weight = encoder_like_inputs(0.05, seed=4)
    backends.submanifold_conv3d(coords, features, weight, dilation=4, backend=native)
    for (name, _), array in cpu_numba._scratch.pool.items():
        expected = -1 if name == "owners" else 0
        assert (array == expected).all(), f"scratch array {name!r} not restored after use"


@pytest.mark.parametrize("torch_path", [False, True], ids=["numba", "torch"])
def test_duplicates_found_on_both_paths(native, monkeypatch, torch_path):
    monkeypatch.setattr(capabilities, "FORCE_TORCH_PATH", torch_path)
    coords = track_like(tracks=5, seed=6)
    coords = torch.cat([coords, coords[7:8]])
    with pytest.raises(ValueError, match=f"rows 7 and {coords.shape[0] - 1}"):
        native.build_kernel_map(coords, WEDGE_SHAPE, 3, 2, cache=False)


@pytest.mark.parametrize("rows", [100, 40000], ids=["one_thread", "threads"])
def test_fused_activation_matches_torch(native, monkeypatch, rows):
    monkeypatch.setattr(capabilities, "FORCE_TORCH_PATH", False)
    coords = at_occupancy(rows / (16 * 192 * 249), seed=7)
    generator = torch.Generator().manual_seed(3)
    features = torch.randn(coords.shape[0], 2, generator=generator)
    weight = torch.randn(2, 2, 3, 3, 3, generator=generator)
    kernel_map = native.build_kernel_map(coords, WEDGE_SHAPE, 3, 2)
    plain = native.conv(features, kernel_map, weight)
    assert torch.equal(native.conv(features, kernel_map, weight, activation="relu"), torch.relu(plain))
    torch.testing.assert_close(native.conv(features, kernel_map, weight, activation="sigmoid"), torch.sigmoid(plain))


def test_generated_stencils_up_to_date():
    from sparsecodec.kernels import stencil_codegen

    assert stencil_codegen.TARGET.read_text() == stencil_codegen.module_source(), (
        "kernels/stencil_small.py is stale; run python -m sparsecodec.kernels.stencil_codegen"
    )
    assert stencil_codegen.RUNS_TARGET.read_text() == stencil_codegen.runs_module_source(), (
        "kernels/stencil_runs.py is stale; run python -m sparsecodec.kernels.stencil_codegen"
    )


@pytest.mark.parametrize("channels", [(1, 2), (2, 2), (3, 4), (4, 1), (5, 3)], ids=lambda c: f"{c[0]}to{c[1]}")
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["float32", "float64"])
def test_unrolled_and_generic_stencils_agree(native, monkeypatch, channels, dtype):
    monkeypatch.setattr(capabilities, "FORCE_TORCH_PATH", False)
    coords = at_occupancy(0.02, seed=8)
    generator = torch.Generator().manual_seed(5)
    features = torch.randn(coords.shape[0], channels[0], generator=generator, dtype=dtype)
    weight = torch.randn(channels[1], channels[0], 3, 3, 3, generator=generator, dtype=dtype)
    kernel_map = native.build_kernel_map(coords, WEDGE_SHAPE, 3, 2)
    fast = native.conv(features, kernel_map, weight, activation="sigmoid")
    monkeypatch.setattr(capabilities, "FORCE_TORCH_PATH", True)
    reference = native.conv(features, kernel_map, weight, activation="sigmoid")
    assert fast.dtype == dtype
    torch.testing.assert_close(fast, reference)


@pytest.mark.parametrize("occupancy", [1e-3, 0.02], ids=["one_call", "threads"])
def test_fused_stack_matches_layer_by_layer(native, monkeypatch, occupancy):
    from sparsecodec.kernels import cpu_numba

    calls = []
    monkeypatch.setattr(cpu_numba, "run_stack_plan", lambda *a, _f=cpu_numba.run_stack_plan: calls.append(1) or _f(*a))
    coords = at_occupancy(occupancy, seed=9)
    generator = torch.Generator().manual_seed(6)
    features = torch.rand(coords.shape[0], 1, generator=generator)
    layers = [(1, 2, 3, 1), (2, 2, 3, 2), (2, 2, 3, 4), (2, 2, 3, 2), (2, 2, 1, 1)]
    weights = [torch.randn(c_out, c_in, k, k, k, generator=generator) for c_in, c_out, k, _ in layers]
    maps = [native.build_kernel_map(coords, WEDGE_SHAPE, k, d) for _, _, k, d in layers]
    activations = ["relu", "relu", "relu", "relu", "sigmoid"]

    fused = native.conv_stack(features, maps, weights, activations)
    assert calls, "the fused numba stack was not used"
    hidden = features
    for kernel_map, weight, activation in zip(maps, weights, activations):
        hidden = native.conv(hidden, kernel_map, weight, activation=activation)
    torch.testing.assert_close(fused, hidden)
    for (name, _), array in cpu_numba._scratch.pool.items():
        expected = -1 if name == "owners" else 0
        assert (array == expected).all(), f"scratch array {name!r} not restored after the stack"


ENCODER_GEOMETRIES = [(3, 1), (3, 2), (3, 4), (3, 2), (1, 1)]
ENCODER_ACTIVATIONS = ["relu", "relu", "relu", "relu", "sigmoid"]


def encoder_weights(seed: int) -> list[torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    channels = [1, 2, 2, 2, 2, 2]
    return [torch.randn(channels[layer + 1], channels[layer], k, k, k, generator=generator)
            for layer, (k, _) in enumerate(ENCODER_GEOMETRIES)]


def stack_through_maps(native, coords, features, weights, batch_size=None):
    maps = [native.build_kernel_map(coords, WEDGE_SHAPE, k, d, batch_size=batch_size) for k, d in ENCODER_GEOMETRIES]
    hidden = features
    for kernel_map, weight, activation in zip(maps, weights, ENCODER_ACTIVATIONS):
        hidden = native.conv(hidden, kernel_map, weight, activation=activation)
    return hidden


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("occupancy,batch", [(1e-3, 1), (0.01, 1), (0.02, 2), (0.12, 1)],
                         ids=["serial", "parallel", "parallel_batch2", "large"])
def test_stack_matches_layer_by_layer(native, runtime, threads, occupancy, batch):
    # 1e-3 occupancy is below STACK_PARALLEL_MIN_ROWS, so it runs serially even on 2 threads.
    from sparsecodec.kernels import cpu_numba

    coords = torch.cat([at_occupancy(occupancy, batch=item, seed=11 + item) for item in range(batch)])
    assert (coords.shape[0] >= cpu_numba.STACK_PARALLEL_MIN_ROWS) == (occupancy > 1e-3)
    features = torch.rand(coords.shape[0], 1, generator=torch.Generator().manual_seed(12))
    weights = encoder_weights(13)
    with torch_threads(threads):
        fused = native.submanifold_stack(coords, WEDGE_SHAPE, features, weights, ENCODER_GEOMETRIES,
                                         ENCODER_ACTIVATIONS, batch_size=batch)
        again = native.submanifold_stack(coords, WEDGE_SHAPE, features, weights, ENCODER_GEOMETRIES,
                                         ENCODER_ACTIVATIONS)
    reference = stack_through_maps(native, coords, features, weights)
    torch.testing.assert_close(fused, reference)
    assert torch.equal(fused, again)
    assert_scratch_restored()


def test_parallel_stack_bit_identical_to_one_thread(native, runtime):
    from sparsecodec.kernels import openmp

    if runtime == "python":
        assert openmp.parallel_region() is None
    coords = track_like(300, seed=14)
    features = torch.rand(coords.shape[0], 1, generator=torch.Generator().manual_seed(15))
    weights = encoder_weights(16)
    outputs = []
    for threads in (1, 2, 3):
        with torch_threads(threads):
            outputs.append(native.submanifold_stack(coords, WEDGE_SHAPE, features, weights, ENCODER_GEOMETRIES,
                                                    ENCODER_ACTIVATIONS))
    assert coords.shape[0] >= 4096
    assert torch.equal(outputs[0], outputs[1])
    assert torch.equal(outputs[0], outputs[2])


def sorted_rows(coords):
    keys = ((coords[:, 0].long() * 16 + coords[:, 1]) * 192 + coords[:, 2]) * 249 + coords[:, 3]
    return coords[torch.argsort(keys)].contiguous()


@pytest.mark.parametrize("threads", [1, 2])
def test_stack_of_runs_bit_identical_to_layers(native, runtime, threads):
    # Sorted track-like rows form runs of up to 5 time bins, which the stack computes with
    # vector loads and its last 1 x 1 x 1 layer fused. Layer by layer, the single-layer kernels
    # compute one row at a time, with the same rounding.
    from sparsecodec.kernels.stack_jobs import position_runs

    coords = sorted_rows(track_like(60, seed=80))
    features = torch.rand(coords.shape[0], 1, generator=torch.Generator().manual_seed(81))
    weights = encoder_weights(82)
    flat = coords[:, 1:].long() @ torch.tensor([192 * 249, 249, 1])
    assert (torch.diff(torch.from_numpy(position_runs(flat.numpy()))) > 1).sum() > 100
    with torch_threads(threads):
        stacked = native.submanifold_stack(coords, WEDGE_SHAPE, features, weights, ENCODER_GEOMETRIES,
                                           ENCODER_ACTIVATIONS)
    assert torch.equal(stacked, stack_through_maps(native, coords, features, weights))


def test_unsorted_rows_give_permuted_output(native, monkeypatch):
    # Sorted rows skip the duplicate search; shuffled rows take it, and must agree row by row.
    monkeypatch.setattr(capabilities, "FORCE_TORCH_PATH", False)
    coords = sorted_rows(track_like(40, seed=23))
    features = torch.rand(coords.shape[0], 1, generator=torch.Generator().manual_seed(24))
    weights = encoder_weights(25)
    order = torch.randperm(coords.shape[0], generator=torch.Generator().manual_seed(26))
    in_order = native.submanifold_stack(coords, WEDGE_SHAPE, features, weights, ENCODER_GEOMETRIES,
                                        ENCODER_ACTIVATIONS)
    shuffled = native.submanifold_stack(coords[order].contiguous(), WEDGE_SHAPE, features[order].contiguous(),
                                        weights, ENCODER_GEOMETRIES, ENCODER_ACTIVATIONS)
    assert torch.equal(shuffled, in_order[order])


def test_adjacent_duplicate_rows_rejected(native, monkeypatch):
    monkeypatch.setattr(capabilities, "FORCE_TORCH_PATH", False)
    coords = sorted_rows(track_like(5, seed=27))
    coords[4] = coords[3]
    features = torch.rand(coords.shape[0], 1)
    with pytest.raises(ValueError, match=r"duplicate coordinate .* at rows 3 and 4"):
        native.submanifold_stack(coords, WEDGE_SHAPE, features, encoder_weights(28), ENCODER_GEOMETRIES,
                                 ENCODER_ACTIVATIONS, batch_size=1)


@pytest.mark.parametrize("change,message", [
    (lambda c: c.__setitem__((5, 1), 16), r"coordinate 16 on spatial axis 0"),
    (lambda c: c.__setitem__((5, 3), -1), r"coordinate -1 on spatial axis 2"),
    (lambda c: c.__setitem__((5, 0), -2), r"negative batch index -2"),
    (lambda c: c.__setitem__((5, 0), 1), r"batch index 1 but batch_size is 1"),
    (lambda c: c.__setitem__(7, c[3].clone()), r"duplicate coordinate .* at rows 3 and 7"),
], ids=["layer", "time", "negative_batch", "batch_size", "duplicate"])
def test_stack_rejects_bad_coordinates(native, monkeypatch, change, message):
    monkeypatch.setattr(capabilities, "FORCE_TORCH_PATH", False)
    coords = track_like(5, seed=17)
    change(coords)
    features = torch.rand(coords.shape[0], 1)
    with pytest.raises(ValueError, match=message):
        native.submanifold_stack(coords, WEDGE_SHAPE, features, encoder_weights(18), ENCODER_GEOMETRIES,
                                 ENCODER_ACTIVATIONS, batch_size=1)


def test_stack_plan_follows_weight_edits(native, monkeypatch):
    monkeypatch.setattr(capabilities, "FORCE_TORCH_PATH", False)
    coords = track_like(5, seed=19)
    features = torch.rand(coords.shape[0], 1)
    weights = encoder_weights(20)
    before = native.submanifold_stack(coords, WEDGE_SHAPE, features, weights, ENCODER_GEOMETRIES, ENCODER_ACTIVATIONS)
    with torch.no_grad():
        weights[2].mul_(-1.0)
    after = native.submanifold_stack(coords, WEDGE_SHAPE, features, weights, ENCODER_GEOMETRIES, ENCODER_ACTIVATIONS)
    assert not torch.equal(before, after)
    torch.testing.assert_close(after, stack_through_maps(native, coords, features, weights))


def test_stack_accepts_geometry_lists(native, monkeypatch):
    monkeypatch.setattr(capabilities, "FORCE_TORCH_PATH", False)
    coords = track_like(5, seed=21)
    features = torch.rand(coords.shape[0], 1)
    weights = encoder_weights(22)
    as_lists = [list(geometry) for geometry in ENCODER_GEOMETRIES]
    fused = native.submanifold_stack(coords, WEDGE_SHAPE, features, weights, as_lists, ENCODER_ACTIVATIONS)
    general = backends.get("dense").submanifold_stack(coords, WEDGE_SHAPE, features, weights, as_lists,
                                                      ENCODER_ACTIVATIONS)
    torch.testing.assert_close(fused, general)
    with pytest.raises(ValueError, match="dilation must be a positive int, got 0"):
        native.submanifold_stack(coords, WEDGE_SHAPE, features, weights, [(3, 0)] + as_lists[1:],
                                 ENCODER_ACTIVATIONS)


def stack_job_case():
    from sparsecodec.kernels import offset_deltas
    from sparsecodec.kernels.cpu_numba import StackPlan, grid_positions

    coords = track_like(20, seed=29)
    padded = tuple(size + 8 for size in WEDGE_SHAPE)
    flat = grid_positions(coords, padded, 4).numpy()
    weights = [canonical_to_offset_major(weight).contiguous() for weight in encoder_weights(30)]
    plan = StackPlan.build([offset_deltas(k, d, padded) for k, d in ENCODER_GEOMETRIES], weights,
                           ENCODER_ACTIVATIONS, 1)
    x = torch.rand(coords.shape[0], 1, generator=torch.Generator().manual_seed(31)).numpy()
    entries = padded[0] * padded[1] * padded[2] * 2
    grids = [np.zeros(entries, dtype=np.float32) for _ in range(2)]
    return x, flat, plan, grids


def test_stack_plan_rejects_three_channels():
    # The stack kernels exist for 1 and 2 channels only; a wider layer must not be skipped silently.
    from sparsecodec.kernels import offset_deltas
    from sparsecodec.kernels.cpu_numba import StackPlan, stencil_stack

    padded = tuple(size + 2 for size in WEDGE_SHAPE)
    deltas = offset_deltas(3, 1, padded)
    weight = torch.ones(27, 3, 2)
    with pytest.raises(ValueError, match=r"1 to 2 channels, got \[3, 2\]"):
        StackPlan.build([deltas], [weight], ["relu"], 3)
    flat = torch.tensor([padded[1] * padded[2] + padded[2] + 1], dtype=torch.int64)
    with pytest.raises(ValueError, match="1 to 2 channels"):
        stencil_stack(torch.ones(1, 3), flat, [deltas], [weight], ["relu"], padded[0] * padded[1] * padded[2])


def test_stack_job_finishes_on_one_thread():
    # A thread that never starts must not hold the job up, and one that starts after the end
    # finds nothing left to do.
    from sparsecodec.kernels.stack_jobs import pack_job, run_stack_job, stack_serial

    x, flat, plan, (first, second) = stack_job_case()
    expected = np.empty(flat.shape[0] * 2, dtype=np.float32)
    stack_serial(x, flat, *plan.arrays(), 2, first, second, expected)
    out = np.full(flat.shape[0] * 2, np.nan, dtype=np.float32)
    job, counters = pack_job(x, flat, plan.arrays(), 2, first, second, out, 100)
    run_stack_job(job, np.empty(0, dtype=np.float32))
    assert np.array_equal(out, expected)
    assert not first.any()
    assert not second.any()
    run_stack_job(job, np.empty(0, dtype=np.float32))
    assert np.array_equal(out, expected)


@pytest.mark.parametrize("change,error,message", [
    (lambda a: a.update(x=np.asfortranarray(np.repeat(a["x"], 2, axis=1))), ValueError, "C-contiguous"),
    (lambda a: a.update(out=a["out"].astype(np.float64)), TypeError, "feature dtype float32"),
    (lambda a: a.update(flat=a["flat"].astype(np.int32)), TypeError, "int64"),
    (lambda a: a.update(second=a["second"][:-2]), ValueError, "equal sizes"),
    (lambda a: a.update(chunk_rows=0), ValueError, "chunk_rows must be positive"),
], ids=["fortran_order", "dtype", "index_dtype", "grid_sizes", "chunk_rows"])
def test_stack_job_rejects_bad_arrays(change, error, message):
    from sparsecodec.kernels.stack_jobs import pack_job

    x, flat, plan, (first, second) = stack_job_case()
    arguments = dict(x=x, flat=flat, plan_arrays=plan.arrays(), stride=2, first=first, second=second,
                     out=np.empty(flat.shape[0] * 2, dtype=np.float32), chunk_rows=100)
    change(arguments)
    with pytest.raises(error, match=message):
        pack_job(**arguments)


@pytest.mark.parametrize("shuffled", [False, True], ids=["sorted", "shuffled"])
def test_batch_stack_by_wedge_matches_reference(native, monkeypatch, runtime, shuffled):
    # Five wedges on 2 threads run whole wedges per thread when the rows are sorted by wedge.
    # Shuffled rows share each layer instead. Both must match the layer-by-layer result.
    from sparsecodec.kernels import cpu_numba

    coords = sorted_rows(torch.cat([at_occupancy(2e-3, batch=item, seed=40 + item) for item in range(5)]))
    if shuffled:
        coords = coords[torch.randperm(coords.shape[0], generator=torch.Generator().manual_seed(41))].contiguous()
    features = torch.rand(coords.shape[0], 1, generator=torch.Generator().manual_seed(42))
    weights = encoder_weights(43)
    starts = []
    original = cpu_numba._wedge_starts
    monkeypatch.setattr(cpu_numba, "_wedge_starts", lambda *args: starts.append(original(*args)) or starts[-1])
    with torch_threads(2):
        stacked = native.submanifold_stack(coords, WEDGE_SHAPE, features, weights, ENCODER_GEOMETRIES,
                                           ENCODER_ACTIVATIONS, batch_size=5)
    assert len(starts) == 1
    assert starts[0].shape[0] == (0 if shuffled else 6)
    torch.testing.assert_close(stacked, stack_through_maps(native, coords, features, weights, batch_size=5))
    assert_scratch_restored()


def test_parallel_stacks_from_two_threads(native, runtime):
    # Each calling thread has its own scratch grids and its own parallel region or pool tasks.
    from concurrent.futures import ThreadPoolExecutor

    inputs = [track_like(150, seed=50 + index) for index in range(4)]
    features = [torch.rand(coords.shape[0], 1, generator=torch.Generator().manual_seed(60)) for coords in inputs]
    weights = encoder_weights(61)

    def stack(index):
        return native.submanifold_stack(inputs[index], WEDGE_SHAPE, features[index], weights, ENCODER_GEOMETRIES,
                                        ENCODER_ACTIVATIONS)

    with torch_threads(2):
        alone = [stack(index) for index in range(4)]
        with ThreadPoolExecutor(max_workers=2) as pool:
            together = list(pool.map(stack, [0, 1, 2, 3] * 3))
    assert min(coords.shape[0] for coords in inputs) >= 1024
    for index, output in enumerate(together):
        assert torch.equal(output, alone[index % 4])


@pytest.mark.parametrize("cpus,parallel", [(1, False), (3, True)], ids=["one_cpu", "three_cpus"])
def test_stack_threads_capped_at_usable_cpus(native, monkeypatch, cpus, parallel):
    # Spinning waits need a core per thread: one usable CPU runs serially whatever torch's thread
    # count, and three threads on fewer cores still give the one-thread result.
    from sparsecodec.kernels import cpu_numba

    monkeypatch.setattr(capabilities, "FORCE_TORCH_PATH", False)
    monkeypatch.setattr(cpu_numba, "_usable_cpus", lambda: cpus)
    jobs = []
    original = cpu_numba.pack_job
    monkeypatch.setattr(cpu_numba, "pack_job", lambda *args, **kwargs: jobs.append(1) or original(*args, **kwargs))
    coords = track_like(150, seed=70)
    features = torch.rand(coords.shape[0], 1, generator=torch.Generator().manual_seed(71))
    weights = encoder_weights(72)
    with torch_threads(1):
        serial = native.submanifold_stack(coords, WEDGE_SHAPE, features, weights, ENCODER_GEOMETRIES,
                                          ENCODER_ACTIVATIONS)
    with torch_threads(3):
        capped = native.submanifold_stack(coords, WEDGE_SHAPE, features, weights, ENCODER_GEOMETRIES,
                                          ENCODER_ACTIVATIONS)
    assert coords.shape[0] >= 1024
    assert (len(jobs) == 1) == parallel
    assert torch.equal(capped, serial)

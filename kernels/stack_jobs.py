"""A layer stack as one parallel job: phases of row chunks that any thread can take.

The phases are: scatter the input into the first grid, one phase per layer (a last 1 x 1 x 1 layer
after a layer of 2 to 2 channels shares that layer's phase), and clear both grids.
Threads claim chunks of rows through an atomic counter per phase, and a thread moves to the next
phase once every chunk of the current one is done. Waiting on finished chunks instead of on
threads means that a thread the OS starts late only joins later and never delays the others.
Each row is computed by one thread from its own neighbours, so results do not depend on the
thread count.

A job is an int64 array of the sizes and addresses of every array the phases use (layout: the
``JOB_*`` indices). The same job runs on Python threads (:func:`run_stack_job` releases the GIL)
or as the body of an OpenMP parallel region (:data:`STACK_ENTRIES`, C callbacks for
``GOMP_parallel``). The caller keeps every array alive until all threads have returned.
"""

from __future__ import annotations

import numba
import numpy as np
from llvmlite import ir
from numba import types
from numba.extending import intrinsic

from .simd import LANES
from .stencil_runs import runs_layer, runs_layer_with_point

(JOB_ROWS, JOB_X, JOB_IN_CHANNELS, JOB_FLAT, JOB_LAYERS, JOB_STEPS, JOB_STEP_COUNT, JOB_STEP_STARTS, JOB_WEIGHTS,
 JOB_WEIGHT_COUNT, JOB_WEIGHT_STARTS, JOB_CODES, JOB_CHANNELS, JOB_STRIDE, JOB_FIRST, JOB_SECOND, JOB_GRID_ENTRIES,
 JOB_OUT, JOB_CHUNK_ROWS, JOB_COUNTERS, JOB_WEDGES, JOB_WEDGE_STARTS, JOB_WEDGE_SITES, JOB_RUNS,
 JOB_RUN_COUNT) = range(25)
JOB_LENGTH = 25

#: Entries a stack grid needs past its last site so that a vector load at any site stays inside it.
GRID_SLACK = 2 * LANES


@intrinsic
def _as_pointer(typingctx, address):
    """Return the int64 ``address`` as a void pointer, for ``numba.carray``."""
    if not isinstance(address, types.Integer):
        return None

    def codegen(context, builder, signature, args):
        return builder.inttoptr(args[0], ir.IntType(8).as_pointer())

    return types.voidptr(address), codegen


@intrinsic
def _fetch_add(typingctx, address, value):
    """Add ``value`` to the int64 at ``address`` atomically and return the previous value."""
    if not isinstance(address, types.Integer) or not isinstance(value, types.Integer):
        return None

    def codegen(context, builder, signature, args):
        pointer = builder.inttoptr(args[0], ir.IntType(64).as_pointer())
        return builder.atomic_rmw("add", pointer, args[1], "seq_cst")

    return types.int64(types.int64, types.int64), codegen


@intrinsic
def _load_acquire(typingctx, address):
    """Return the int64 at ``address``, read atomically with acquire ordering."""
    if not isinstance(address, types.Integer):
        return None

    def codegen(context, builder, signature, args):
        pointer = builder.inttoptr(args[0], ir.IntType(64).as_pointer())
        return builder.load_atomic(pointer, "acquire", 8)

    return types.int64(types.int64), codegen


@numba.njit(cache=True, nogil=True)
def position_runs(flat):  # pragma: no cover - compiled by numba
    """Return the (R + 1,) row offsets of the runs of ``flat``: run r has rows [runs[r], runs[r + 1]).

    A run is a longest range of at most LANES rows whose positions each exceed the previous one
    by 1, so its sites follow each other along the time axis.
    """
    count = flat.shape[0]
    runs = np.empty(count + 1, dtype=np.int64)
    total = 0
    start = 0
    for i in range(1, count + 1):
        if i == count or i - start == LANES or flat[i] != flat[i - 1] + 1:
            runs[total] = start
            total += 1
            start = i
    runs[total] = count
    return runs[:total + 1]


@numba.njit(cache=True, nogil=True)
def point_layer_last(steps, step_starts, channels):  # pragma: no cover - compiled by numba
    """Return True when the last layer is 1 x 1 x 1 (one zero step) and follows a layer of
    2 to 2 channels, so that its phase is fused into that layer's (:data:`.stencil_runs.FUSED_KERNELS`)."""
    layers = step_starts.shape[0] - 1
    return (layers >= 2 and step_starts[layers] - step_starts[layers - 1] == 1 and steps[step_starts[layers - 1]] == 0
            and channels[layers - 2] == 2 and channels[layers - 1] == 2)


@numba.njit(cache=True, nogil=True)
def stack_phases(steps, step_starts, channels):  # pragma: no cover - compiled by numba
    """Return the number of phases of the stack: scatter, the layer phases and clear."""
    layers = step_starts.shape[0] - 1
    return layers + 1 if point_layer_last(steps, step_starts, channels) else layers + 2


@numba.njit(cache=True, nogil=True)
def stack_rows(x, flat, runs, steps, step_starts, weights, weight_starts, activations, channels, stride, first,
               second, out, start, stop, phase):  # pragma: no cover - compiled by numba
    """Run ``phase`` of the stack on rows [start, stop).

    Phase 0 scatters the (N, C_in) input ``x`` into ``first``. Phase l + 1 applies layer l, which
    reads one grid and writes the other, or ``out`` (N * C_out) for the last layer. A last layer of
    size 1 x 1 x 1 after a layer of 2 to 2 channels has no phase of its own: the phase of the
    layer before applies it (:func:`point_layer_last`). A layer phase computes every run of ``runs``
    (:func:`position_runs`) that starts in [start, stop), with its rows past ``stop``. The last
    phase (:func:`stack_phases` - 1) clears both grids, so every earlier phase must have finished
    on all rows. Layer l has the offset steps ``steps[step_starts[l]:step_starts[l + 1]]`` and
    the flattened offset-major weights ``weights[weight_starts[l]:weight_starts[l + 1]]``.
    """
    layers = activations.shape[0]
    fused = point_layer_last(steps, step_starts, channels)
    if phase == 0:
        for i in range(start, stop):
            for c in range(channels[0]):
                first[flat[i] * stride + c] = x[i, c]
    elif phase < stack_phases(steps, step_starts, channels) - 1:
        layer = phase - 1
        source = first if layer % 2 == 0 else second
        target = second if layer % 2 == 0 else first
        deltas = steps[step_starts[layer]:step_starts[layer + 1]]
        weight = weights[weight_starts[layer]:weight_starts[layer + 1]]
        starts = runs[:runs.shape[0] - 1]
        first_run = np.searchsorted(starts, start)
        stop_run = np.searchsorted(starts, stop)
        if fused and layer == layers - 2:
            point_weight = weights[weight_starts[layers - 1]:weight_starts[layers]]
            runs_layer_with_point(channels[layer], channels[layer + 1], channels[layers], first_run, stop_run, runs,
                                  flat, deltas, weight, activations[layer], point_weight, activations[layers - 1],
                                  source, out)
        elif layer == layers - 1:
            runs_layer(channels[layer], channels[layer + 1], first_run, stop_run, runs, flat, deltas, weight,
                       activations[layer], source, out, True)
        else:
            runs_layer(channels[layer], channels[layer + 1], first_run, stop_run, runs, flat, deltas, weight,
                       activations[layer], source, target, False)
    else:
        for i in range(start, stop):
            for c in range(stride):
                first[flat[i] * stride + c] = 0
                second[flat[i] * stride + c] = 0


@numba.njit(cache=True, nogil=True)
def stack_serial(x, flat, steps, step_starts, weights, weight_starts, activations, channels, stride, first,
                 second, out):  # pragma: no cover - compiled by numba
    """Run every phase of the stack on all rows on the calling thread; see :func:`stack_rows`.

    The grids ``first`` and ``second`` must be all zero, and are left so. Grids with
    GRID_SLACK entries past the last site let every run use vector loads.
    """
    count = flat.shape[0]
    runs = position_runs(flat)
    for phase in range(stack_phases(steps, step_starts, channels)):
        stack_rows(x, flat, runs, steps, step_starts, weights, weight_starts, activations, channels, stride, first,
                   second, out, 0, count, phase)


@numba.njit(cache=True, nogil=True)
def run_stack_job(job, like):  # pragma: no cover - compiled by numba
    """Take and run chunks of ``job`` until every phase is done; ``like`` is any array of the feature dtype.

    A job with wedges runs whole wedges instead (:func:`_run_wedges`).
    """
    dtype = like.dtype
    rows = job[JOB_ROWS]
    layers = job[JOB_LAYERS]
    x = numba.carray(_as_pointer(job[JOB_X]), (rows, job[JOB_IN_CHANNELS]), dtype)
    flat = numba.carray(_as_pointer(job[JOB_FLAT]), (rows,), np.int64)
    steps = numba.carray(_as_pointer(job[JOB_STEPS]), (job[JOB_STEP_COUNT],), np.int64)
    step_starts = numba.carray(_as_pointer(job[JOB_STEP_STARTS]), (layers + 1,), np.int64)
    weights = numba.carray(_as_pointer(job[JOB_WEIGHTS]), (job[JOB_WEIGHT_COUNT],), dtype)
    weight_starts = numba.carray(_as_pointer(job[JOB_WEIGHT_STARTS]), (layers + 1,), np.int64)
    codes = numba.carray(_as_pointer(job[JOB_CODES]), (layers,), np.int64)
    channels = numba.carray(_as_pointer(job[JOB_CHANNELS]), (layers + 1,), np.int64)
    first = numba.carray(_as_pointer(job[JOB_FIRST]), (job[JOB_GRID_ENTRIES],), dtype)
    second = numba.carray(_as_pointer(job[JOB_SECOND]), (job[JOB_GRID_ENTRIES],), dtype)
    out = numba.carray(_as_pointer(job[JOB_OUT]), (rows * channels[layers],), dtype)
    runs = numba.carray(_as_pointer(job[JOB_RUNS]), (job[JOB_RUN_COUNT] + 1,), np.int64)
    if job[JOB_WEDGES] > 0:
        wedge_starts = numba.carray(_as_pointer(job[JOB_WEDGE_STARTS]), (job[JOB_WEDGES] + 1,), np.int64)
        _run_wedges(job, x, flat, steps, step_starts, weights, weight_starts, codes, channels, first, second, out,
                    wedge_starts)
        return
    chunk_rows = job[JOB_CHUNK_ROWS]
    chunks = (rows + chunk_rows - 1) // chunk_rows
    phases = stack_phases(steps, step_starts, channels)
    for phase in range(phases):
        claimed = job[JOB_COUNTERS] + 16 * phase
        finished = claimed + 8
        while True:
            chunk = _fetch_add(claimed, 1)
            if chunk >= chunks:
                break
            start = chunk * chunk_rows
            stop = min(start + chunk_rows, rows)
            stack_rows(x, flat, runs, steps, step_starts, weights, weight_starts, codes, channels, job[JOB_STRIDE],
                       first, second, out, start, stop, phase)
            _fetch_add(finished, 1)
        # The next phase reads what every chunk of this one wrote. After the last phase the
        # caller waits for all threads anyway.
        if phase < phases - 1:
            while _load_acquire(finished) < chunks:
                pass


@numba.njit(cache=True, nogil=True)
def _run_wedges(job, x, flat, steps, step_starts, weights, weight_starts, codes, channels, first, second, out,
                wedge_starts):  # pragma: no cover - compiled by numba
    # Each thread takes a slot of two one-wedge grids (``first`` and ``second`` hold one per
    # slot, each with GRID_SLACK spare entries), then claims whole wedges and runs the stack on
    # each with no waiting. Wedge w has rows [wedge_starts[w], wedge_starts[w + 1]), and its
    # positions lie in [w * sites, (w + 1) * sites).
    sites = job[JOB_WEDGE_SITES]
    stride = job[JOB_STRIDE]
    out_channels = channels[codes.shape[0]]
    slot = _fetch_add(job[JOB_COUNTERS], 1)
    grid_entries = sites * stride + GRID_SLACK
    if slot >= job[JOB_GRID_ENTRIES] // grid_entries:
        # More threads than slots: the others take every wedge.
        return
    mine = first[slot * grid_entries:(slot + 1) * grid_entries]
    other = second[slot * grid_entries:(slot + 1) * grid_entries]
    while True:
        wedge = _fetch_add(job[JOB_COUNTERS] + 8, 1)
        if wedge >= job[JOB_WEDGES]:
            return
        start = wedge_starts[wedge]
        stop = wedge_starts[wedge + 1]
        local = flat[start:stop] - wedge * sites
        stack_serial(x[start:stop], local, steps, step_starts, weights, weight_starts, codes, channels, stride, mine,
                     other, out[start * out_channels:stop * out_channels])


@numba.cfunc(types.void(types.voidptr), cache=True)
def _stack_entry_float32(data):  # pragma: no cover - compiled by numba
    run_stack_job(numba.carray(data, (JOB_LENGTH,), np.int64), np.empty(0, dtype=np.float32))


@numba.cfunc(types.void(types.voidptr), cache=True)
def _stack_entry_float64(data):  # pragma: no cover - compiled by numba
    run_stack_job(numba.carray(data, (JOB_LENGTH,), np.int64), np.empty(0, dtype=np.float64))


#: C callbacks ``void entry(int64_t *job)`` per feature dtype, the body of an OpenMP parallel region.
STACK_ENTRIES = {np.dtype(np.float32): _stack_entry_float32, np.dtype(np.float64): _stack_entry_float64}


def pack_job(x: np.ndarray, flat: np.ndarray, plan_arrays: tuple, stride: int, first: np.ndarray,
             second: np.ndarray, out: np.ndarray, chunk_rows: int, wedge_starts: np.ndarray | None = None,
             wedge_sites: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Return the int64 job array and its counters; every array must be C-contiguous.

    ``plan_arrays`` are (steps, step_starts, weights, weight_starts, codes, channels) as in
    :func:`stack_rows`, ``first`` and ``second`` all-zero grids of ``stride`` entries per site,
    and ``out`` the N * C_out result. By default threads share the rows of each phase in chunks
    of ``chunk_rows``. With ``wedge_starts`` (B + 1 row offsets of wedges of ``wedge_sites``
    padded sites each, rows sorted by wedge), threads take whole wedges instead, and ``first``
    and ``second`` hold one wedge's grid per thread, each followed by GRID_SLACK entries. The
    second returned array contains the counters and, for a job that shares rows, the runs of
    ``flat`` (a job of whole wedges finds each wedge's runs itself). The caller keeps both alive.
    """
    steps, step_starts, weights, weight_starts, codes, channels = plan_arrays
    arrays = (x, flat, *plan_arrays, first, second, out) + (() if wedge_starts is None else (wedge_starts,))
    for array in arrays:
        if not array.flags.c_contiguous:
            raise ValueError("stack job arrays must be C-contiguous")
    indices = (flat, steps, step_starts, weight_starts, codes, channels) + (
        () if wedge_starts is None else (wedge_starts,))
    for array in indices:
        if array.dtype != np.int64:
            raise TypeError(f"stack job index arrays must be int64, got {array.dtype}")
    for array in (weights, first, second, out):
        if array.dtype != x.dtype:
            raise TypeError(f"stack job arrays must all have the feature dtype {x.dtype}, got {array.dtype}")
    if first.shape != second.shape:
        raise ValueError(f"stack job grids must have equal sizes, got {first.shape[0]} and {second.shape[0]}")
    if chunk_rows < 1:
        raise ValueError(f"chunk_rows must be positive, got {chunk_rows}")
    counter_count = 2 * (codes.shape[0] + 2)
    runs = position_runs(flat) if wedge_starts is None else np.zeros(1, dtype=np.int64)
    # One array for the counters and the runs, so that the caller keeps a single buffer alive.
    counters = np.zeros(counter_count + runs.shape[0], dtype=np.int64)
    counters[counter_count:] = runs
    job = np.zeros(JOB_LENGTH, dtype=np.int64)
    job[JOB_ROWS], job[JOB_IN_CHANNELS] = x.shape
    job[JOB_X] = x.ctypes.data
    job[JOB_FLAT] = flat.ctypes.data
    job[JOB_LAYERS] = codes.shape[0]
    job[JOB_STEPS], job[JOB_STEP_COUNT] = steps.ctypes.data, steps.shape[0]
    job[JOB_STEP_STARTS] = step_starts.ctypes.data
    job[JOB_WEIGHTS], job[JOB_WEIGHT_COUNT] = weights.ctypes.data, weights.shape[0]
    job[JOB_WEIGHT_STARTS] = weight_starts.ctypes.data
    job[JOB_CODES] = codes.ctypes.data
    job[JOB_CHANNELS] = channels.ctypes.data
    job[JOB_STRIDE] = stride
    job[JOB_FIRST], job[JOB_SECOND], job[JOB_GRID_ENTRIES] = first.ctypes.data, second.ctypes.data, first.shape[0]
    job[JOB_OUT] = out.ctypes.data
    job[JOB_CHUNK_ROWS] = chunk_rows
    job[JOB_COUNTERS] = counters.ctypes.data
    job[JOB_RUNS] = counters[counter_count:].ctypes.data
    job[JOB_RUN_COUNT] = runs.shape[0] - 1
    if wedge_starts is not None:
        job[JOB_WEDGES] = wedge_starts.shape[0] - 1
        job[JOB_WEDGE_STARTS] = wedge_starts.ctypes.data
        job[JOB_WEDGE_SITES] = wedge_sites
    return job, counters

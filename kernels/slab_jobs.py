"""A stack over time slabs as one job that any thread can take slabs from.

A job is an int64 array of the addresses and sizes of every array that the slabs read and
write (layout: the ``JOB_*`` indices). Threads claim slab indices with an atomic counter in the
job, so whichever thread starts first takes the next slab, and a thread that the OS schedules
late costs no time when the others have taken every slab. Each slab has its own pair of scratch
grids, so a slab's result does not depend on which thread ran it.

The same job runs on Python threads (:func:`run_slab_job` releases the GIL) or as the body of an
OpenMP parallel region (:data:`SLAB_ENTRIES`, C callbacks for ``GOMP_parallel``). The caller
keeps every array of the job alive until all threads have returned.
"""

from __future__ import annotations

import numba
import numpy as np
from llvmlite import ir
from numba import types
from numba.extending import intrinsic

from .stencil_small import stencil_layer

(JOB_COUNTER, JOB_COUNTER_ADDRESS, JOB_SLABS, JOB_ROWS, JOB_X, JOB_IN_CHANNELS, JOB_FLAT, JOB_TIMES,
 JOB_HALO, JOB_CUTS, JOB_LAYERS, JOB_STEPS, JOB_STEP_COUNT, JOB_STEP_STARTS, JOB_WEIGHTS, JOB_WEIGHT_COUNT,
 JOB_WEIGHT_STARTS, JOB_CODES, JOB_CHANNELS, JOB_STRIDE, JOB_SCRATCH, JOB_GRID_ENTRIES, JOB_OUT) = range(23)
JOB_LENGTH = 23


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


@numba.njit(cache=True, nogil=True)
def _run_layers(flat, steps, step_starts, weights, weight_starts, activations, channels, stride, first, second,
                out):  # pragma: no cover - compiled by numba
    # Layer l reads one grid and writes the other; ``first`` holds the input. Every layer writes
    # every active site, so the grids need clearing only at the end, which leaves them all zero.
    count = flat.shape[0]
    layers = activations.shape[0]
    for layer in range(layers):
        source = first if layer % 2 == 0 else second
        target = second if layer % 2 == 0 else first
        deltas = steps[step_starts[layer]:step_starts[layer + 1]]
        weight = weights[weight_starts[layer]:weight_starts[layer + 1]]
        if layer == layers - 1:
            stencil_layer(channels[layer], channels[layer + 1], 0, count, flat, deltas, weight,
                          activations[layer], source, out, True)
        else:
            stencil_layer(channels[layer], channels[layer + 1], 0, count, flat, deltas, weight,
                          activations[layer], source, target, False)
    for i in range(count):
        for c in range(stride):
            first[flat[i] * stride + c] = 0
            second[flat[i] * stride + c] = 0


@numba.njit(cache=True, nogil=True)
def stack_serial(x, flat, steps, step_starts, weights, weight_starts, activations, channels, stride, first,
                 second, out):  # pragma: no cover - compiled by numba
    """Apply every layer to rows ``flat`` of the padded grid; write the last layer to ``out`` (N * C_out).

    Layer l has the offset steps ``steps[step_starts[l]:step_starts[l + 1]]`` and the flattened
    offset-major weights ``weights[weight_starts[l]:weight_starts[l + 1]]``. The grids ``first``
    and ``second`` must be all zero, and are left so.
    """
    for i in range(flat.shape[0]):
        for c in range(channels[0]):
            first[flat[i] * stride + c] = x[i, c]
    _run_layers(flat, steps, step_starts, weights, weight_starts, activations, channels, stride, first, second,
                out)


@numba.njit(cache=True, nogil=True)
def time_histogram(flat, width, pad, size, times):  # pragma: no cover - compiled by numba
    """Store each row's time bin in ``times`` and return the (size,) row count per time bin."""
    counts = np.zeros(size, dtype=np.int64)
    for i in range(flat.shape[0]):
        t = flat[i] % width - pad
        times[i] = t
        counts[t] += 1
    return counts


@numba.njit(cache=True, nogil=True)
def _stack_slab(x, flat, times, low, high, halo, steps, step_starts, weights, weight_starts, activations,
                channels, stride, first, second, out):  # pragma: no cover - compiled by numba
    # The whole stack over the rows whose time bin lies in [low - halo, high + halo), writing
    # only the rows in [low, high) to ``out``. A row's output depends only on rows at most
    # ``halo`` time bins away, so those rows come out exactly as in stack_serial.
    count = flat.shape[0]
    selected = 0
    for i in range(count):
        t = times[i]
        if t >= low - halo and t < high + halo:
            selected += 1
    rows = np.empty(selected, dtype=np.int64)
    sites = np.empty(selected, dtype=np.int64)
    j = 0
    for i in range(count):
        t = times[i]
        if t >= low - halo and t < high + halo:
            rows[j] = i
            sites[j] = flat[i]
            for c in range(channels[0]):
                first[flat[i] * stride + c] = x[i, c]
            j += 1
    out_channels = channels[activations.shape[0]]
    local = np.empty(selected * out_channels, dtype=out.dtype)
    _run_layers(sites, steps, step_starts, weights, weight_starts, activations, channels, stride, first, second,
                local)
    for j in range(selected):
        t = times[rows[j]]
        if t >= low and t < high:
            for o in range(out_channels):
                out[rows[j] * out_channels + o] = local[j * out_channels + o]


@numba.njit(cache=True, nogil=True)
def run_slab_job(job, like):  # pragma: no cover - compiled by numba
    """Take and run slabs of ``job`` until none is left; ``like`` is any array of the feature dtype."""
    dtype = like.dtype
    rows = job[JOB_ROWS]
    layers = job[JOB_LAYERS]
    slabs = job[JOB_SLABS]
    x = numba.carray(_as_pointer(job[JOB_X]), (rows, job[JOB_IN_CHANNELS]), dtype)
    flat = numba.carray(_as_pointer(job[JOB_FLAT]), (rows,), np.int64)
    times = numba.carray(_as_pointer(job[JOB_TIMES]), (rows,), np.int64)
    cuts = numba.carray(_as_pointer(job[JOB_CUTS]), (slabs + 1,), np.int64)
    steps = numba.carray(_as_pointer(job[JOB_STEPS]), (job[JOB_STEP_COUNT],), np.int64)
    step_starts = numba.carray(_as_pointer(job[JOB_STEP_STARTS]), (layers + 1,), np.int64)
    weights = numba.carray(_as_pointer(job[JOB_WEIGHTS]), (job[JOB_WEIGHT_COUNT],), dtype)
    weight_starts = numba.carray(_as_pointer(job[JOB_WEIGHT_STARTS]), (layers + 1,), np.int64)
    codes = numba.carray(_as_pointer(job[JOB_CODES]), (layers,), np.int64)
    channels = numba.carray(_as_pointer(job[JOB_CHANNELS]), (layers + 1,), np.int64)
    scratch = numba.carray(_as_pointer(job[JOB_SCRATCH]), (2 * slabs, job[JOB_GRID_ENTRIES]), dtype)
    out = numba.carray(_as_pointer(job[JOB_OUT]), (rows * channels[layers],), dtype)
    while True:
        slab = _fetch_add(job[JOB_COUNTER_ADDRESS], 1)
        if slab >= slabs:
            return
        _stack_slab(x, flat, times, cuts[slab], cuts[slab + 1], job[JOB_HALO], steps,
                    step_starts, weights, weight_starts, codes, channels, job[JOB_STRIDE], scratch[2 * slab],
                    scratch[2 * slab + 1], out)


@numba.cfunc(types.void(types.voidptr), cache=True)
def _slab_entry_float32(data):  # pragma: no cover - compiled by numba
    run_slab_job(numba.carray(data, (JOB_LENGTH,), np.int64), np.empty(0, dtype=np.float32))


@numba.cfunc(types.void(types.voidptr), cache=True)
def _slab_entry_float64(data):  # pragma: no cover - compiled by numba
    run_slab_job(numba.carray(data, (JOB_LENGTH,), np.int64), np.empty(0, dtype=np.float64))


#: C callbacks ``void entry(int64_t *job)`` per feature dtype, the body of an OpenMP parallel region.
SLAB_ENTRIES = {np.dtype(np.float32): _slab_entry_float32, np.dtype(np.float64): _slab_entry_float64}


def pack_job(x: np.ndarray, flat: np.ndarray, times: np.ndarray, halo: int, cuts: np.ndarray, plan_arrays: tuple,
             stride: int, scratch: np.ndarray, out: np.ndarray) -> np.ndarray:
    """Return the int64 job array for the arrays given; every array must be C-contiguous.

    ``times`` are the rows' time bins (:func:`time_histogram`), ``halo`` the stack's reach in
    time bins, ``cuts`` the slabs + 1 time-bin edges, ``plan_arrays`` (steps, step_starts,
    weights, weight_starts, codes, channels) as in :func:`stack_serial`, ``scratch``
    (2 * slabs, grid entries) zeros and ``out`` (N * C_out).
    """
    steps, step_starts, weights, weight_starts, codes, channels = plan_arrays
    slabs = cuts.shape[0] - 1
    for array in (x, flat, times, cuts, *plan_arrays, scratch, out):
        if not array.flags.c_contiguous:
            raise ValueError("slab job arrays must be C-contiguous")
    for array in (flat, times, cuts, steps, step_starts, weight_starts, codes, channels):
        if array.dtype != np.int64:
            raise TypeError(f"slab job index arrays must be int64, got {array.dtype}")
    for array in (weights, scratch, out):
        if array.dtype != x.dtype:
            raise TypeError(f"slab job arrays must all have the feature dtype {x.dtype}, got {array.dtype}")
    job = np.zeros(JOB_LENGTH, dtype=np.int64)
    job[JOB_COUNTER_ADDRESS] = job.ctypes.data + JOB_COUNTER * job.itemsize
    job[JOB_SLABS] = slabs
    job[JOB_ROWS], job[JOB_IN_CHANNELS] = x.shape
    job[JOB_X] = x.ctypes.data
    job[JOB_FLAT] = flat.ctypes.data
    job[JOB_TIMES] = times.ctypes.data
    job[JOB_HALO] = halo
    job[JOB_CUTS] = cuts.ctypes.data
    job[JOB_LAYERS] = codes.shape[0]
    job[JOB_STEPS], job[JOB_STEP_COUNT] = steps.ctypes.data, steps.shape[0]
    job[JOB_STEP_STARTS] = step_starts.ctypes.data
    job[JOB_WEIGHTS], job[JOB_WEIGHT_COUNT] = weights.ctypes.data, weights.shape[0]
    job[JOB_WEIGHT_STARTS] = weight_starts.ctypes.data
    job[JOB_CODES] = codes.ctypes.data
    job[JOB_CHANNELS] = channels.ctypes.data
    job[JOB_STRIDE] = stride
    job[JOB_SCRATCH], job[JOB_GRID_ENTRIES] = scratch.ctypes.data, scratch.shape[1]
    job[JOB_OUT] = out.ctypes.data
    return job

"""Numba CPU kernels of the native backend: a stencil over a zero-padded feature grid.

A convolution scatters the (N, C_in) features into a scratch grid that is zero everywhere
else, so every neighbour read ``grid[flat[i] + delta[k]]`` is a plain load: an empty site contains
zeros and contributes nothing, and the padding keeps every read inside the voxel's own batch
item. After the stencil the touched sites are zeroed again, so a scratch grid is allocated and
cleared once per thread and size, and each call costs O(N) instead of O(grid).

Each output row is computed by one thread from its own neighbours, so results do not depend on
the thread count and repeated calls are bit-identical. Layer stacks run in parallel through
:mod:`.stack_jobs`. The kernels have no backward; the native
backend uses them only when no gradient is needed.
"""

from __future__ import annotations

import itertools
import os
import threading
import weakref
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numba
import numpy as np
import torch

from . import openmp
from .mt19937 import fill_uniform
from .stack_jobs import GRID_SLACK, STACK_ENTRIES, pack_job, run_stack_job, stack_serial
from .stencil_codegen import STACK_MAX_CHANNELS
from .stencil_small import KERNELS

ACTIVATION_CODES = {None: 0, "relu": 1, "sigmoid": 2}

_scratch = threading.local()
#: Every thread's scratch pool, so tests can check that all of them are left clean.
_scratch_pools: list[dict] = []


def _all_scratch_pools() -> list[dict]:
    with _pool_lock:
        return list(_scratch_pools)


@numba.njit(cache=True, nogil=True)
def _find_duplicate(flat, owners):  # pragma: no cover - compiled by numba
    first = -1
    second = -1
    count = flat.shape[0]
    filled = count
    for i in range(count):
        site = flat[i]
        if owners[site] >= 0:
            first = owners[site]
            second = i
            filled = i
            break
        owners[site] = i
    for i in range(filled):
        owners[flat[i]] = -1
    return first, second


#: Below this many rows a single convolution (:func:`stencil_conv`) runs on one thread, which
#: finishes before Python worker threads would even start.
PARALLEL_MIN_ROWS = 4096
#: Chunks of rows per thread in a parallel call.
CHUNKS_PER_THREAD = 8
#: A layer stack over fewer rows runs on one thread. On 2 cores (torch 2.13.0, BCAE-VS encoder,
#: simulated wedges) two threads took 191 us against 272 us at 1,800 rows, and 102 us against
#: 91 us at 710 rows.
STACK_PARALLEL_MIN_ROWS = 1024
#: Smallest chunk of a parallel stack, in rows; smaller chunks cost more in claims than they gain.
MIN_CHUNK_ROWS = 256
#: A batch of at least this many wedges per thread runs whole wedges per thread on one-wedge
#: grids, with no waits between layers. On 2 cores a batch of 8 wedges at 1e-3 occupancy took
#: 0.52 ms this way against 0.73 ms with every layer shared between the threads.
WEDGES_PER_THREAD = 2

_pool: ThreadPoolExecutor | None = None
_pool_lock = threading.Lock()


@numba.njit(cache=True, nogil=True)
def _stencil_rows(start, stop, flat, deltas, weight, activation, source, source_stride, target,
                  target_stride, target_rows):  # pragma: no cover - compiled by numba
    # Any channel count; the unrolled kernels in stencil_small.py take the same arguments.
    volume, in_channels, out_channels = weight.shape
    accumulator = np.zeros(out_channels, dtype=target.dtype)
    for i in range(start, stop):
        base = flat[i]
        accumulator[:] = 0
        for k in range(volume):
            site = (base + deltas[k]) * source_stride
            for c in range(in_channels):
                value = source[site + c]
                if value != 0:
                    for o in range(out_channels):
                        accumulator[o] += value * weight[k, c, o]
        place = (i if target_rows else base) * target_stride
        for o in range(out_channels):
            value = accumulator[o]
            if activation == 1 and value < 0:
                value = 0
            elif activation == 2:
                value = 1 / (1 + np.exp(-value))
            target[place + o] = value


@numba.njit(cache=True, nogil=True)
def _wedge_starts(flat, wedge_sites, wedges):  # pragma: no cover - compiled by numba
    # Returns the wedges + 1 row offsets of each wedge's rows, or an empty array when the rows
    # are not sorted by wedge (position // wedge_sites). The walk compares each position with
    # the current wedge's bounds: a division and a count in memory per row took twice as long.
    starts = np.zeros(wedges + 1, dtype=np.int64)
    wedge = 0
    low = 0
    high = wedge_sites
    for i in range(flat.shape[0]):
        position = flat[i]
        if position < low:
            return np.zeros(0, dtype=np.int64)
        while position >= high and wedge < wedges:
            wedge += 1
            starts[wedge] = i
            low = high
            high += wedge_sites
    for later in range(wedge + 1, wedges + 1):
        starts[later] = flat.shape[0]
    return starts


@numba.njit(cache=True, nogil=True)
def _scatter_strided(x, flat, stride, grid):  # pragma: no cover - compiled by numba
    for i in range(flat.shape[0]):
        for c in range(x.shape[1]):
            grid[flat[i] * stride + c] = x[i, c]


@numba.njit(cache=True, nogil=True)
def _clear_strided(flat, stride, grid):  # pragma: no cover - compiled by numba
    for i in range(flat.shape[0]):
        for c in range(stride):
            grid[flat[i] * stride + c] = 0


@numba.njit(cache=True, nogil=True, inline="always")
def _position(batch, axis0, axis1, axis2, pad, padded0, padded1, padded2):  # pragma: no cover - numba
    return ((batch * padded0 + axis0 + pad) * padded1 + axis1 + pad) * padded2 + axis2 + pad


@numba.njit(cache=True, nogil=True)
def _checked_positions(coords, size0, size1, size2, batch_limit, pad, flat):  # pragma: no cover - numba
    # Returns the largest batch index, or -1 at the first out-of-range row (leaving flat
    # partial), and whether the positions strictly increase, which rules out duplicates.
    padded0 = size0 + 2 * pad
    padded1 = size1 + 2 * pad
    padded2 = size2 + 2 * pad
    highest = 0
    increasing = True
    previous = -1
    for i in range(coords.shape[0]):
        b = coords[i, 0]
        a = coords[i, 1]
        c = coords[i, 2]
        t = coords[i, 3]
        if b < 0 or (batch_limit >= 0 and b >= batch_limit) or a < 0 or a >= size0 or c < 0 or c >= size1 \
                or t < 0 or t >= size2:
            return -1, False
        if b > highest:
            highest = b
        position = _position(b, a, c, t, pad, padded0, padded1, padded2)
        if position <= previous:
            increasing = False
        previous = position
        flat[i] = position
    return highest, increasing


@numba.njit(cache=True, nogil=True)
def _positions(coords, padded0, padded1, padded2, pad, flat):  # pragma: no cover - compiled by numba
    for i in range(coords.shape[0]):
        flat[i] = _position(coords[i, 0], coords[i, 1], coords[i, 2], coords[i, 3], pad, padded0, padded1, padded2)


def _scratch_array(name: str, size: int, dtype, fill) -> np.ndarray:
    """Return this thread's scratch array of at least ``size`` entries, all equal to ``fill``."""
    key = (name, np.dtype(dtype).str)
    pool = getattr(_scratch, "pool", None)
    if pool is None:
        pool = _scratch.pool = {}
        with _pool_lock:
            _scratch_pools.append(pool)
    array = pool.get(key)
    if array is None or array.shape[0] < size:
        array = np.full(size, fill, dtype=dtype)
        pool[key] = array
    return array


def _stack_grids(entries: int, dtype, kind: str = "batch") -> tuple[np.ndarray, np.ndarray]:
    """Return this thread's two all-zero stack grids of exactly ``entries`` values each.

    ``entries`` includes any spare entries that the run kernels need (GRID_SLACK).
    """
    return (_scratch_array(f"stack-first-{kind}", entries, dtype, 0)[:entries],
            _scratch_array(f"stack-second-{kind}", entries, dtype, 0)[:entries])


def _usable_cpus() -> int:
    """Return how many CPUs this process may run on (its affinity mask where the OS has one)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def _thread_pool(workers: int) -> ThreadPoolExecutor:
    """Return the shared pool, grown to at least ``workers`` threads."""
    global _pool
    with _pool_lock:
        if _pool is None or _pool._max_workers < workers:
            _pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="sparsecodec-native")
        return _pool


def _run_rows(kernel, count: int, *args) -> None:
    """Run ``kernel(start, stop, *args)`` over rows [0, count), spread over torch's thread count.

    The kernels release the GIL, so plain Python threads run them in parallel. numba's own
    parallel loops are not used: their OpenMP threads spin after each loop and starve torch's
    OpenMP threads (a separate runtime) on a machine with few cores. The rows are cut into
    several chunks per thread that the calling thread and the workers take in turn, so a
    worker that the OS schedules late delays the call by one chunk, not by half of it.
    """
    threads = torch.get_num_threads()
    if threads <= 1 or count < PARALLEL_MIN_ROWS:
        kernel(0, count, *args)
        return
    pool = _thread_pool(threads - 1)
    chunks = CHUNKS_PER_THREAD * threads
    bounds = np.linspace(0, count, chunks + 1).astype(np.int64)
    next_chunk = itertools.count()

    def work() -> None:
        # next() on itertools.count is atomic under the GIL, so every chunk runs exactly once.
        for index in iter(lambda: next(next_chunk), None):
            if index >= chunks:
                return
            kernel(int(bounds[index]), int(bounds[index + 1]), *args)

    workers = [pool.submit(work) for _ in range(threads - 1)]
    work()
    for worker in workers:
        worker.result()


def grid_positions(coords: torch.Tensor, padded_shape: tuple[int, int, int], pad: int) -> torch.Tensor:
    """Return the (N,) int64 padded-grid positions of int32 CPU ``coords`` (N, 4)."""
    flat = torch.empty(coords.shape[0], dtype=torch.int64)
    _positions(coords.numpy(), padded_shape[0], padded_shape[1], padded_shape[2], pad, flat.numpy())
    return flat


def checked_positions(coords: torch.Tensor, spatial_shape: tuple[int, int, int], pad: int,
                      batch_size: int | None) -> tuple[torch.Tensor | None, int, bool]:
    """Range-check int32 CPU ``coords`` (N, 4) and return their (N,) int64 positions in the grid
    padded by ``pad`` on each side, the batch size, and whether the positions strictly increase.

    Coordinates sorted by (batch, layer, azimuth, time), as readers and ``np.nonzero`` produce
    them, give strictly increasing positions exactly when no two rows are equal, so the caller
    can skip :func:`find_duplicate`. Returns (None, 0, False) when a coordinate or batch index
    is out of range. ``batch_size`` None means max batch index + 1.
    """
    flat = torch.empty(coords.shape[0], dtype=torch.int64)
    limit = -1 if batch_size is None else batch_size
    highest, increasing = _checked_positions(coords.numpy(), *spatial_shape, limit, pad, flat.numpy())
    if highest < 0:
        return None, 0, False
    return flat, highest + 1 if batch_size is None else batch_size, increasing


def find_duplicate(flat: torch.Tensor, grid_size: int) -> tuple[int, int] | None:
    """Return two rows whose ``flat`` grid positions are equal, or None when all are distinct."""
    owners = _scratch_array("owners", grid_size, np.int32, -1)
    first, second = _find_duplicate(flat.numpy(), owners)
    return None if first < 0 else (int(first), int(second))


def stencil_conv(
    features: torch.Tensor,
    flat: torch.Tensor,
    deltas: torch.Tensor,
    weight: torch.Tensor,
    grid_size: int,
    activation: str | None = None,
) -> torch.Tensor:
    """Convolve contiguous float32/float64 CPU ``features`` (N, C_in) with an offset-major
    (K, C_in, C_out) ``weight`` through a padded grid of ``grid_size`` sites; return (N, C_out).

    ``flat`` (N,) int64 are the rows' grid positions and ``deltas`` (K,) int64 the flat steps of
    the K offsets, both in the padded grid.
    """
    x = features.detach().numpy()
    in_channels, out_channels = x.shape[1], weight.shape[2]
    grid = _scratch_array("features", grid_size * in_channels, x.dtype, 0)
    out = torch.empty((features.shape[0], out_channels), dtype=features.dtype)
    positions = flat.numpy()
    _scatter_strided(x, positions, in_channels, grid)
    kernel_weight = np.ascontiguousarray(weight.detach().numpy())
    code = ACTIVATION_CODES[activation]
    target = out.numpy().reshape(-1)
    kernel = KERNELS.get((in_channels, out_channels, in_channels))
    if kernel is not None:
        args = (positions, deltas.numpy(), kernel_weight.reshape(-1), code, grid, target, True)
    else:
        kernel = _stencil_rows
        args = (positions, deltas.numpy(), kernel_weight, code, grid, in_channels, target, out_channels, True)
    try:
        _run_rows(kernel, positions.shape[0], *args)
    finally:
        _clear_strided(positions, in_channels, grid)
    return out


@dataclass(frozen=True)
class StackPlan:
    """Precomputed arguments of :func:`run_stack_plan` for one layer stack. It is built once per
    set of weights, so that a call on a small input costs little more than the kernel.

    Layer l has the int64 flat offset steps ``steps[step_starts[l]:step_starts[l + 1]]``, the
    flattened offset-major (K, C_in, C_out) weights ``weights[weight_starts[l]:weight_starts[l + 1]]``
    and the activation code ``codes[l]``; ``channels`` are the channel counts (input, then each
    layer's output). ``sources`` are weak references to the canonical weights the plan was built
    from. ``padded_shape`` and ``pad`` describe the padded grid of the steps, when known.
    """

    steps: np.ndarray
    step_starts: np.ndarray
    weights: np.ndarray
    weight_starts: np.ndarray
    codes: np.ndarray
    channels: np.ndarray
    sources: tuple = ()
    padded_shape: tuple[int, int, int] | None = None
    pad: int = 0

    @classmethod
    def build(cls, deltas, weights, activations, in_channels: int, sources=(), padded_shape=None,
              pad: int = 0) -> "StackPlan":
        """Build a plan from (K,) int64 ``deltas`` and offset-major (K, C_in, C_out) ``weights`` per layer."""
        channels = np.array([in_channels] + [weight.shape[2] for weight in weights], dtype=np.int64)
        if channels.max(initial=0) > STACK_MAX_CHANNELS or channels.min(initial=1) < 1:
            # The stack kernels exist for 1 to STACK_MAX_CHANNELS channels and would skip any
            # other layer without a word, leaving its output uninitialised.
            raise ValueError(f"stack layers must have 1 to {STACK_MAX_CHANNELS} channels, got {channels.tolist()}")
        steps = [step.numpy().astype(np.int64) for step in deltas]
        kernels = [weight.detach().numpy().reshape(-1) for weight in weights]
        return cls(
            steps=np.ascontiguousarray(np.concatenate(steps)),
            step_starts=np.cumsum([0] + [step.shape[0] for step in steps], dtype=np.int64),
            weights=np.ascontiguousarray(np.concatenate(kernels)),
            weight_starts=np.cumsum([0] + [kernel.shape[0] for kernel in kernels], dtype=np.int64),
            codes=np.array([ACTIVATION_CODES[activation] for activation in activations], dtype=np.int64),
            channels=channels,
            sources=tuple(weakref.ref(weight) for weight in sources),
            padded_shape=padded_shape,
            pad=pad,
        )

    def arrays(self) -> tuple:
        """Return (steps, step_starts, weights, weight_starts, codes, channels), the kernels' arguments."""
        return self.steps, self.step_starts, self.weights, self.weight_starts, self.codes, self.channels


def stencil_stack(
    features: torch.Tensor,
    flat: torch.Tensor,
    deltas: list[torch.Tensor],
    weights: list[torch.Tensor],
    activations: list[str | None],
    grid_size: int,
) -> torch.Tensor:
    """Apply several convolutions over one coordinate set, each layer straight into the next.

    Same arguments as :func:`stencil_conv`, one entry per layer in ``deltas``, ``weights``
    (offset-major (K, C_in, C_out), the channels of consecutive layers matching) and
    ``activations``; every layer must have at most ``STACK_MAX_CHANNELS`` channels. Layers
    write their output into the next layer's grid, so no (N, C) array is formed between layers.
    """
    plan = StackPlan.build(deltas, weights, activations, features.shape[1])
    return run_stack_plan(plan, features, flat, grid_size)


def run_stack_plan(plan: StackPlan, features: torch.Tensor, flat: torch.Tensor, grid_size: int) -> torch.Tensor:
    """Apply ``plan`` to contiguous CPU ``features`` (N, C_in) at grid positions ``flat`` and return (N, C_out).

    From STACK_PARALLEL_MIN_ROWS rows on, torch's thread count shares the rows of each layer
    (:mod:`.stack_jobs`), on torch's OpenMP threads where :mod:`.openmp` finds them and on
    Python threads otherwise.
    """
    x = np.ascontiguousarray(features.detach().numpy())
    stride = STACK_MAX_CHANNELS
    out = torch.empty((features.shape[0], int(plan.channels[-1])), dtype=features.dtype)
    target = out.numpy().reshape(-1)
    positions = flat.numpy()
    rows = positions.shape[0]
    threads = torch.get_num_threads()
    if threads > 1 and rows >= STACK_PARALLEL_MIN_ROWS:
        # The threads wait for each other by spinning, which stalls for whole time slices when
        # they outnumber the cores, so torch's thread count is capped at the usable CPUs.
        threads = min(threads, _usable_cpus())
    if threads <= 1 or rows < STACK_PARALLEL_MIN_ROWS:
        first, second = _stack_grids(grid_size * stride + GRID_SLACK, x.dtype)
        stack_serial(x, positions, *plan.arrays(), stride, first, second, target)
        return out

    chunk_rows = max(MIN_CHUNK_ROWS, -(-rows // (CHUNKS_PER_THREAD * threads)))
    wedge_sites = int(np.prod(plan.padded_shape)) if plan.padded_shape is not None else 0
    wedges = grid_size // wedge_sites if wedge_sites else 0
    starts = _wedge_starts(positions, wedge_sites, wedges) if wedges >= WEDGES_PER_THREAD * threads else None
    if starts is not None and starts.shape[0] == wedges + 1:
        # Whole wedges per thread, each on that thread's one-wedge grids, so the batch-sized
        # grids are never allocated.
        first, second = _stack_grids(threads * (wedge_sites * stride + GRID_SLACK), x.dtype, "wedges")
        job, counters = pack_job(x, positions, plan.arrays(), stride, first, second, target, chunk_rows, starts,
                                 wedge_sites)
    else:
        first, second = _stack_grids(grid_size * stride + GRID_SLACK, x.dtype)
        job, counters = pack_job(x, positions, plan.arrays(), stride, first, second, target, chunk_rows)
    region = openmp.parallel_region()
    if region is not None:
        region(STACK_ENTRIES[x.dtype].address, job.ctypes.data, threads)
        return out

    like = np.empty(0, dtype=x.dtype)
    pool = _thread_pool(threads - 1)
    workers = [pool.submit(run_stack_job, job, like) for _ in range(threads - 1)]
    try:
        run_stack_job(job, like)
    finally:
        for worker in workers:
            worker.result()
    return out


@numba.njit(cache=True, nogil=True)
def gather_kept_rows(keep, coords, values):  # pragma: no cover - compiled by numba
    """Return the rows of ``coords`` (N, 4) and ``values`` (N,) where ``keep`` is true, in order."""
    count = 0
    for i in range(keep.shape[0]):
        count += 1 if keep[i] else 0
    # One spare row: every row is written to the next free slot, and the slot advances only for
    # a kept row, which avoids a mispredicted branch per row.
    kept_coords = np.empty((count + 1, 4), dtype=coords.dtype)
    kept_values = np.empty(count + 1, dtype=values.dtype)
    j = 0
    for i in range(keep.shape[0]):
        kept_coords[j, 0] = coords[i, 0]
        kept_coords[j, 1] = coords[i, 1]
        kept_coords[j, 2] = coords[i, 2]
        kept_coords[j, 3] = coords[i, 3]
        kept_values[j] = values[i]
        j += 1 if keep[i] else 0
    return kept_coords[:count], kept_values[:count]


@numba.njit(cache=True, nogil=True)
def wedge_row_offsets(coords, batch_size):  # pragma: no cover - compiled by numba
    """Return the (B + 1,) offsets of each wedge's rows counted from the batch indices ``coords[:, 0]``.

    Wedge b has offsets[b + 1] - offsets[b] rows. B is ``batch_size``, or the largest batch
    index + 1 when ``batch_size`` is negative. Returns an empty array when a batch index is
    negative or not below ``batch_size``.
    """
    count = coords.shape[0]
    wedges = batch_size
    if wedges < 0:
        wedges = 0
        for i in range(count):
            wedges = max(wedges, coords[i, 0] + 1)
    offsets = np.zeros(wedges + 1, dtype=np.int64)
    # Rows of one wedge usually follow each other, so the count of the current wedge stays in a
    # register: incrementing offsets[item + 1] per row makes every row wait for the last store.
    current = -1
    run = 0
    for i in range(count):
        item = coords[i, 0]
        if item != current:
            if item < 0 or item >= wedges:
                return np.zeros(0, dtype=np.int64)
            if current >= 0:
                offsets[current + 1] += run
            current = item
            run = 0
        run += 1
    if current >= 0:
        offsets[current + 1] += run
    for item in range(wedges):
        offsets[item + 1] += offsets[item]
    return offsets


@numba.njit(cache=True, nogil=True)
def random_gate_select(probability, seeds, offsets, coords, values):  # pragma: no cover - compiled by numba
    """Keep each row with p > theta (compared in float64) and return the (N,) keep mask and the
    kept (K, 4) coordinates and (K,) values.

    Wedge b has rows offsets[b] to offsets[b + 1] - 1 (counted, not positions) and draws its
    thresholds from a generator seeded with ``seeds[b]``, exactly as ``torch.rand`` of a CPU
    generator does (:mod:`.mt19937`), used by its rows in row order. Every batch index
    ``coords[i, 0]`` must lie in [0, B).
    """
    count = probability.shape[0]
    theta = np.empty(count, dtype=np.float64)
    for item in range(offsets.shape[0] - 1):
        if offsets[item + 1] > offsets[item]:
            fill_uniform(seeds[item], theta[offsets[item]:offsets[item + 1]])
    # following[b] is the next unused threshold of wedge b. The current wedge's one is kept in
    # ``index`` while its rows follow each other (see wedge_row_offsets).
    following = offsets[:-1].copy()
    keep = np.empty(count, dtype=np.bool_)
    current = -1
    index = 0
    for i in range(count):
        item = coords[i, 0]
        if item != current:
            if current >= 0:
                following[current] = index
            current = item
            index = following[item]
        keep[i] = np.float64(probability[i]) > theta[index]
        index += 1
    kept_coords, kept_values = gather_kept_rows(keep, coords, values)
    return keep, kept_coords, kept_values


@numba.njit(cache=True, nogil=True)
def random_gate_batch(probability, seeds, coords, values):  # pragma: no cover - compiled by numba
    """Run :func:`random_gate_select` on a batch of B = len(seeds) wedges, counting its rows first.

    Returns (True, keep, kept coordinates, kept values), or False and three empty arrays when a
    batch index lies outside [0, B).
    """
    offsets = wedge_row_offsets(coords, seeds.shape[0])
    if offsets.shape[0] == 0:
        return False, np.zeros(0, dtype=np.bool_), coords[:0].copy(), values[:0].copy()
    keep, kept_coords, kept_values = random_gate_select(probability, seeds, offsets, coords, values)
    return True, keep, kept_coords, kept_values

"""Numba CPU kernels of the native backend: a stencil over a zero-padded feature grid.

A convolution scatters the (N, C_in) features into a scratch grid that is zero everywhere
else, so every neighbour read ``grid[flat[i] + delta[k]]`` is a plain load: an empty site contains
zeros and contributes nothing, and the padding keeps every read inside the voxel's own batch
item. After the stencil the touched sites are zeroed again, so a scratch grid is allocated and
cleared once per thread and size, and each call costs O(N) instead of O(grid).

Each output row is computed by one thread from its own neighbours, so results do not depend on
the thread count and repeated calls are bit-identical. The kernels have no backward; the native
backend uses them only when no gradient is needed.
"""

from __future__ import annotations

import itertools
import threading
import weakref
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numba
import numpy as np
import torch

from .stencil_codegen import STACK_MAX_CHANNELS
from .stencil_small import KERNELS, stencil_layer

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


#: Below this many rows one thread finishes before the others would even start.
PARALLEL_MIN_ROWS = 4096
#: Chunks of rows per thread in a parallel call.
CHUNKS_PER_THREAD = 8
#: A stack over at least SLAB_MIN_ROWS and fewer than SLAB_MAX_ROWS rows runs in time slabs, one
#: per thread. Smaller stacks run on one thread, and larger ones in chunks of each layer. On 2
#: cores (torch 2.13.0, BCAE-VS encoder, simulated rows) slabs were 1.3x faster than one thread
#: at 8,000 rows, where chunks were 1.3x slower. At 110,000 rows slabs were 8 % slower than
#: chunks, because each slab's halo is extra work.
SLAB_MIN_ROWS = 4096
SLAB_MAX_ROWS = 65536
# NOTE: torch's OpenMP threads spin for a few milliseconds after a parallel torch operation. On 2
# cores the second slab then waits for a free core, and the slabs run one after the other
# unless OMP_WAIT_POLICY=PASSIVE is set (docs/benchmarks.md).

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
def _stack_serial(x, flat, deltas, weights, activations, channels, stride, first, second,
                  out):  # pragma: no cover - compiled by numba
    # All layers in one call, for inputs too small to share out over threads. Layer l reads one
    # grid and writes the other; every layer writes every active site, so the grids need
    # clearing only at the end.
    count = flat.shape[0]
    for i in range(count):
        for c in range(channels[0]):
            first[flat[i] * stride + c] = x[i, c]
    layers = len(weights)
    for layer in range(layers):
        source = first if layer % 2 == 0 else second
        target = second if layer % 2 == 0 else first
        if layer == layers - 1:
            stencil_layer(channels[layer], channels[layer + 1], 0, count, flat, deltas[layer], weights[layer],
                          activations[layer], source, out, True)
        else:
            stencil_layer(channels[layer], channels[layer + 1], 0, count, flat, deltas[layer], weights[layer],
                          activations[layer], source, target, False)
    for i in range(count):
        for c in range(stride):
            first[flat[i] * stride + c] = 0
            second[flat[i] * stride + c] = 0


@numba.njit(cache=True, nogil=True)
def _time_histogram(flat, width, pad, time_size):  # pragma: no cover - compiled by numba
    counts = np.zeros(time_size, dtype=np.int64)
    for i in range(flat.shape[0]):
        counts[flat[i] % width - pad] += 1
    return counts


@numba.njit(cache=True, nogil=True)
def _stack_slab(x, flat, width, pad, low, high, halo, deltas, weights, activations, channels, stride, first,
                second, out):  # pragma: no cover - compiled by numba
    # The whole stack over the rows whose time index lies in [low - halo, high + halo), writing
    # only the rows in [low, high) to ``out``. A row's output depends only on rows at most
    # ``halo`` time bins away, so those rows come out exactly as in _stack_serial.
    count = flat.shape[0]
    selected = 0
    for i in range(count):
        t = flat[i] % width - pad
        if t >= low - halo and t < high + halo:
            selected += 1
    rows = np.empty(selected, dtype=np.int64)
    sites = np.empty(selected, dtype=np.int64)
    j = 0
    for i in range(count):
        t = flat[i] % width - pad
        if t >= low - halo and t < high + halo:
            rows[j] = i
            sites[j] = flat[i]
            j += 1
    out_channels = channels[len(weights)]
    local = np.empty(selected * out_channels, dtype=out.dtype)
    _stack_serial(x[rows], sites, deltas, weights, activations, channels, stride, first, second, local)
    for j in range(selected):
        t = sites[j] % width - pad
        if t >= low and t < high:
            for o in range(out_channels):
                out[rows[j] * out_channels + o] = local[j * out_channels + o]


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
    # Returns the largest batch index, or -1 at the first out-of-range row, leaving flat partial.
    padded0 = size0 + 2 * pad
    padded1 = size1 + 2 * pad
    padded2 = size2 + 2 * pad
    highest = 0
    for i in range(coords.shape[0]):
        b = coords[i, 0]
        a = coords[i, 1]
        c = coords[i, 2]
        t = coords[i, 3]
        if b < 0 or (batch_limit >= 0 and b >= batch_limit) or a < 0 or a >= size0 or c < 0 or c >= size1 \
                or t < 0 or t >= size2:
            return -1
        if b > highest:
            highest = b
        flat[i] = _position(b, a, c, t, pad, padded0, padded1, padded2)
    return highest


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
                      batch_size: int | None) -> tuple[torch.Tensor | None, int]:
    """Range-check int32 CPU ``coords`` (N, 4) and return their (N,) int64 positions in the grid
    padded by ``pad`` on each side, and the batch size.

    Returns (None, 0) when a coordinate or batch index is out of range. ``batch_size`` None
    means max batch index + 1.
    """
    flat = torch.empty(coords.shape[0], dtype=torch.int64)
    limit = -1 if batch_size is None else batch_size
    highest = _checked_positions(coords.numpy(), *spatial_shape, limit, pad, flat.numpy())
    if highest < 0:
        return None, 0
    return flat, highest + 1 if batch_size is None else batch_size


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

    ``steps`` are the layers' (K,) int64 flat offset steps, ``kernels`` their flattened
    offset-major (K, C_in, C_out) weights, ``codes`` their activation codes and ``channels``
    the channel counts (input, then each layer's output). ``time_axis`` is (padded width,
    padding, size, halo) of the last spatial axis, where halo is the stack's total reach along
    it in sites (sum of dilation * (kernel_size // 2)), or None. ``sources`` are weak
    references to the canonical weights the plan was built from. ``padded_shape`` and ``pad``
    describe the padded grid of the steps, when known.
    """

    steps: tuple
    kernels: tuple
    codes: np.ndarray
    channels: np.ndarray
    time_axis: tuple[int, int, int, int] | None
    sources: tuple = ()
    padded_shape: tuple[int, int, int] | None = None
    pad: int = 0

    @classmethod
    def build(cls, deltas, weights, activations, in_channels: int, time_axis=None, sources=(),
              padded_shape=None, pad: int = 0) -> "StackPlan":
        """Build a plan from (K,) int64 ``deltas`` and offset-major (K, C_in, C_out) ``weights`` per layer."""
        channels = np.array([in_channels] + [weight.shape[2] for weight in weights], dtype=np.int64)
        return cls(
            steps=tuple(step.numpy() for step in deltas),
            kernels=tuple(np.ascontiguousarray(weight.detach().numpy()).reshape(-1) for weight in weights),
            codes=np.array([ACTIVATION_CODES[activation] for activation in activations], dtype=np.int64),
            channels=channels,
            time_axis=time_axis,
            sources=tuple(weakref.ref(weight) for weight in sources),
            padded_shape=padded_shape,
            pad=pad,
        )


def stencil_stack(
    features: torch.Tensor,
    flat: torch.Tensor,
    deltas: list[torch.Tensor],
    weights: list[torch.Tensor],
    activations: list[str | None],
    grid_size: int,
    time_axis: tuple[int, int, int, int] | None = None,
) -> torch.Tensor:
    """Apply several convolutions over one coordinate set, each layer straight into the next.

    Same arguments as :func:`stencil_conv`, one entry per layer in ``deltas``, ``weights``
    (offset-major (K, C_in, C_out), the channels of consecutive layers matching) and
    ``activations``; every layer must have at most ``STACK_MAX_CHANNELS`` channels. Layers
    write their output into the next layer's grid, so no (N, C) array is formed between layers.
    ``time_axis`` is described in :class:`StackPlan`.
    """
    plan = StackPlan.build(deltas, weights, activations, features.shape[1], time_axis)
    return run_stack_plan(plan, features, flat, grid_size)


def run_stack_plan(plan: StackPlan, features: torch.Tensor, flat: torch.Tensor, grid_size: int) -> torch.Tensor:
    """Apply ``plan`` to contiguous CPU ``features`` (N, C_in) at grid positions ``flat`` and return (N, C_out).

    With ``plan.time_axis``, threads split the rows into slabs of that axis, and each runs the
    whole stack on its slab plus the halo. Otherwise threads share each layer's rows and wait
    for each other between layers.
    """
    x = features.detach().numpy()
    steps, kernels, codes, channels = plan.steps, plan.kernels, plan.codes, plan.channels
    stride = STACK_MAX_CHANNELS
    out = torch.empty((features.shape[0], int(channels[-1])), dtype=features.dtype)
    target = out.numpy().reshape(-1)
    positions = flat.numpy()
    threads = torch.get_num_threads()

    def grids() -> tuple[np.ndarray, np.ndarray]:
        # Scratch arrays are per thread, so slabs that run at the same time never share a grid.
        return (_scratch_array("stack-first", grid_size * stride, x.dtype, 0),
                _scratch_array("stack-second", grid_size * stride, x.dtype, 0))

    slabs = 1 if plan.time_axis is None else _slab_count(threads, positions.shape[0], plan.time_axis)
    if slabs > 1:
        width, pad, size, halo = plan.time_axis
        cuts = _slab_cuts(_time_histogram(positions, width, pad, size), slabs)

        def slab(index: int) -> None:
            _stack_slab(x, positions, width, pad, int(cuts[index]), int(cuts[index + 1]), halo, steps, kernels,
                        codes, channels, stride, *grids(), target)

        _run_tasks(slab, slabs)
        return out

    first, second = grids()
    if threads <= 1 or positions.shape[0] < PARALLEL_MIN_ROWS:
        _stack_serial(x, positions, steps, kernels, codes, channels, stride, first, second, target)
        return out

    _scatter_strided(x, positions, stride, first)
    try:
        for layer, kernel in enumerate(kernels):
            source, layer_target = (first, second) if layer % 2 == 0 else (second, first)
            last = layer == len(kernels) - 1
            _run_rows(KERNELS[(int(channels[layer]), int(channels[layer + 1]), stride)], positions.shape[0],
                      positions, steps[layer], kernel, int(codes[layer]), source,
                      target if last else layer_target, last)
    finally:
        _clear_strided(positions, stride, first)
        _clear_strided(positions, stride, second)
    return out


def _slab_count(threads: int, rows: int, time_axis: tuple[int, int, int, int]) -> int:
    """Return how many time slabs to run in parallel, 1 when threads would not pay off."""
    _, _, size, halo = time_axis
    if threads <= 1 or not SLAB_MIN_ROWS <= rows < SLAB_MAX_ROWS:
        return 1
    # Each slab computes its halo on both sides again, so keep the halo below a quarter of the slab.
    return max(1, min(threads, size // (4 * max(halo, 1))))


def _slab_cuts(counts: np.ndarray, slabs: int) -> np.ndarray:
    """Return slabs + 1 increasing bin edges that split ``counts`` into parts of similar sums."""
    cumulative = np.cumsum(counts)
    targets = cumulative[-1] * np.arange(1, slabs) / slabs
    inner = np.searchsorted(cumulative, targets, side="left") + 1
    return np.concatenate(([0], inner, [counts.shape[0]])).astype(np.int64)


def _run_tasks(task, count: int) -> None:
    """Run ``task(0)``, ..., ``task(count - 1)``, the first on the calling thread and the rest on the pool."""
    pool = _thread_pool(count - 1)
    workers = [pool.submit(task, index) for index in range(1, count)]
    try:
        task(0)
    finally:
        for worker in workers:
            worker.result()

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
from concurrent.futures import ThreadPoolExecutor

import numba
import numpy as np
import torch

from .stencil_codegen import STACK_MAX_CHANNELS
from .stencil_small import KERNELS, stencil_layer

ACTIVATION_CODES = {None: 0, "relu": 1, "sigmoid": 2}

_scratch = threading.local()


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
def _scatter_strided(x, flat, stride, grid):  # pragma: no cover - compiled by numba
    for i in range(flat.shape[0]):
        for c in range(x.shape[1]):
            grid[flat[i] * stride + c] = x[i, c]


@numba.njit(cache=True, nogil=True)
def _clear_strided(flat, stride, grid):  # pragma: no cover - compiled by numba
    for i in range(flat.shape[0]):
        for c in range(stride):
            grid[flat[i] * stride + c] = 0


@numba.njit(cache=True, nogil=True)
def _positions(coords, padded0, padded1, padded2, pad, flat):  # pragma: no cover - compiled by numba
    for i in range(coords.shape[0]):
        flat[i] = (((coords[i, 0] * padded0 + coords[i, 1] + pad) * padded1 + coords[i, 2] + pad) * padded2
                   + coords[i, 3] + pad)


def _scratch_array(name: str, size: int, dtype, fill) -> np.ndarray:
    """Return this thread's scratch array of at least ``size`` entries, all equal to ``fill``."""
    key = (name, np.dtype(dtype).str)
    pool = getattr(_scratch, "pool", None)
    if pool is None:
        pool = _scratch.pool = {}
    array = pool.get(key)
    if array is None or array.shape[0] < size:
        array = np.full(size, fill, dtype=dtype)
        pool[key] = array
    return array


def _run_rows(kernel, count: int, *args) -> None:
    """Run ``kernel(start, stop, *args)`` over rows [0, count), spread over torch's thread count.

    The kernels release the GIL, so plain Python threads run them in parallel. numba's own
    parallel loops are not used: their OpenMP threads spin after each loop and starve torch's
    OpenMP threads (a separate runtime) on a machine with few cores. The rows are cut into
    several chunks per thread that the calling thread and the workers take in turn, so a
    worker that the OS schedules late delays the call by one chunk, not by half of it.
    """
    global _pool
    threads = torch.get_num_threads()
    if threads <= 1 or count < PARALLEL_MIN_ROWS:
        kernel(0, count, *args)
        return
    with _pool_lock:
        if _pool is None or _pool._max_workers < threads - 1:
            _pool = ThreadPoolExecutor(max_workers=threads - 1, thread_name_prefix="sparsecodec-native")
    chunks = CHUNKS_PER_THREAD * threads
    bounds = np.linspace(0, count, chunks + 1).astype(np.int64)
    next_chunk = itertools.count()

    def work() -> None:
        # next() on itertools.count is atomic under the GIL, so every chunk runs exactly once.
        for index in iter(lambda: next(next_chunk), None):
            if index >= chunks:
                return
            kernel(int(bounds[index]), int(bounds[index + 1]), *args)

    workers = [_pool.submit(work) for _ in range(threads - 1)]
    work()
    for worker in workers:
        worker.result()


def grid_positions(coords: torch.Tensor, padded_shape: tuple[int, int, int], pad: int) -> torch.Tensor:
    """Return the (N,) int64 padded-grid positions of int32 CPU ``coords`` (N, 4)."""
    flat = torch.empty(coords.shape[0], dtype=torch.int64)
    _positions(coords.numpy(), padded_shape[0], padded_shape[1], padded_shape[2], pad, flat.numpy())
    return flat


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
    x = features.detach().numpy()
    channels = np.array([x.shape[1]] + [weight.shape[2] for weight in weights], dtype=np.int64)
    stride = STACK_MAX_CHANNELS
    first = _scratch_array("stack-first", grid_size * stride, x.dtype, 0)
    second = _scratch_array("stack-second", grid_size * stride, x.dtype, 0)
    out = torch.empty((features.shape[0], int(channels[-1])), dtype=features.dtype)
    positions = flat.numpy()
    steps = tuple(step.numpy() for step in deltas)
    kernels = tuple(np.ascontiguousarray(weight.detach().numpy()).reshape(-1) for weight in weights)
    codes = np.array([ACTIVATION_CODES[activation] for activation in activations], dtype=np.int64)

    if torch.get_num_threads() <= 1 or positions.shape[0] < PARALLEL_MIN_ROWS:
        _stack_serial(x, positions, steps, kernels, codes, channels, stride, first, second, out.numpy().reshape(-1))
        return out

    _scatter_strided(x, positions, stride, first)
    try:
        for layer, kernel in enumerate(kernels):
            source, target = (first, second) if layer % 2 == 0 else (second, first)
            last = layer == len(kernels) - 1
            _run_rows(KERNELS[(int(channels[layer]), int(channels[layer + 1]), stride)], positions.shape[0],
                      positions, steps[layer], kernel, int(codes[layer]), source,
                      out.numpy().reshape(-1) if last else target, last)
    finally:
        _clear_strided(positions, stride, first)
        _clear_strided(positions, stride, second)
    return out

"""torch's CPU random numbers in numba: ``torch.rand(n, dtype=torch.float64)`` of a fresh generator.

The random gate draws one threshold per voxel from a generator seeded per wedge. Creating a
``torch.Generator`` and calling ``torch.rand`` from Python took 13 us for a wedge of 710 voxels
(2-core development machine, torch 2.13.0), more than drawing the numbers. These functions
reproduce the same numbers inside one numba call for a whole batch.

torch's CPU generator (ATen ``CPUGeneratorImpl``, ``mt19937_engine``) is the 32-bit Mersenne
Twister MT19937 seeded with the low 32 bits of the seed. A float64 uniform takes two outputs,
``r = (first << 32) | second``, and returns ``(r & (2**53 - 1)) * 2**-53``. Tests compare the
results with torch's own for many seeds and lengths.
"""

from __future__ import annotations

import numba
import numpy as np

STATE_WORDS = 624
SHIFT_WORDS = 397
MATRIX_A = np.uint32(0x9908B0DF)
UPPER_MASK = np.uint32(0x80000000)
LOWER_MASK = np.uint32(0x7FFFFFFF)


@numba.njit(cache=True, nogil=True)
def _seed_state(seed, state):  # pragma: no cover - compiled by numba
    state[0] = np.uint32(seed & np.uint64(0xFFFFFFFF))
    for j in range(1, STATE_WORDS):
        previous = state[j - 1]
        state[j] = np.uint32(np.uint32(1812433253) * (previous ^ (previous >> np.uint32(30))) + np.uint32(j))


@numba.njit(cache=True, nogil=True)
def _twist(upper, lower):  # pragma: no cover - compiled by numba
    mixed = (upper & UPPER_MASK) | (lower & LOWER_MASK)
    return (mixed >> np.uint32(1)) ^ (MATRIX_A if lower & np.uint32(1) else np.uint32(0))


@numba.njit(cache=True, nogil=True)
def _next_state(state):  # pragma: no cover - compiled by numba
    # Three loops instead of one with indices modulo STATE_WORDS, which is twice as slow.
    for j in range(STATE_WORDS - SHIFT_WORDS):
        state[j] = state[j + SHIFT_WORDS] ^ _twist(state[j], state[j + 1])
    for j in range(STATE_WORDS - SHIFT_WORDS, STATE_WORDS - 1):
        state[j] = state[j + SHIFT_WORDS - STATE_WORDS] ^ _twist(state[j], state[j + 1])
    last = STATE_WORDS - 1
    state[last] = state[SHIFT_WORDS - 1] ^ _twist(state[last], state[0])


@numba.njit(cache=True, nogil=True)
def _temper(y):  # pragma: no cover - compiled by numba
    y ^= y >> np.uint32(11)
    y ^= (y << np.uint32(7)) & np.uint32(0x9D2C5680)
    y ^= (y << np.uint32(15)) & np.uint32(0xEFC60000)
    y ^= y >> np.uint32(18)
    return y


@numba.njit(cache=True, nogil=True)
def fill_uniform(seed, out):  # pragma: no cover - compiled by numba
    """Fill the float64 array ``out`` with ``torch.rand`` of a CPU generator seeded with ``seed``.

    ``seed`` is an unsigned 64-bit integer, as ``torch.Generator.manual_seed`` takes it.
    """
    state = np.empty(STATE_WORDS, dtype=np.uint32)
    _seed_state(np.uint64(seed), state)
    scale = 1.0 / 9007199254740992.0
    mask = np.uint64(9007199254740991)
    # The engine refills its state before its first output and after every STATE_WORDS outputs.
    used = STATE_WORDS
    for i in range(out.shape[0]):
        if used == STATE_WORDS:
            _next_state(state)
            used = 0
        first = _temper(state[used])
        used += 1
        if used == STATE_WORDS:
            _next_state(state)
            used = 0
        second = _temper(state[used])
        used += 1
        bits = (np.uint64(first) << np.uint64(32)) | np.uint64(second)
        out[i] = np.float64(bits & mask) * scale

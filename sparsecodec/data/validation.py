"""Checks of raw ADC arrays shared by the reader, the writer and the sparse conversion."""

from __future__ import annotations

import numpy as np

from .layout import MAX_ADC, WEDGE_SHAPE


def check_adc_array(array, shape: tuple[int, ...] = WEDGE_SHAPE, source: str = "adc") -> np.ndarray:
    """Return ``array`` as uint16 ADC counts after checking shape, dtype and value range.

    Integer dtypes are accepted as they are. Floating dtypes are accepted only when every
    value is a whole number, because files written by other tools sometimes store ADC counts
    as floats. ``source`` (a file name or an argument name) starts every error message.

    Raises:
        TypeError: not a numpy array, or a dtype that cannot hold ADC counts (bool, complex,
            object, strings, records).
        ValueError: wrong shape, NaN or infinity, a non-integral float, or a value outside
            0..1023.
    """
    if not isinstance(array, np.ndarray):
        raise TypeError(f"{source}: expected a numpy array of ADC counts, got {type(array).__name__}")
    kind = array.dtype.kind
    if kind not in "uif":
        raise TypeError(
            f"{source}: expected an integer dtype holding ADC counts (uint16 preferred), got {array.dtype}"
        )
    if array.shape != tuple(shape):
        raise ValueError(f"{source}: expected shape {tuple(shape)}, got {array.shape}")
    if array.size == 0:
        return array.astype(np.uint16)

    if kind == "f":
        finite = np.isfinite(array)
        if not finite.all():
            position = tuple(int(i) for i in np.argwhere(~finite)[0])
            raise ValueError(
                f"{source}: ADC counts must be finite, found {array[position]} at index {position}"
            )
        fractional = array != np.round(array)
        if fractional.any():
            position = tuple(int(i) for i in np.argwhere(fractional)[0])
            raise ValueError(
                f"{source}: ADC counts must be whole numbers, found {array[position]} at index {position}"
            )

    low = array.min()
    high = array.max()
    if low < 0 or high > MAX_ADC:
        bad = (array < 0) | (array > MAX_ADC)
        position = tuple(int(i) for i in np.argwhere(bad)[0])
        raise ValueError(
            f"{source}: ADC counts must be in 0..{MAX_ADC}, found {array[position]} at index {position}"
        )
    return array.astype(np.uint16, copy=False)

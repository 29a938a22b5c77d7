"""Identity-keyed caches for kernel maps and converted weights.

Both caches key on the identity of a live tensor (``id``, checked again through a weak
reference) plus its in-place version counter, so a cached entry is never returned for a
different tensor that happens to reuse a freed address, nor for a tensor that was modified in
place. Entries die with the tensor they were built from.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable, Hashable
from typing import Any

import torch


class TensorKeyedCache:
    """Map (tensor identity, tensor version, extra key) to a value built on first request."""

    def __init__(self) -> None:
        self._entries: dict[tuple, tuple[weakref.ref, Any]] = {}

    def __len__(self) -> int:
        return len(self._entries)

    def clear(self) -> None:
        self._entries.clear()

    def get_or_build(self, tensor: torch.Tensor, extra: Hashable, build: Callable[[], Any]) -> Any:
        """Return the cached value for (``tensor``, ``extra``), calling ``build`` on a miss."""
        key = (id(tensor), tensor._version, extra)
        entry = self._entries.get(key)
        if entry is not None and entry[0]() is tensor:
            return entry[1]

        value = build()
        entries = self._entries
        # Entries for an older version of this tensor can never match again.
        for stale in [k for k in entries if k[0] == key[0] and k[1] != key[1]]:
            del entries[stale]

        def forget(_ref: weakref.ref, key: tuple = key) -> None:
            current = entries.get(key)
            if current is not None and current[0] is _ref:
                del entries[key]

        self._entries[key] = (weakref.ref(tensor, forget), value)
        return value

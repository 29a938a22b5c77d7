"""Sparse coordinate sets for the backend tests, generated from a seed."""

from __future__ import annotations

import torch

WEDGE_SHAPE = (16, 192, 249)


def random_sites(count: int, shape=WEDGE_SHAPE, batch: int = 0, seed: int = 0) -> torch.Tensor:
    """Return ``count`` distinct random sites of ``shape`` as int32 (count, 4) coordinates."""
    generator = torch.Generator().manual_seed(seed)
    volume = shape[0] * shape[1] * shape[2]
    keys = torch.randperm(volume, generator=generator)[:count]
    return keys_to_coords(keys, shape, batch)


def keys_to_coords(keys: torch.Tensor, shape, batch: int = 0) -> torch.Tensor:
    """Turn row-major site indices of ``shape`` into (batch, axis 0, axis 1, axis 2) rows."""
    _, height, width = shape
    columns = [torch.full_like(keys, batch), keys // (height * width), (keys // width) % height, keys % width]
    return torch.stack(columns, dim=1).to(torch.int32)


def at_occupancy(occupancy: float, shape=WEDGE_SHAPE, batch: int = 0, seed: int = 0) -> torch.Tensor:
    """Return uniformly random sites filling ``occupancy`` of ``shape``."""
    volume = shape[0] * shape[1] * shape[2]
    return random_sites(max(1, round(occupancy * volume)), shape, batch, seed)


def track_like(tracks: int = 40, shape=WEDGE_SHAPE, seed: int = 0) -> torch.Tensor:
    """Return clustered sites: straight tracks crossing every layer, a few pads and time bins wide."""
    generator = torch.Generator().manual_seed(seed)
    layers, pads, bins = shape
    sites = []
    for _ in range(tracks):
        pad0 = torch.rand((), generator=generator) * pads
        bin0 = torch.rand((), generator=generator) * bins
        pad_slope = (torch.rand((), generator=generator) - 0.5) * 4
        bin_slope = (torch.rand((), generator=generator) - 0.5) * 6
        for layer in range(layers):
            centre_pad = int(pad0 + pad_slope * layer)
            centre_bin = int(bin0 + bin_slope * layer)
            for pad in range(centre_pad - 1, centre_pad + 2):
                for time_bin in range(centre_bin - 2, centre_bin + 3):
                    if 0 <= pad < pads and 0 <= time_bin < bins:
                        sites.append((layer * pads + pad) * bins + time_bin)
    keys = torch.unique(torch.tensor(sites, dtype=torch.int64))
    keys = keys[torch.randperm(keys.numel(), generator=generator)]
    return keys_to_coords(keys, shape)


def boundary_sites(shape=(6, 7, 8)) -> torch.Tensor:
    """Return every site on the faces of ``shape`` (corners and edges included)."""
    grid = torch.stack(torch.meshgrid(*[torch.arange(size) for size in shape], indexing="ij"), dim=-1).reshape(-1, 3)
    upper = torch.tensor(shape) - 1
    on_face = ((grid == 0) | (grid == upper)).any(dim=1)
    faces = grid[on_face]
    return torch.cat([torch.zeros((faces.shape[0], 1), dtype=torch.int64), faces], dim=1).to(torch.int32)


def batch_of(*coord_sets: torch.Tensor) -> torch.Tensor:
    """Stack coordinate sets into one batch, set i getting batch index i."""
    parts = []
    for index, coords in enumerate(coord_sets):
        part = coords.clone()
        part[:, 0] = index
        parts.append(part)
    return torch.cat(parts)

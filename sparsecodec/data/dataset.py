"""A ``torch.utils.data.Dataset`` over a dataset root in the public layout, and sparse collation."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from .layout import WedgeId
from .reader import load_wedge, read_manifest
from .sparse import batch_sparse, log_adc, to_sparse

FORMS = ("adc", "log_adc", "sparse")


def wedge_id_of(path: Path, root: Path) -> str:
    """Return the record id of a wedge file: its :class:`WedgeId` string, else its relative path.

    Files that do not follow the public naming (a user's own data) keep their path relative to
    the root as the id, which is just as stable.
    """
    try:
        return str(WedgeId.from_path(path))
    except ValueError:
        return path.relative_to(root).as_posix() if path.is_relative_to(root) else path.as_posix()


class TPCDataset(Dataset):
    """Wedges listed in ``{root}/{split}.txt``, each returned as ``(wedge_id, wedge)``.

    ``form`` chooses what ``wedge`` is:

    * ``"adc"``: int16 tensor (16, 192, 249) = (layer, azimuth, time) of raw ADC counts;
    * ``"log_adc"``: float32 tensor of the same shape holding ``log2(ADC + 1)``;
    * ``"sparse"``: ``(coords, values)`` with int32 coords (N, 3) = (layer, azimuth, time) and
      float32 log ADC values (N,); batch these with :func:`collate_sparse`.

    Files are read and validated on every access (see :func:`sparsecodec.data.load_wedge`), so
    a bad file raises an error naming it when it is first used. The manifest itself and the
    existence of every listed file are checked here.
    """

    def __init__(self, root, split: str = "train", form: str = "adc") -> None:
        super().__init__()
        if form not in FORMS:
            raise ValueError(f"form must be one of {FORMS}, got {form!r}")
        self.root = Path(root)
        self.split = split
        self.form = form
        self.paths = read_manifest(self.root, split)
        self.wedge_ids = [wedge_id_of(path, self.root) for path in self.paths]

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int):
        adc = load_wedge(self.paths[index])
        wedge_id = self.wedge_ids[index]
        if self.form == "adc":
            return wedge_id, torch.from_numpy(adc.astype(np.int16))
        if self.form == "log_adc":
            return wedge_id, torch.from_numpy(log_adc(adc))
        coords, values = to_sparse(adc)
        return wedge_id, (torch.from_numpy(coords), torch.from_numpy(values))

    def __repr__(self) -> str:
        return f"TPCDataset(root={str(self.root)!r}, split={self.split!r}, form={self.form!r}, wedges={len(self)})"


def collate_sparse(batch):
    """Collate ``(wedge_id, (coords, values))`` items into ``(ids, coords, values)``.

    ``coords`` is int32 (M, 4) = (batch, layer, azimuth, time), ready for
    :mod:`sparsecodec.backends` with ``batch_size=len(ids)``; ``values`` (M,) float32 log ADC.
    Use with ``TPCDataset(..., form="sparse")`` and ``DataLoader(collate_fn=collate_sparse)``.
    """
    if len(batch) == 0:
        raise ValueError("collate_sparse needs at least one item, got an empty batch")
    ids = []
    pairs = []
    for index, item in enumerate(batch):
        if not isinstance(item, (tuple, list)) or len(item) != 2:
            raise TypeError(f"batch item {index} must be (wedge_id, (coords, values)), got {type(item).__name__}")
        wedge_id, pair = item
        ids.append(wedge_id)
        pairs.append(pair)
    coords, values = batch_sparse(pairs)
    return ids, coords, values

"""Compress wedges into a file and decompress them back, with a BCAE-VS model.

Wedges are dense arrays of raw ADC counts, axes (layer, azimuth, time) in the model's
``spatial_shape`` (16, 192, 249 for a TPC wedge). The encoder reads log ADC = log2(ADC + 1) of
the non-zero voxels, and the file stores the gate's key points with float16 values. Decoding
returns the model's reconstruction in log ADC, and ADC counts for output files.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .. import __version__
from ..model import BCAEVS, GateConfig, load_model, weights_hash
from .format import FileHeader, RecordInfo, WedgeRecord
from .reader import CompressedFileReader
from .writer import CompressedFileWriter

log = logging.getLogger(__name__)

#: Largest ADC count of the 10-bit digitizer, and its log ADC, log2(1023 + 1) = 10.
MAX_ADC = 1023
MAX_LOG_ADC = 10.0


@dataclass(frozen=True)
class CodecModel:
    """A model ready to run: the module on its device, its name and the sha256 of its weights."""

    model: BCAEVS
    name: str
    sha256: str
    device: torch.device

    @property
    def wedge_shape(self) -> tuple[int, int, int]:
        return tuple(self.model.spatial_shape)


def resolve_device(device: str | torch.device | None) -> torch.device:
    """Return the torch device for a ``--device`` value; None means the CPU.

    Raises ValueError for an unknown device and for CUDA when torch cannot use a GPU here, so a
    request for CUDA never silently runs on the CPU.
    """
    if device is None:
        return torch.device("cpu")
    try:
        resolved = torch.device(device)
    except (RuntimeError, TypeError) as error:
        raise ValueError(f"invalid device {device!r}: expected 'cpu', 'cuda' or 'cuda:N'") from error
    if resolved.type not in ("cpu", "cuda"):
        raise ValueError(f"device must be 'cpu', 'cuda' or 'cuda:N', got {device!r}")
    if resolved.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"device {device!r} requested, but torch {torch.__version__} sees no CUDA GPU here; "
                             "use --device cpu")
        if resolved.index is not None and resolved.index >= torch.cuda.device_count():
            raise ValueError(f"device {device!r} requested, but only {torch.cuda.device_count()} CUDA devices exist")
    return resolved


def open_model(path: str | Path | None = None, backend: str | None = None,
               device: str | torch.device | None = None) -> CodecModel:
    """Load a model file (this project's or the BCAE-VS authors' checkpoint) onto ``device``.

    ``path`` None loads the default model shipped in the package (see
    :mod:`sparsecodec.model.default`), which raises a clear error while none is shipped.
    """
    resolved = resolve_device(device)
    if path is None:
        from ..model.default import load_default_model

        model, name, _ = load_default_model(backend=backend)
    else:
        model, name, _ = load_model(path, backend=backend)
    sha256 = weights_hash(model)
    model = model.to(resolved).eval()
    log.info("model %s (sha256 %s...) on %s", name, sha256[:12], resolved)
    return CodecModel(model, name, sha256, resolved)


def file_header(codec: CodecModel, gate: GateConfig, coordinate_coding: str = "auto", value_coding: str = "auto",
                metadata: dict | None = None) -> FileHeader:
    """Return the header of a file that ``codec`` writes with ``gate``."""
    return FileHeader(
        model_name=codec.name,
        model_sha256=codec.sha256,
        gate_mode=gate.mode,
        gate_value=gate.value,
        gate_seed=gate.seed,
        wedge_shape=codec.wedge_shape,
        coordinate_coding=coordinate_coding,
        value_coding=value_coding,
        created_by=f"sparsecodec {__version__}",
        metadata=dict(metadata or {}),
    )


def check_model_matches(codec: CodecModel, header: FileHeader, path: str | Path) -> None:
    """Raise ValueError unless ``codec`` has the weights and wedge shape the file was written with."""
    if codec.sha256 != header.model_sha256:
        raise ValueError(
            f"{path} was compressed with model {header.model_name!r} (weights sha256 {header.model_sha256[:16]}...), "
            f"but the given model {codec.name!r} has sha256 {codec.sha256[:16]}...; pass the same model with --model"
        )
    if codec.wedge_shape != header.wedge_shape:
        raise ValueError(f"{path} contains wedges of shape {header.wedge_shape}, but the model decodes "
                         f"{codec.wedge_shape}")


def sparse_input(adc: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Return int32 (N, 3) coordinates of the non-zero voxels and their float32 log ADC (C order)."""
    coords = np.argwhere(adc).astype(np.int32)
    return coords, np.log2(adc[adc != 0].astype(np.float32) + np.float32(1.0))


@torch.no_grad()
def encode_wedges(codec: CodecModel, wedges: list[np.ndarray], gate: GateConfig,
                  first_index: int = 0) -> list[tuple[int, np.ndarray, np.ndarray]]:
    """Run the encoder and the hard gate on a batch of dense ADC wedges.

    ``first_index`` is the position of ``wedges[0]`` in the whole run. Random gate draws depend
    on it, so they do not depend on how the run is split into batches. Returns, per wedge,
    (signal count, int32 (K, 3) kept coordinates, float32 (K,) encoder values v).
    """
    sparse = [sparse_input(adc) for adc in wedges]
    coords = np.concatenate([np.column_stack([np.full(len(c), item, np.int32), c])
                             for item, (c, _) in enumerate(sparse)]).astype(np.int32)
    values = np.concatenate([v for _, v in sparse])
    key_points = codec.model.encode(torch.from_numpy(coords).to(codec.device),
                                    torch.from_numpy(values).to(codec.device),
                                    gate, batch_size=len(wedges), first_wedge=first_index)
    kept_coords = key_points.coords.cpu().numpy()
    kept_values = key_points.values.float().cpu().numpy()
    results = []
    for item, (c, _) in enumerate(sparse):
        rows = kept_coords[:, 0] == item
        results.append((len(c), kept_coords[rows, 1:].astype(np.int32), kept_values[rows]))
    return results


@torch.no_grad()
def decode_records(codec: CodecModel, records: list[WedgeRecord]) -> np.ndarray:
    """Reconstruct a batch of records; returns float32 (B, layer, azimuth, time) log ADC.

    The values are the model's reconstruction: regression where segmentation > 0.5, zero
    below log2(64) = 6.
    """
    coords = np.concatenate([np.column_stack([np.full(r.kept_count, item, np.int32), r.coords])
                             for item, r in enumerate(records)]).astype(np.int32)
    values = np.concatenate([r.values for r in records]).astype(np.float32)
    decoded = codec.model.decode(torch.from_numpy(coords).to(codec.device), torch.from_numpy(values).to(codec.device),
                                 batch_size=len(records), spatial_shape=codec.wedge_shape)
    return decoded.reconstruction.float().cpu().numpy()


def adc_from_reconstruction(log_adc: np.ndarray) -> np.ndarray:
    """Return uint16 ADC counts round(2**x - 1) of a log-ADC reconstruction, clipped to 0..1023.

    The regression decoder is unbounded, so values above log2(1024) = 10 saturate at 1023 as
    the 10-bit ADC would.
    """
    clipped = np.clip(log_adc.astype(np.float64), 0.0, MAX_LOG_ADC)
    return np.rint(np.exp2(clipped) - 1.0).astype(np.uint16)


def batched(items: Iterable, size: int) -> Iterator[list]:
    """Yield lists of up to ``size`` consecutive items."""
    batch = []
    for item in items:
        batch.append(item)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def compress_to_file(codec: CodecModel, wedges: Iterable[tuple[str, np.ndarray]], path: str | Path,
                     gate: GateConfig, *, batch_size: int = 1, force: bool = False,
                     coordinate_coding: str = "auto", value_coding: str = "auto",
                     metadata: dict | None = None, progress=None) -> list[RecordInfo]:
    """Compress (wedge id, dense ADC array) pairs into ``path``, ``batch_size`` wedges per model call.

    Only one batch is in memory at a time. The file appears at ``path`` only when every wedge
    is written; on any error ``path`` is left as it was. Returns the :class:`RecordInfo` of
    every record. ``progress`` is called with the number of wedges finished after each batch.
    """
    from ..data.validation import check_adc_array

    if batch_size < 1:
        raise ValueError(f"batch size must be at least 1, got {batch_size}")
    header = file_header(codec, gate, coordinate_coding, value_coding, metadata)
    infos: list[RecordInfo] = []
    seen: set[str] = set()
    with CompressedFileWriter(path, header, force=force) as writer:
        for batch in batched(wedges, batch_size):
            checked = []
            for wedge_id, adc in batch:
                if getattr(adc, "shape", None) != codec.wedge_shape:
                    raise ValueError(f"wedge {wedge_id!r} has shape {getattr(adc, 'shape', None)}, but the model "
                                     f"takes {codec.wedge_shape} (layer, azimuth, time)")
                if wedge_id in seen:
                    raise ValueError(f"wedge id {wedge_id!r} occurs twice in the input; ids must be unique")
                seen.add(wedge_id)
                checked.append(check_adc_array(adc, codec.wedge_shape, f"wedge {wedge_id!r}"))
            encoded = encode_wedges(codec, checked, gate, first_index=len(infos))
            for (wedge_id, _), (signal_count, coords, values) in zip(batch, encoded):
                info = writer.write(wedge_id, signal_count, coords, values)
                log.debug("wedge %s: %d of %d voxels kept, %d bytes", wedge_id, info.kept_count, signal_count,
                          info.record_bytes)
                infos.append(info)
            if progress is not None:
                progress(len(batch))
        if not infos:
            raise ValueError("no wedges to compress: the input is empty")
    return infos


def decompress_file(codec: CodecModel, path: str | Path, *, batch_size: int = 1, skip_damaged: bool = False,
                    reader: CompressedFileReader | None = None) -> Iterator[tuple[RecordInfo, np.ndarray]]:
    """Yield (record info, float32 log-ADC reconstruction (layer, azimuth, time)) for each record.

    Raises ValueError when ``codec`` is not the model the file was written with. With
    ``skip_damaged``, damaged records are skipped and listed in ``reader.damaged`` (pass your
    own ``reader`` to see them).
    """
    if batch_size < 1:
        raise ValueError(f"batch size must be at least 1, got {batch_size}")
    own_reader = reader is None
    reader = reader or CompressedFileReader(path)
    try:
        check_model_matches(codec, reader.header, reader.path)
        for batch in batched(reader.records(skip_damaged=skip_damaged), batch_size):
            reconstruction = decode_records(codec, [record for _, record in batch])
            for (info, _), wedge in zip(batch, reconstruction):
                yield info, wedge
    finally:
        if own_reader:
            reader.close()

"""Write the format-version-1 golden file ``v1/sample.scz`` and its expected content ``v1/sample.json``.

Run once, when version 1 was defined. The files are frozen: rerunning this script with a later
writer would compare that writer with itself instead of with the version 1 files. A new format
version gets its own script and folder, and the old folders stay.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from sparsecodec.codec import CompressedFileWriter, FileHeader

SHAPE = (16, 192, 249)
FOLDER = Path(__file__).resolve().parent / "v1"


def key_points(rng, count):
    index = np.sort(rng.choice(SHAPE[0] * SHAPE[1] * SHAPE[2], size=count, replace=False))
    return np.stack(np.unravel_index(index, SHAPE), axis=1), rng.random(count).astype(np.float32)


def track(rng):
    coords = [(layer, 100 + layer // 3 + da, 40 + layer + dt)
              for layer in range(16) for da in (-1, 0, 1) for dt in range(5)]
    return np.array(coords), rng.uniform(0.2, 0.9, len(coords)).astype(np.float32)


def main() -> None:
    rng = np.random.default_rng(1)
    header = FileHeader(model_name="golden-model", model_sha256="0123456789abcdef" * 4, gate_mode="retention",
                        gate_value=0.25, gate_seed=11, wedge_shape=SHAPE, created_by="sparsecodec 0.1.0",
                        metadata={"input": "golden records"})
    records = [
        ("0-0-0-0", 17, np.zeros((0, 3), np.int32), np.zeros(0, np.float32)),
        ("0-0-0-1", 4, np.array([[15, 191, 248]]), np.array([0.333], np.float32)),
        ("0-0-1-5", 160, *key_points(rng, 40)),
        ("7-12-1-11", 900, *track(rng)),
        ("user/wedge.npy", 1200, *key_points(rng, 300)),
    ]
    path = FOLDER / "sample.scz"
    expected = {"header": json.loads(header.to_json()), "records": []}
    with CompressedFileWriter(path, header, force=True) as writer:
        for wedge_id, signal_count, coords, values in records:
            info = writer.write(wedge_id, signal_count, coords, values)
            # Expected content comes from the inputs, not from reading the file back.
            order = np.argsort(np.ravel_multi_index(coords.T, SHAPE)) if len(coords) else np.zeros(0, np.int64)
            expected["records"].append({
                "wedge_id": wedge_id,
                "signal_count": signal_count,
                "coordinate_coding": info.coordinate_coding,
                "value_coding": info.value_coding,
                "coords": coords[order].tolist(),
                "float16_bits": values[order].astype(np.float16).view(np.uint16).tolist(),
            })
    (FOLDER / "sample.json").write_text(json.dumps(expected) + "\n")


if __name__ == "__main__":
    main()

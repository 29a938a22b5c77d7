"""Data-parallel training: two CPU processes with gloo on 127.0.0.1 stay in step."""

from __future__ import annotations

import os
import socket
import time
from pathlib import Path

import pytest
import torch
import torch.multiprocessing as mp

from sparsecodec.data import save_wedge, simulate_wedges, write_manifest
from sparsecodec.model import load_model
from sparsecodec.train import TrainConfig, train
from sparsecodec.train.loop import MODEL_FILE, build_model

#: Seconds both processes together may take before the test gives up on them.
DEADLINE = 180.0


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _train_rank(rank: int, world_size: int, port: int, settings: dict, folder: str) -> None:
    # What torchrun would set for this process.
    os.environ.update({"MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port), "RANK": str(rank),
                       "LOCAL_RANK": str(rank), "WORLD_SIZE": str(world_size)})
    torch.set_num_threads(1)
    result = train(TrainConfig(**settings))
    torch.save(result.model.state_dict(), Path(folder) / f"rank{rank}.pt")


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    root = tmp_path_factory.mktemp("dataset")
    paths = [root / f"wedge{index}.npy" for index in range(2)]
    for path, adc in zip(paths, simulate_wedges("auau-central-170khz", count=2, seed=4)):
        save_wedge(path, adc)
    write_manifest(root, "train", paths)
    return root


def test_two_processes_train_in_step(dataset, tmp_path):
    settings = dict(data=str(dataset), output=str(tmp_path / "run"), epochs=1, steps_per_epoch=3, batch_size=2,
                    crop=(16, 24), seed=6, progress=False)
    processes = mp.spawn(_train_rank, args=(2, _free_port(), settings, str(tmp_path)), nprocs=2, join=False)
    deadline = time.monotonic() + DEADLINE
    while not processes.join(timeout=5):
        if time.monotonic() > deadline:
            for process in processes.processes:
                process.kill()
            pytest.fail(f"the two training processes did not finish within {DEADLINE:.0f} s")

    first = torch.load(tmp_path / "rank0.pt", weights_only=True)
    second = torch.load(tmp_path / "rank1.pt", weights_only=True)
    assert list(first) == list(second)
    for key in first:
        assert torch.equal(first[key], second[key]), key

    # Training moved the weights, so equality is not just two untouched copies of the start.
    start = build_model(TrainConfig(**settings)).state_dict()
    assert not torch.equal(first["regression.head.weight"], start["regression.head.weight"])
    assert not torch.equal(first["encoder.convs.0.weight"], start["encoder.convs.0.weight"])

    # Only rank 0 writes the model file, and it records both processes.
    _, _, metadata = load_model(tmp_path / "run" / MODEL_FILE)
    assert metadata["training"]["processes"] == 2
    assert metadata["hardware"]["processes"] == 2

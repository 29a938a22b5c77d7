"""Provenance of a trained model: hardware, software versions, source commit and data."""

from __future__ import annotations

import json
import os
import platform
import subprocess
from pathlib import Path

import torch


def cpu_name() -> str:
    """Return the CPU model from /proc/cpuinfo on Linux, else :func:`platform.processor`."""
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        for line in cpuinfo.read_text(errors="replace").splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def hardware(device: torch.device, world_size: int) -> dict:
    """Return the device, CPU, core and thread counts, GPU name and torch version of this run."""
    info = {
        "device": str(device),
        "processes": world_size,
        "cpu": cpu_name(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "torch": str(torch.__version__),
        "python": platform.python_version(),
        "platform": platform.platform(),
    }
    if device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
    return info


def git_commit() -> dict:
    """Return the commit of the source tree this package runs from, and whether tracked files differ from it.

    An empty dict when the package is not inside a git work tree (an installed wheel) or git is
    missing.
    """
    source = Path(__file__).resolve().parents[2]
    try:
        commit = subprocess.run(["git", "-C", str(source), "rev-parse", "HEAD"], capture_output=True,
                                text=True, timeout=10, check=True).stdout.strip()
        status = subprocess.run(["git", "-C", str(source), "status", "--porcelain", "--untracked-files=no"],
                                capture_output=True, text=True, timeout=10, check=True).stdout
    except (OSError, subprocess.SubprocessError):
        return {}
    return {"commit": commit, "uncommitted_changes": bool(status.strip())}


def dataset_description(root: str | Path, split: str, wedges: int) -> dict:
    """Return the dataset path, split, wedge count and, for simulated data, the simulation settings."""
    root = Path(root)
    description = {"path": str(root.resolve()), "split": split, "wedges": wedges}
    simulation = root / "simulation.json"
    if simulation.is_file():
        try:
            settings = json.loads(simulation.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return description
        description["simulation"] = {key: settings.get(key) for key in
                                     ("generator", "preset", "seed", "events", "first_experiment",
                                      "occupancy_target")}
    return description

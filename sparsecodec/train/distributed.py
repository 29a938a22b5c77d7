"""Data-parallel training across processes started by ``torchrun`` (gloo on CPU, nccl on CUDA).

``torchrun`` sets RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR and MASTER_PORT; a process that finds
WORLD_SIZE above 1 joins the process group with the ``env://`` method. Without those variables
training runs in one process and every helper here is a no-op.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass

import torch

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Distributed:
    """This process's place in the run: rank, number of processes and the device it trains on."""

    rank: int
    world_size: int
    device: torch.device
    owns_group: bool

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def _env_int(name: str, default: int) -> int:
    text = os.environ.get(name)
    if text is None or text == "":
        return default
    try:
        return int(text)
    except ValueError as error:
        raise ValueError(f"environment variable {name} must be an integer, got {text!r}") from error


def setup(device: torch.device) -> Distributed:
    """Join the process group when started by ``torchrun`` with more than one process.

    On CUDA each process takes ``cuda:LOCAL_RANK`` and the nccl backend; on CPU the gloo
    backend. A process group that the caller already initialized is used as it is.
    """
    # NOTE: only the gloo path has run (tests start 2 CPU processes); nccl on GPUs is untested.
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        rank, world_size = dist.get_rank(), dist.get_world_size()
        if device.type == "cuda":
            device = torch.device("cuda", _env_int("LOCAL_RANK", rank) % torch.cuda.device_count())
        return Distributed(rank, world_size, device, owns_group=False)

    world_size = _env_int("WORLD_SIZE", 1)
    if world_size <= 1:
        return Distributed(0, 1, device, owns_group=False)
    if not dist.is_available():
        raise RuntimeError("WORLD_SIZE > 1 but this torch build has no torch.distributed support")

    rank = _env_int("RANK", 0)
    if device.type == "cuda":
        device = torch.device("cuda", _env_int("LOCAL_RANK", 0))
        torch.cuda.set_device(device)
        backend = "nccl"
    else:
        backend = "gloo"
    dist.init_process_group(backend=backend, init_method="env://", rank=rank, world_size=world_size)
    log.info("rank %d of %d joined the %s process group on %s", rank, world_size, backend, device)
    return Distributed(rank, world_size, device, owns_group=True)


def teardown(context: Distributed) -> None:
    """Leave the process group if :func:`setup` created it."""
    if context.owns_group:
        import torch.distributed as dist

        dist.destroy_process_group()


def all_reduce_mean(tensor: torch.Tensor, context: Distributed) -> torch.Tensor:
    """Return the mean of ``tensor`` over all processes (the tensor itself in one process)."""
    if not context.enabled:
        return tensor
    import torch.distributed as dist

    reduced = tensor.clone()
    dist.all_reduce(reduced, op=dist.ReduceOp.SUM)
    return reduced / context.world_size


def all_reduce_sum(tensor: torch.Tensor, context: Distributed) -> torch.Tensor:
    """Return the sum of ``tensor`` over all processes (the tensor itself in one process)."""
    if not context.enabled:
        return tensor
    import torch.distributed as dist

    reduced = tensor.clone()
    dist.all_reduce(reduced, op=dist.ReduceOp.SUM)
    return reduced


def broadcast_buffers(module: torch.nn.Module, context: Distributed) -> None:
    """Copy rank 0's buffers (BatchNorm running statistics) to every process."""
    if not context.enabled:
        return
    import torch.distributed as dist

    for buffer in module.buffers():
        dist.broadcast(buffer.data, src=0)


def check_in_step(module: torch.nn.Module, context: Distributed) -> None:
    """Raise RuntimeError unless every process has bit-identical parameters and buffers."""
    if not context.enabled:
        return
    import torch.distributed as dist

    local = torch.cat([tensor.detach().reshape(-1).double() for tensor in module.state_dict().values()
                       if tensor.dtype.is_floating_point])
    reference = local.clone()
    dist.broadcast(reference, src=0)
    differs = torch.tensor([0.0 if torch.equal(local, reference) else 1.0], device=local.device)
    dist.all_reduce(differs, op=dist.ReduceOp.SUM)
    if differs.item():
        raise RuntimeError(f"{int(differs.item())} of {context.world_size} processes hold weights that differ "
                           "from rank 0's; data-parallel training went out of step")

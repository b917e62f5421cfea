"""Work spread over processes launched by ``torchrun`` (torch.distributed), or none.

torchrun starts one process per rank and tells each who it is through the environment (RANK,
WORLD_SIZE, LOCAL_RANK, MASTER_ADDR, MASTER_PORT). These helpers read that, join the process
group (gloo on CPU, nccl on GPU), split a list of work items over the ranks and gather results
on rank 0. In a plain process they act as rank 0 of 1, so callers need no second code path:

    with process_group(device):
        mine = shard(items)
        parts = gather_to_rank0([work(x) for x in mine])
        if parts is not None:  # rank 0
            results = unshard(parts)  # in the order of items
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Sequence
from datetime import timedelta
from typing import Any, TypeVar

import torch
import torch.distributed as dist

T = TypeVar("T")

LAUNCH_VARS = ("RANK", "WORLD_SIZE", "LOCAL_RANK")


def launched() -> bool:
    """Whether torchrun (or another launcher setting its variables) started this process."""
    return all(v in os.environ for v in LAUNCH_VARS)


def _active() -> bool:
    return dist.is_available() and dist.is_initialized()


def rank() -> int:
    """This process's rank: from the process group, else from the launcher, else 0."""
    if _active():
        return dist.get_rank()
    return int(os.environ["RANK"]) if launched() else 0


def world_size() -> int:
    """Number of ranks: from the process group, else from the launcher, else 1."""
    if _active():
        return dist.get_world_size()
    return int(os.environ["WORLD_SIZE"]) if launched() else 1


def local_rank() -> int:
    """Rank on this machine (which GPU is this process's), 0 when not launched."""
    return int(os.environ["LOCAL_RANK"]) if launched() else 0


def is_main() -> bool:
    return rank() == 0


def backend_for(device: str) -> str:
    """nccl for CUDA devices (collectives on GPU tensors), gloo otherwise."""
    return "nccl" if str(device).startswith("cuda") else "gloo"


def rank_device(device: str) -> str:
    """The device this rank should use: plain "cuda" becomes this rank's GPU under a launcher
    (one GPU per local rank); "cpu" and explicit "cuda:N" are kept."""
    return f"cuda:{local_rank()}" if device == "cuda" and launched() else device


def init_if_launched(device: str = "cpu", timeout: timedelta | None = None) -> bool:
    """Join the launcher's process group; returns True when this call created it.

    Nothing happens in a plain process or when a group already exists. ``timeout`` bounds how
    long a collective waits for the slowest rank (torch's default is 10-30 minutes, too short
    when ranks finish long jobs at different times).
    """
    if not launched() or not dist.is_available() or dist.is_initialized():
        return False
    backend = backend_for(device)
    if backend == "nccl":
        # object collectives on nccl use the current device: make it this rank's own GPU
        torch.cuda.set_device(local_rank())
    dist.init_process_group(backend, timeout=timeout)  # env:// rendezvous from torchrun
    return True


def destroy() -> None:
    """Leave and destroy the process group, if there is one."""
    if _active():
        dist.destroy_process_group()


@contextlib.contextmanager
def process_group(device: str = "cpu", timeout: timedelta | None = None) -> Iterator[bool]:
    """``init_if_launched`` on entry; on exit, destroy the group if this created it.
    Yields whether several ranks take part."""
    created = init_if_launched(device, timeout)
    try:
        yield world_size() > 1
    finally:
        if created:
            destroy()


def shard(items: Sequence[T], rank_: int | None = None, world: int | None = None) -> list[T]:
    """This rank's items: every world-th item from position rank (round robin).

    Deterministic, and neighbours in ``items`` (often alike in cost) go to different ranks.
    """
    r = rank() if rank_ is None else rank_
    w = world_size() if world is None else world
    if not 0 <= r < w:
        raise ValueError(f"rank {r} is not in 0..{w - 1}")
    return list(items[r::w])


def unshard(parts: Sequence[Sequence[T]]) -> list[T]:
    """Inverse of :func:`shard`: the items of every rank (parts[r] = shard(items, r)) back in
    their original order."""
    w = len(parts)
    n = sum(len(p) for p in parts)
    return [parts[i % w][i // w] for i in range(n)]


def gather_to_rank0(obj: Any) -> list[Any] | None:
    """Every rank's ``obj`` (picklable) as a list indexed by rank on rank 0, None elsewhere.

    A plain process gets ``[obj]``. All ranks must call this.
    """
    if not _active() or dist.get_world_size() == 1:
        return [obj]
    out = [None] * dist.get_world_size() if dist.get_rank() == 0 else None
    dist.gather_object(obj, out, dst=0)
    return out


def all_gather(obj: Any) -> list[Any]:
    """Every rank's ``obj`` (picklable) as a list indexed by rank, on every rank; a plain
    process gets ``[obj]``. All ranks must call this."""
    if not _active() or dist.get_world_size() == 1:
        return [obj]
    out = [None] * dist.get_world_size()
    dist.all_gather_object(out, obj)
    return out

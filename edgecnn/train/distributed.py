"""Multi-process training on PyTorch's own engine: ``torchrun`` starts the processes, this module joins them.

``torchrun --nproc_per_node=N -m edgecnn.train.launch RECIPE`` (or ``edgecnn train`` under torchrun) sets
RANK/WORLD_SIZE/LOCAL_RANK; :func:`init_distributed` then creates the process group (NCCL on GPUs, gloo on CPU).
Gradients are averaged by DistributedDataParallel, data are sharded by DistributedSampler, and only rank 0 logs and
writes checkpoints.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass(frozen=True, kw_only=True)
class DistEnv:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    backend: str | None = None

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1


def init_distributed(device: torch.device) -> DistEnv:
    """Join the process group torchrun describes in the environment; a no-op for a single process."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistEnv()
    rank, local = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    backend = "nccl" if device.type == "cuda" else "gloo"
    if not dist.is_initialized():
        if device.type == "cuda":
            torch.cuda.set_device(local)
        dist.init_process_group(backend=backend)
    return DistEnv(rank=rank, world_size=world, local_rank=local, backend=backend)


def barrier(env: DistEnv) -> None:
    if env.enabled:
        dist.barrier()


def shutdown(env: DistEnv) -> None:
    if env.enabled and dist.is_initialized():
        dist.destroy_process_group()

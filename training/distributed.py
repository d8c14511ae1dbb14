"""Multi-GPU training through ``torchrun`` (DDP): process-group setup from the environment, index sharding like
``DistributedSampler``, and small collective helpers. With a single process every helper is a no-op.

Usage: ``torchrun --nproc_per_node 4 -m training.cli ...`` or ``torchrun --nproc_per_node 4 $(which fer-train) ...``.
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist


@dataclass
class DistInfo:
    """Where this process sits in the job."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def init_distributed(device_kind: str) -> DistInfo:
    """Join the process group when launched by ``torchrun`` (``RANK``/``WORLD_SIZE``/``LOCAL_RANK`` set).

    Uses NCCL on CUDA (and pins this process to GPU ``LOCAL_RANK``), Gloo on the CPU.
    """
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistInfo()
    info = DistInfo(int(os.environ["RANK"]), world, int(os.environ.get("LOCAL_RANK", "0")))
    # With channels_last, parameters whose layout is ambiguous (a size-1 dim, e.g. depthwise (C, 1, k, k)) get
    # gradients with other (equivalent) strides than DDP's buckets; DDP then copies instead of aliasing and warns
    # on every step. Harmless, so keep the log readable.
    warnings.filterwarnings("ignore", message="Grad strides do not match bucket view strides")
    if not dist.is_initialized():
        if device_kind == "cuda":
            torch.cuda.set_device(info.local_rank)
        dist.init_process_group(backend="nccl" if device_kind == "cuda" else "gloo")
    return info


def cleanup(info: DistInfo) -> None:
    """Leave the process group."""
    if info.enabled and dist.is_initialized():
        dist.destroy_process_group()


def shard_indices(order: torch.Tensor, info: DistInfo) -> torch.Tensor:
    """This rank's share of a (shuffled) index order, padded by wrapping so every rank gets the same count."""
    if not info.enabled:
        return order
    per_rank = -(-len(order) // info.world_size)
    total = per_rank * info.world_size
    if total > len(order):
        order = torch.cat([order, order[: total - len(order)]])
    return order[info.rank:total:info.world_size]


def eval_shard(n: int, info: DistInfo) -> torch.Tensor:
    """Indices of an evaluation set for this rank (no padding: results are gathered and re-ordered)."""
    return torch.arange(info.rank, n, info.world_size)


def all_reduce_max(value: float, info: DistInfo, device: torch.device) -> float:
    """Maximum of a scalar over all ranks (used to agree on stopping)."""
    if not info.enabled:
        return value
    t = torch.tensor([value], dtype=torch.float64, device=device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return float(t.item())


def all_reduce_sum(values: list[float], info: DistInfo, device: torch.device) -> list[float]:
    """Element-wise sum of a list of scalars over all ranks."""
    if not info.enabled:
        return values
    t = torch.tensor(values, dtype=torch.float64, device=device)
    dist.all_reduce(t)
    return t.tolist()


def all_gather_objects(obj: Any, info: DistInfo) -> list[Any]:
    """Every rank's ``obj``, in rank order (``[obj]`` with a single process)."""
    if not info.enabled:
        return [obj]
    out: list[Any] = [None] * info.world_size
    dist.all_gather_object(out, obj)
    return out


def broadcast_object(obj: Any, info: DistInfo) -> Any:
    """Rank 0's ``obj`` on every rank."""
    if not info.enabled:
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def barrier(info: DistInfo) -> None:
    """Wait for all ranks."""
    if info.enabled:
        dist.barrier()

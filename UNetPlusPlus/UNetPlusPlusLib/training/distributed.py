"""Running the same training script under ``torchrun`` with DistributedDataParallel.

``torchrun --nproc_per_node N -m UNetPlusPlusLib.training.cli ...`` starts N processes with
RANK / WORLD_SIZE / LOCAL_RANK set; each joins a process group (gloo on the CPU, nccl on CUDA
GPUs, one GPU per local rank). Every rank builds the same model from the same seed and DDP
broadcasts rank 0's weights and averages the gradients, so the weights stay identical on every
rank. Each rank draws different patches (its rank enters the sampling seed); only rank 0
preprocesses, validates and writes files.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist
from torch import nn


@dataclass
class DistributedContext:
    """This process's place in the run (``world_size == 1`` without torchrun)."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def resolve_training_device(request: str, local_rank: int = 0, world_size: int = 1):
    """The engine's device choice; under torchrun each rank takes the GPU of its local rank."""
    from ..engine.devices import resolve_device

    device = resolve_device(request)
    text = (request or "auto").strip().lower()
    if device.type == "cuda" and world_size > 1 and text in ("auto", "cuda"):
        return torch.device("cuda", local_rank % torch.cuda.device_count())
    return device


def init_distributed(device_request: str = "auto") -> DistributedContext:
    """Join the torchrun process group when launched by torchrun; otherwise a single process."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    device = resolve_training_device(device_request, local_rank, world_size)
    if world_size > 1 and not dist.is_initialized():
        backend = "nccl" if device.type == "cuda" else "gloo"
        if device.type == "cuda":
            torch.cuda.set_device(device)
        dist.init_process_group(backend=backend, rank=rank, world_size=world_size)
    return DistributedContext(rank, world_size, local_rank, device)


def wrap_model(module: nn.Module, context: DistributedContext) -> nn.Module:
    """DistributedDataParallel around ``module`` when running distributed, else ``module``."""
    if not context.enabled:
        return module
    from torch.nn.parallel import DistributedDataParallel

    device_ids = [context.device.index] if context.device.type == "cuda" else None
    return DistributedDataParallel(module, device_ids=device_ids)


def barrier(context: DistributedContext) -> None:
    if context.enabled:
        dist.barrier()


def broadcast_object(context: DistributedContext, value: Any) -> Any:
    """Rank 0's ``value`` on every rank (JSON-like values only)."""
    if not context.enabled:
        return value
    box = [value]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def gather_strings(context: DistributedContext, value: str) -> list[str]:
    """Every rank's string, in rank order, on every rank."""
    if not context.enabled:
        return [value]
    out: list = [None] * context.world_size
    dist.all_gather_object(out, value)
    return [str(v) for v in out]


def mean_over_ranks(context: DistributedContext, value: float) -> float:
    if not context.enabled:
        return float(value)
    tensor = torch.tensor([float(value)], dtype=torch.float64, device=_collective_device(context))
    dist.all_reduce(tensor)
    return float(tensor.item()) / context.world_size


def _collective_device(context: DistributedContext) -> torch.device:
    return context.device if context.device.type == "cuda" else torch.device("cpu")


def state_digest(module: nn.Module) -> str:
    """sha256 over every tensor of the state dict (names and bytes), to compare ranks."""
    digest = hashlib.sha256()
    for name, tensor in sorted(module.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


def shutdown(context: DistributedContext) -> None:
    if context.enabled and dist.is_initialized():
        dist.destroy_process_group()

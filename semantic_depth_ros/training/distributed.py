"""Several processes with ``torchrun``: environment detection, DDP wrapping, rank-0 duties (device choice:
``devices.resolve_device(spec, local_rank=...)``).

``torchrun --nproc_per_node N -m semantic_depth_ros.cli train --config FILE`` sets ``RANK``, ``WORLD_SIZE`` and
``LOCAL_RANK``; without them the run is a single process. Every rank trains on its own share of each batch
stream (``flow.StreamBatchSampler`` uses ``DistributedSampler``); rank 0 alone prints, logs and writes files.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from ..errors import ConfigError


@dataclass(frozen=True)
class DistContext:
    """This process's place in the job: ``rank`` of ``world_size``, ``local_rank`` on its machine."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        """Rank 0: the only process that logs and saves."""
        return self.rank == 0

    @property
    def is_distributed(self) -> bool:
        return self.world_size > 1


def detect_context(environ: Mapping[str, str] | None = None) -> DistContext:
    """Read ``RANK``/``WORLD_SIZE``/``LOCAL_RANK`` (torchrun); a single process when they are absent."""
    env = os.environ if environ is None else environ
    values: dict[str, int] = {}
    for name, default in (("RANK", 0), ("WORLD_SIZE", 1), ("LOCAL_RANK", None)):
        text = env.get(name)
        if text is None:
            values[name] = values.get("RANK", 0) if default is None else default
            continue
        try:
            values[name] = int(text)
        except ValueError:
            raise ConfigError(f"environment variable {name} = {text!r} is not an integer") from None
    rank, world, local = values["RANK"], values["WORLD_SIZE"], values["LOCAL_RANK"]
    if world < 1 or not 0 <= rank < world or local < 0:
        raise ConfigError(f"inconsistent torchrun environment: RANK={rank} WORLD_SIZE={world} LOCAL_RANK={local}")
    return DistContext(rank=rank, world_size=world, local_rank=local)


def init_process_group(ctx: DistContext, device: torch.device) -> bool:
    """Join the process group (NCCL on CUDA, gloo on CPU) when distributed; True if this call created it."""
    if not ctx.is_distributed or dist.is_initialized():
        return False
    backend = "nccl" if device.type == "cuda" else "gloo"
    dist.init_process_group(backend=backend, rank=ctx.rank, world_size=ctx.world_size)
    return True


def wrap_model(model: nn.Module, ctx: DistContext, device: torch.device) -> nn.Module:
    """DistributedDataParallel when distributed, else the model itself.

    ``find_unused_parameters`` is on because each step runs only one head; all ranks run the same head at the
    same step (the flow schedule depends on the step alone), and DDP leaves the gradient of a parameter unused
    on every rank untouched (None), so the unused head is not moved by the optimiser.
    """
    if not ctx.is_distributed:
        return model
    device_ids = [device.index] if device.type == "cuda" else None
    return DistributedDataParallel(model, device_ids=device_ids, find_unused_parameters=True)


def unwrap(model: nn.Module) -> nn.Module:
    """The bare network inside a DDP wrapper."""
    return model.module if isinstance(model, DistributedDataParallel) else model


def shard(length: int, ctx: DistContext) -> list[int]:
    """This rank's indices of a dataset of ``length`` for evaluation (strided, no padding, no duplicates)."""
    return list(range(ctx.rank, length, ctx.world_size))


def gather(obj: Any, ctx: DistContext) -> list[Any]:
    """Every rank's ``obj`` (picklable), in rank order; ``[obj]`` in a single process."""
    if not ctx.is_distributed:
        return [obj]
    out: list[Any] = [None] * ctx.world_size
    dist.all_gather_object(out, obj)
    return out


def barrier(ctx: DistContext) -> None:
    """Wait for every rank (no-op in a single process)."""
    if ctx.is_distributed:
        dist.barrier()


def sync_buffers(model: nn.Module, ctx: DistContext) -> None:
    """Copy rank 0's buffers (batch-norm running statistics) to every rank, e.g. before a sharded validation."""
    if ctx.is_distributed:
        for buffer in unwrap(model).buffers():
            dist.broadcast(buffer, src=0)


def destroy_process_group(created: bool) -> None:
    """Leave the process group if :func:`init_process_group` created it."""
    if created and dist.is_initialized():
        dist.destroy_process_group()

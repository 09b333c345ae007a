"""torchrun-aware process group, sharded loaders and gathering: the same command runs on one CPU or N GPUs.

    torchrun --nproc-per-node N -m finecliper.cli.main train ...
NCCL on CUDA, gloo on CPU. Outside torchrun everything here is a no-op (world size 1).

Every rank must take the same number of steps, or a collective waits forever for a rank that has
finished: loaders use ``DistributedSampler``, which pads the last shard by repeating clips.
Evaluation drops those repeats again and gathers the predictions back in dataset order.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist
from torch.utils.data import DataLoader, Dataset, DistributedSampler

from finecliper.data.dataset import collate_clips


@dataclass(frozen=True)
class Dist:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def init_distributed(device_type: str) -> Dist:
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return Dist()
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device_type == "cuda" else "gloo")
    return Dist(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", "0")))


def barrier(d: Dist) -> None:
    if d.enabled:
        dist.barrier()


def gather_objects(d: Dist, obj: Any) -> list[Any]:
    """A list with every rank's ``obj`` (on every rank); ``[obj]`` when not distributed."""
    if not d.enabled:
        return [obj]
    out = [None] * d.world_size
    dist.all_gather_object(out, obj)
    return out


def shard_loader(ds: Dataset, batch_size: int, workers: int, d: Dist, *, shuffle: bool, seed: int) -> DataLoader:
    """This rank's share of ``ds``; every rank gets the same number of batches.

    Call ``loader.sampler.set_epoch(epoch)`` before each epoch: the shuffle is drawn from (seed, epoch),
    so a resumed run sees the same order.
    """
    sampler = DistributedSampler(ds, num_replicas=d.world_size, rank=d.rank, shuffle=shuffle, seed=seed, drop_last=False)
    return DataLoader(ds, batch_size=batch_size, sampler=sampler, num_workers=workers, collate_fn=collate_clips,
                      pin_memory=torch.cuda.is_available(), persistent_workers=False)


def gather_in_order(d: Dist, rows: list, n: int) -> list:
    """Per-clip ``rows`` of a ``shard_loader(shuffle=False)`` pass, from every rank, in dataset order.

    ``DistributedSampler`` gives rank r the padded indices r, r + W, r + 2W, ...; interleaving the ranks'
    rows restores 0, 1, 2, ... and cutting at ``n`` (the dataset length) drops the padding repeats.
    """
    parts = gather_objects(d, rows)
    if len({len(p) for p in parts}) > 1:
        raise RuntimeError(f"ranks returned {[len(p) for p in parts]} rows; a sharded pass must give each the same")
    return [row for group in zip(*parts) for row in group][:n]

"""The conditional-flow batch schedule: which task each step trains, and which samples each batch holds.

Everything is a pure function of (seed, step), so a resumed run draws exactly the batches the uninterrupted run
would have drawn, whatever the number of data-loader workers:

* :class:`FlowSchedule` interleaves the tasks at integer ratios (e.g. depth 2 : semantic 1 -> d d s d d s ...),
  optionally in a seeded random order inside each cycle, and counts how many batches of a task came before a step.
* :class:`StreamBatchSampler` yields the batches of one task's stream from any batch number onwards. Every epoch
  is a ``DistributedSampler`` permutation (this rank's share, seeded by epoch), so several processes under
  ``torchrun`` see disjoint samples. Each item is ``(dataset index, augmentation key)``; the key is unique over
  the run and seeds the sample's augmentation (see ``training.datasets.TaskSamples``).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping

import torch
from torch.utils.data import DistributedSampler, Sampler

from ..data.transforms import make_generator
from ..errors import ConfigError, DatasetError

STREAM_SEED_STRIDE = 1_000_003  # keeps the epoch seeds of different streams apart (epoch seed = seed + epoch)


class FlowSchedule:
    """Deterministic interleaving of tasks: in every cycle of ``sum(ratios)`` steps, ``ratios[t]`` steps of task t."""

    def __init__(self, ratios: Mapping[str, int], *, seed: int = 0, shuffle: bool = False) -> None:
        self.tasks = tuple(t for t, r in ratios.items() if r > 0)
        if not self.tasks or any(int(r) != r or r < 0 for r in ratios.values()):
            raise ConfigError(f"flow ratios must be non-negative integers, not all 0, got {dict(ratios)}")
        self.ratios = {t: int(ratios[t]) for t in self.tasks}
        self.cycle = sum(self.ratios.values())
        self.seed = int(seed)
        self.shuffle = bool(shuffle)
        self._base = self._even_pattern()
        self._cached: tuple[int, tuple[str, ...]] = (-1, self._base)

    def _even_pattern(self) -> tuple[str, ...]:
        """One cycle with each task's steps spread evenly (largest-remainder interleave, first task first)."""
        remaining = dict(self.ratios)
        pattern: list[str] = []
        for slot in range(self.cycle):
            # pick the task furthest behind its ideal share at this slot; ties go to the earlier task
            due = {t: self.ratios[t] * (slot + 1) / self.cycle - (self.ratios[t] - remaining[t]) for t in self.tasks}
            task = max((t for t in self.tasks if remaining[t] > 0), key=lambda t: due[t])
            pattern.append(task)
            remaining[task] -= 1
        return tuple(pattern)

    def pattern(self, cycle: int) -> tuple[str, ...]:
        """The task order of cycle number ``cycle`` (a seeded permutation of the even pattern with ``shuffle``)."""
        if not self.shuffle:
            return self._base
        if self._cached[0] != cycle:
            order = torch.randperm(self.cycle, generator=make_generator(self.seed, 0xF10, cycle))
            self._cached = (cycle, tuple(self._base[i] for i in order.tolist()))
        return self._cached[1]

    def task_at(self, step: int) -> str:
        """The task trained at (0-based) step ``step``."""
        return self.pattern(step // self.cycle)[step % self.cycle]

    def count_before(self, task: str, step: int) -> int:
        """How many batches of ``task`` steps 0..step-1 used (the stream's next batch number at ``step``)."""
        if task not in self.ratios:
            return 0
        full, rest = divmod(step, self.cycle)
        return full * self.ratios[task] + self.pattern(full)[:rest].count(task)


class StreamBatchSampler(Sampler[list[tuple[int, int]]]):
    """Endless batches of ``(index, augmentation key)`` for one task's stream, starting at ``start_batch``.

    Batch ``b`` is batch ``b % batches_per_epoch`` of epoch ``b // batches_per_epoch``; an epoch is this rank's
    ``DistributedSampler`` share (shuffled with seed ``seed + stream * STREAM_SEED_STRIDE + epoch``, last
    incomplete batch dropped).
    """

    def __init__(self, length: int, batch_size: int, *, seed: int, stream: int, rank: int = 0, world_size: int = 1,
                 start_batch: int = 0, shuffle: bool = True) -> None:
        if batch_size < 1 or not 0 <= rank < world_size or start_batch < 0:
            raise ConfigError(f"invalid stream sampler: batch_size {batch_size}, rank {rank}/{world_size}, "
                              f"start_batch {start_batch}")
        self.length = int(length)
        self.batch_size = int(batch_size)
        self.rank = int(rank)
        self.world_size = int(world_size)
        self.start_batch = int(start_batch)
        self.stream = int(stream)
        self._sampler = DistributedSampler(range(self.length), num_replicas=world_size, rank=rank, shuffle=shuffle,
                                           seed=seed + self.stream * STREAM_SEED_STRIDE, drop_last=True)
        self.batches_per_epoch = (self.length // self.world_size) // self.batch_size
        if self.batches_per_epoch < 1:
            raise DatasetError(f"training stream {stream} has {self.length} samples, fewer than batch_size "
                               f"{batch_size} x {world_size} process(es)")
        self._epoch_cache: tuple[int, list[int]] | None = None

    def _epoch_indices(self, epoch: int) -> list[int]:
        if self._epoch_cache is None or self._epoch_cache[0] != epoch:
            self._sampler.set_epoch(epoch)
            self._epoch_cache = (epoch, list(iter(self._sampler)))
        return self._epoch_cache[1]

    def batch(self, number: int) -> list[tuple[int, int]]:
        """Batch ``number`` of this stream on this rank: ``(dataset index, augmentation key)`` pairs."""
        epoch, within = divmod(number, self.batches_per_epoch)
        indices = self._epoch_indices(epoch)[within * self.batch_size:(within + 1) * self.batch_size]
        first_key = (number * self.world_size + self.rank) * self.batch_size
        return [(index, first_key + position) for position, index in enumerate(indices)]

    def __iter__(self) -> Iterator[list[tuple[int, int]]]:
        number = self.start_batch
        while True:
            yield self.batch(number)
            number += 1

    def __len__(self) -> int:
        """Batches per epoch (the sampler itself never ends)."""
        return self.batches_per_epoch

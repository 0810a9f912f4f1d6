"""Which rows go into which micro-batch, in a data order that depends only on the seed and epoch.

Because the order of epoch ``e`` is a pure function of ``(seed, e)``, a resumed run can
rebuild it and skip to the saved batch index: no sampler state needs to be saved.
"""

from __future__ import annotations

import math

from studio.core.config import RunConfig


def epoch_batches(lengths: list[int], cfg: RunConfig, epoch: int, rank: int = 0, world: int = 1) -> list[list[int]]:
    """This process's micro-batches (lists of row indices) for one epoch.

    Without packing, rows are shuffled and cut into ``train.batch_size`` rows per batch.
    With packing, rows are first grouped best-fit-decreasing into packs of at most
    ``data.max_length`` tokens (the same groups the statistics page shows); a micro-batch is
    ``batch_size`` packs, each trained as one padding-free batch row (a micro-batch is
    returned flat; :func:`split_units` recovers the packs). With several processes each gets
    every ``world``-th batch, trimmed so all processes run the same number of steps.
    """
    import torch

    gen = torch.Generator().manual_seed(cfg.train.seed * 1000 + epoch)
    units = batch_units(lengths, cfg)
    order = torch.randperm(len(units), generator=gen).tolist()
    return _shard(_chunk(units, order, cfg.train.batch_size), rank, world)


def eval_batches(lengths: list[int], cfg: RunConfig, rank: int = 0, world: int = 1) -> list[list[int]]:
    """This process's evaluation micro-batches, in file order (packed like training when packing)."""
    units = batch_units(lengths, cfg)
    batches = _chunk(units, list(range(len(units))), cfg.train.batch_size)
    return batches[rank::world]


def batch_units(lengths: list[int], cfg: RunConfig) -> list[list[int]]:
    """The rows of each batch row: one row each, or best-fit-decreasing packs of at most ``data.max_length`` tokens."""
    if cfg.data.padding != "packing":
        return [[i] for i in range(len(lengths))]
    from studio.core.encoding import pack_groups

    return pack_groups(list(lengths), cfg.data.max_length)


def unit_index(units: list[list[int]]) -> dict[int, int]:
    """row index -> the pack (batch row) it belongs to."""
    return {i: k for k, unit in enumerate(units) for i in unit}


def split_units(batch: list[int], unit_of: dict[int, int]) -> list[list[int]]:
    """A flat micro-batch cut back into its packs (their rows are consecutive)."""
    units: list[list[int]] = []
    for i in batch:
        if units and unit_of[units[-1][-1]] == unit_of[i]:
            units[-1].append(i)
        else:
            units.append([i])
    return units


def _chunk(units: list[list[int]], order: list[int], size: int) -> list[list[int]]:
    return [sum((units[j] for j in order[i:i + size]), []) for i in range(0, len(order), size)]


def _shard(batches: list[list[int]], rank: int, world: int) -> list[list[int]]:
    usable = (len(batches) // world) * world if world > 1 else len(batches)
    return batches[rank:usable:world]


def steps_per_epoch(n_batches: int, grad_accum: int) -> int:
    """Optimizer steps in an epoch of ``n_batches`` micro-batches (a last partial step counts)."""
    return max(1, math.ceil(n_batches / grad_accum))


def total_steps(cfg: RunConfig, n_batches: int) -> int:
    """``train.max_steps`` when set, else the steps of ``train.epochs`` epochs (at least one)."""
    if cfg.train.max_steps > 0:
        return cfg.train.max_steps
    return max(1, math.ceil(cfg.train.epochs * steps_per_epoch(n_batches, cfg.train.grad_accum)))

"""Distributed training helpers that models need: one model across DDP processes.

A model that initialises state from data after the strategy has started its processes
(FLIG's ridge start, the CNN encoder's readout positions) calls `sync_from_rank_zero` so
that every process continues from rank 0's state. It sits below the models and the
training path, so neither imports the other for it.
"""

from __future__ import annotations

import lightning as L
from torch import nn


def sync_from_rank_zero(module: nn.Module, trainer: L.Trainer) -> None:
    """Give every process rank 0's parameters and buffers of ``module`` (no-op on one).

    For state initialised from data after the strategy has set up the processes (e.g. in
    ``on_fit_start``): each process reads its own batches, so their results may differ,
    and distributed training needs one model.

    Examples
    --------
    >>> import lightning as L
    >>> from torch import nn
    >>> sync_from_rank_zero(nn.Linear(2, 2), L.Trainer(logger=False, accelerator="cpu"))
    """
    if trainer.world_size == 1:
        return
    state = {name: value.detach().cpu() for name, value in module.state_dict().items()}
    module.load_state_dict(trainer.strategy.broadcast(state, src=0))

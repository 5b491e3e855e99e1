"""The head protocol and the registry of heads by name.

A wing's head is declared as an entry point of group `pfn.heads` (`pfn.registry`), so the engine
finds it without importing the wing.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from pfn.registry import lookup
from priors.batch import Batch

if TYPE_CHECKING:
    from pfn.config import ModelConfig

HEADS: dict[str, type[Head]] = {}
ENTRY_POINT_GROUP = "pfn.heads"


def register_head(name: str) -> Callable[[type[Head]], type[Head]]:
    """Class decorator: makes a head selectable by `ModelConfig(head=name)`."""
    def register(cls: type[Head]) -> type[Head]:
        HEADS[name] = cls
        return cls
    return register


def head_class(name: str) -> type[Head]:
    """The head class registered under `name`, or declared by a wing's `pfn.heads` entry point (its module is
    imported then); raises a ValueError naming the known heads."""
    return lookup(HEADS, ENTRY_POINT_GROUP, "head", name)


class Head(nn.Module):
    """Maps transformer states to a predictive distribution; subclasses fill in the hooks below.

    The protocol:
    - `forward(h)`: raw outputs ("logits", `... x n_outputs`) of states `h` (`... x D`).
    - `parameters_of(logits, **task)`: the predictive's parameters (`... x P`), e.g. normalised
      log-probabilities; `distribution(params, **task)` wraps them without copying. Prediction
      fills a preallocated `B x M x P` table chunk by chunk, so memory stays bounded.
    - `task_of_context(y_context, **options)` validates context targets and returns the
      keyword arguments (`task`) that the two above need (e.g. `n_classes`);
      `task_of_batch(batch)` does the same for a training batch.
    - `loss(logits, batch)`: the negative log-likelihood of the batch's query targets.
    - `saved_state()` / `build(config, state)`: the head's own JSON-able state (e.g. bucket
      borders) and the constructor from it; `initial_state(config, draw_targets)` computes
      that state before training from prior target samples.
    """

    @classmethod
    def build(cls, config: ModelConfig, state: dict[str, Any] | None) -> Head:
        """A head for `config` with saved `state` (None where the head needs none)."""
        raise NotImplementedError

    @classmethod
    def initial_state(cls, config: ModelConfig, draw_targets: Callable[[], torch.Tensor]) -> dict[str, Any] | None:
        """The state a fresh head is trained with; `draw_targets()` returns prior target samples."""
        return None

    def saved_state(self) -> dict[str, Any] | None:
        """The JSON-able state that `build` takes (kept in a checkpoint's `config.json`)."""
        return None

    def task_of_context(self, y_context: torch.Tensor, **options: Any) -> dict[str, Any]:
        """Checks context targets (`B x C`); returns the `task` keywords of the predictive."""
        if options:
            raise TypeError(f"this model's head takes no options, got {sorted(options)}")
        return {}

    def task_of_batch(self, batch: Batch) -> dict[str, Any]:
        """The `task` keywords of a training batch (from its `meta`)."""
        return {}

    def parameters_of(self, logits: torch.Tensor, **task: Any) -> torch.Tensor:
        """Predictive parameters (`... x P`) of `logits` (`... x n_outputs`)."""
        raise NotImplementedError

    def n_parameters(self, **task: Any) -> int:
        """`P`, the size of the last dimension of `parameters_of`."""
        raise NotImplementedError

    def distribution(self, params: torch.Tensor, **task: Any) -> Any:
        """The predictive distribution (batch shape `params.shape[:-1]`) of parameters `params`."""
        raise NotImplementedError

    def predictive(self, logits: torch.Tensor, **task: Any) -> Any:
        """The predictive distribution of `logits` (`... x n_outputs`)."""
        return self.distribution(self.parameters_of(logits, **task), **task)

    def loss(self, logits: torch.Tensor, batch: Batch) -> torch.Tensor:
        """Negative log-likelihood (`B x M`) of `batch.target_y` at the query rows.

        Query rows outside `batch.query_mask` get 0 (and no gradient).
        """
        target = batch.target_y[:, batch.n_context:]
        if batch.query_mask is not None:
            target = torch.where(batch.query_mask, target, target.new_zeros(()))
        nll = -self.predictive(logits, **self.task_of_batch(batch)).log_prob(target)
        if batch.query_mask is not None:
            nll = torch.where(batch.query_mask, nll, nll.new_zeros(()))
        return nll

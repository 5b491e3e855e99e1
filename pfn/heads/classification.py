"""Categorical head: classification over a dataset's own number of classes."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from pfn.heads.base import Head, register_head
from priors.batch import Batch

if TYPE_CHECKING:
    from pfn.config import ModelConfig


@register_head("classification")
class ClassificationHead(Head):
    """Categorical head over at most `max_classes` classes; a dataset with `k` classes uses the first `k` logits.

    Its `task` is `n_classes`: an int (prediction) or a `B` tensor (training batches, from
    `batch.meta["n_classes"]`).
    """

    def __init__(self, d_model: int, max_classes: int) -> None:
        super().__init__()
        self.max_classes = max_classes
        self.proj = nn.Linear(d_model, max_classes)

    @classmethod
    def build(cls, config: ModelConfig, state: dict[str, Any] | None) -> ClassificationHead:
        if state:
            raise ValueError(f"a classification head has no saved state, got {sorted(state)}")
        return cls(config.d_model, config.max_classes)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        """Class logits (`... x max_classes`) of states `h` (`... x D`)."""
        return self.proj(h)

    def task_of_context(self, y_context: torch.Tensor, n_classes: int | None = None) -> dict[str, Any]:
        """Checks that `y_context` (`B x C`) holds class indices; `n_classes` defaults to the largest + 1."""
        if (y_context != y_context.round()).any() or (y_context < 0).any():
            raise ValueError("a classifier's y_context must hold class indices 0, 1, ..., k - 1")
        largest = int(y_context.max())
        k = largest + 1 if n_classes is None else int(n_classes)
        if not largest < k <= self.max_classes or k < 2:
            raise ValueError(f"{k} classes given (labels up to {largest}) but this model supports 2 to "
                             f"{self.max_classes} classes")
        return {"n_classes": k}

    def task_of_batch(self, batch: Batch) -> dict[str, Any]:
        if "n_classes" not in batch.meta:
            raise KeyError("a classification batch needs meta['n_classes'] (a B tensor of class counts)")
        return {"n_classes": batch.meta["n_classes"]}

    def parameters_of(self, logits: torch.Tensor, n_classes: int | torch.Tensor) -> torch.Tensor:
        """Class log-probabilities: `... x n_classes` for an int, `B x M x max_classes` (−inf past a
        dataset's count) for a `B` tensor."""
        if isinstance(n_classes, int):
            return torch.log_softmax(logits[..., :n_classes].float(), dim=-1)
        counts = n_classes.to(logits.device).reshape(-1, *([1] * (logits.dim() - 1)))
        absent = torch.arange(self.max_classes, device=logits.device) >= counts
        return torch.log_softmax(logits.float().masked_fill(absent, float("-inf")), dim=-1)

    def n_parameters(self, n_classes: int | torch.Tensor) -> int:
        return n_classes if isinstance(n_classes, int) else self.max_classes

    def distribution(self, params: torch.Tensor, **task: Any) -> torch.distributions.Categorical:
        return torch.distributions.Categorical(logits=params, validate_args=False)

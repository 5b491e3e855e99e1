"""Riemann (bar) distribution head: regression with a piecewise-constant density."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from pfn.heads.base import Head, register_head
from pfn.riemann import RiemannDistribution, borders_from_samples

if TYPE_CHECKING:
    from pfn.config import ModelConfig


@register_head("bar")
class BarHead(Head):
    """Riemann (bar) distribution head with fixed bucket `borders` (`K + 1`, `K = config.n_buckets`)."""

    def __init__(self, d_model: int, borders: torch.Tensor) -> None:
        super().__init__()
        self.register_buffer("borders", torch.as_tensor(borders, dtype=torch.float32).clone())
        self.proj = nn.Linear(d_model, self.borders.numel() - 1)

    @classmethod
    def build(cls, config: ModelConfig, state: dict[str, Any] | None) -> BarHead:
        if state is None or "borders" not in state:
            raise ValueError("a bar head needs its bucket borders: head_state={'borders': ...} with "
                             f"{config.n_buckets + 1} increasing values")
        try:
            borders = torch.as_tensor(state["borders"], dtype=torch.float32)
        except (TypeError, ValueError, RuntimeError) as err:
            raise ValueError(f"bucket borders must be a list of numbers: {err}") from None
        if borders.dim() != 1 or borders.numel() != config.n_buckets + 1:
            raise ValueError(f"config.n_buckets={config.n_buckets} needs {config.n_buckets + 1} borders, "
                             f"got {tuple(borders.shape)}")
        if not (borders[1:] > borders[:-1]).all():
            raise ValueError("bucket borders must be strictly increasing")
        return cls(config.d_model, borders)

    @classmethod
    def initial_state(cls, config: ModelConfig, draw_targets: Callable[[], torch.Tensor]) -> dict[str, Any]:
        """Borders at evenly spaced quantiles of prior targets."""
        return {"borders": borders_from_samples(draw_targets(), config.n_buckets).tolist()}

    def saved_state(self) -> dict[str, Any]:
        return {"borders": self.borders.tolist()}

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        """Bucket logits (`... x K`) of states `h` (`... x D`)."""
        return self.proj(h)

    def parameters_of(self, logits: torch.Tensor, **task: Any) -> torch.Tensor:
        """Bucket log-probabilities (`... x K`, float32)."""
        return torch.log_softmax(logits.float(), dim=-1)

    def n_parameters(self, **task: Any) -> int:
        return self.borders.numel() - 1

    def distribution(self, params: torch.Tensor, **task: Any) -> RiemannDistribution:
        return RiemannDistribution(params, self.borders, normalized=True)

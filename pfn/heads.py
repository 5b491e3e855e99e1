"""Output heads: map transformer states to predictive distributions."""

from __future__ import annotations

import torch
from torch import nn

from pfn.riemann import RiemannDistribution


class BarHead(nn.Module):
    """Riemann (bar) distribution head with fixed bucket `borders` (`K + 1`)."""

    def __init__(self, d_model: int, borders: torch.Tensor) -> None:
        super().__init__()
        self.register_buffer("borders", borders.float().clone())
        self.proj = nn.Linear(d_model, borders.numel() - 1)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        """Bucket logits (`... x K`) of states `h` (`... x D`)."""
        return self.proj(h)

    def distribution(self, logits: torch.Tensor) -> RiemannDistribution:
        return RiemannDistribution(logits, self.borders)

    def nll(self, logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Negative log density of targets `y` (`...`) under `logits` (`... x K`); shape `...`."""
        return -self.distribution(logits.float()).log_prob(y.float())

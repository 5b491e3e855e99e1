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


class ClassificationHead(nn.Module):
    """Categorical head over at most `max_classes` classes; a dataset with `k` classes uses the first `k` logits."""

    def __init__(self, d_model: int, max_classes: int) -> None:
        super().__init__()
        self.max_classes = max_classes
        self.proj = nn.Linear(d_model, max_classes)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        """Class logits (`... x max_classes`) of states `h` (`... x D`)."""
        return self.proj(h)

    def log_probs(self, logits: torch.Tensor, n_classes: torch.Tensor | int) -> torch.Tensor:
        """Log-probabilities (`B x M x max_classes`, `-inf` past a dataset's class count) of logits
        `B x M x max_classes`; `n_classes` is an int or a `B` tensor."""
        n_classes = torch.as_tensor(n_classes, device=logits.device).reshape(-1, 1, 1)
        absent = torch.arange(self.max_classes, device=logits.device) >= n_classes
        return torch.log_softmax(logits.float().masked_fill(absent, float("-inf")), dim=-1)

    def nll(self, logits: torch.Tensor, y: torch.Tensor, n_classes: torch.Tensor | int) -> torch.Tensor:
        """Negative log-probability (`B x M`) of class indices `y` (`B x M`, floats) under `logits`."""
        return -self.log_probs(logits, n_classes).gather(-1, y.long().unsqueeze(-1)).squeeze(-1)

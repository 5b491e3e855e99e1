"""Shared fixtures. The suite runs on 2 CPU cores next to other work: one thread, tiny models."""

from __future__ import annotations

import pytest
import torch

from pfn.config import ModelConfig
from pfn.model import PFN

torch.set_num_threads(1)

TINY_MODEL = ModelConfig(d_model=32, n_layers=2, n_heads=2, d_ff=64, n_buckets=50, max_features=4)


def tiny_borders(n_buckets: int = TINY_MODEL.n_buckets) -> torch.Tensor:
    """`n_buckets + 1` increasing borders on [-3, 3]."""
    return torch.linspace(-3.0, 3.0, n_buckets + 1)


@pytest.fixture
def tiny_pfn() -> PFN:
    """An untrained tiny PFN with every parameter perturbed by N(0, 0.1^2) noise.

    Each layer's output projections are zero-initialised (the layer starts as the identity);
    the perturbation makes attention and MLPs actually act, so invariance tests are not
    trivially satisfied by an identity network.
    """
    torch.manual_seed(0)
    model = PFN(TINY_MODEL, tiny_borders())
    gen = torch.Generator().manual_seed(1234)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.1 * torch.randn(p.shape, generator=gen))
    return model.eval()

"""Shared fixtures. The suite runs on 2 CPU cores next to other work: one thread, tiny models."""

from __future__ import annotations

import os

import pytest
import torch
from hypothesis import settings

from pfn.config import ModelConfig
from pfn.model import PFN

torch.set_num_threads(1)

# Property tests draw the same examples on every run (CI must not pass or fail by chance);
# `HYPOTHESIS_PROFILE=explore pytest` draws fresh, and more, examples to hunt for new failures.
settings.register_profile("fixed", derandomize=True)
settings.register_profile("explore", derandomize=False, max_examples=500)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "fixed"))

TINY_MODEL = ModelConfig(d_model=32, n_layers=2, n_heads=2, d_ff=64, n_buckets=50, max_features=4)


@pytest.fixture
def tiny_model_config() -> ModelConfig:
    return TINY_MODEL


@pytest.fixture
def tiny_borders() -> torch.Tensor:
    """`n_buckets + 1` increasing borders on [-3, 3]."""
    return torch.linspace(-3.0, 3.0, TINY_MODEL.n_buckets + 1)


@pytest.fixture
def tiny_pfn(tiny_model_config: ModelConfig, tiny_borders: torch.Tensor) -> PFN:
    """An untrained tiny PFN with every parameter perturbed by N(0, 0.1^2) noise.

    Each layer's output projections are zero-initialised (the layer starts as the identity);
    the perturbation makes attention and MLPs actually act, so invariance tests are not
    trivially satisfied by an identity network.
    """
    torch.manual_seed(0)
    model = PFN(tiny_model_config, {"borders": tiny_borders})
    gen = torch.Generator().manual_seed(1234)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.1 * torch.randn(p.shape, generator=gen))
    return model.eval()


def _central_difference(f, x: torch.Tensor, eps: float) -> torch.Tensor:
    """The gradient of the scalar `f` at `x` (any shape) by central differences of step `eps`, shaped as `x`."""
    grad = torch.zeros_like(x).view(-1)
    with torch.no_grad():
        for i in range(x.numel()):
            step = torch.zeros(x.numel(), dtype=x.dtype)
            step[i] = eps
            grad[i] = (f(x + step.view_as(x)) - f(x - step.view_as(x))) / (2 * eps)
    return grad.view_as(x)


@pytest.fixture
def central_difference():
    """`central_difference(f, x, eps)`: the numerical gradient that autograd's is checked against."""
    return _central_difference

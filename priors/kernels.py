"""Stationary covariance functions on batched inputs."""

from __future__ import annotations

import math

import torch

KERNELS = ("rbf", "matern52")


def scaled_sq_dist(x: torch.Tensor, lengthscale: torch.Tensor) -> torch.Tensor:
    """Squared distances after dividing each feature by its lengthscale.

    Args:
        x: A `B x N x F` tensor.
        lengthscale: A `B x F` tensor.

    Returns:
        A `B x N x N` tensor of non-negative squared distances.
    """
    z = x / lengthscale.unsqueeze(-2)
    sq = (z * z).sum(-1)
    d2 = sq.unsqueeze(-1) + sq.unsqueeze(-2) - 2.0 * z @ z.transpose(-1, -2)
    return d2.clamp_min(0.0)


def rbf(d2: torch.Tensor) -> torch.Tensor:
    """Squared-exponential correlation `exp(-d2 / 2)` of squared distances `d2`."""
    return torch.exp(-0.5 * d2)


def matern52(d2: torch.Tensor) -> torch.Tensor:
    """Matern-5/2 correlation of squared distances `d2`."""
    r = torch.sqrt(d2 + 1e-30) * math.sqrt(5.0)
    return (1.0 + r + r * r / 3.0) * torch.exp(-r)


def correlation(d2: torch.Tensor, kernel_index: torch.Tensor) -> torch.Tensor:
    """Per-dataset correlation matrices.

    Args:
        d2: A `B x N x M` tensor of scaled squared distances.
        kernel_index: A `B` long tensor indexing `KERNELS`.

    Returns:
        A `B x N x M` tensor.
    """
    is_rbf = (kernel_index == KERNELS.index("rbf")).view(-1, 1, 1)
    return torch.where(is_rbf, rbf(d2), matern52(d2))

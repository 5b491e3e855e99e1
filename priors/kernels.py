"""Stationary covariance functions on batched inputs."""

from __future__ import annotations

import math

import torch

KERNELS = ("rbf", "matern52", "matern32", "matern12")  # append only: checkpoints and meta store indices


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


def matern32(d2: torch.Tensor) -> torch.Tensor:
    """Matern-3/2 correlation of squared distances `d2`."""
    r = torch.sqrt(d2 + 1e-30) * math.sqrt(3.0)
    return (1.0 + r) * torch.exp(-r)


def matern12(d2: torch.Tensor) -> torch.Tensor:
    """Matern-1/2 (exponential) correlation of squared distances `d2`: rough, nowhere differentiable paths."""
    return torch.exp(-torch.sqrt(d2 + 1e-30))


KERNEL_FUNCTIONS = (rbf, matern52, matern32, matern12)  # in the order of KERNELS


def correlation(d2: torch.Tensor, kernel_index: torch.Tensor) -> torch.Tensor:
    """Per-dataset correlation matrices.

    Args:
        d2: A `B x N x M` tensor of scaled squared distances.
        kernel_index: A `B` long tensor indexing `KERNELS`.

    Returns:
        A `B x N x M` tensor; each kernel is evaluated only on the datasets that use it.
    """
    out = torch.empty_like(d2)
    for index, kernel in enumerate(KERNEL_FUNCTIONS):
        rows = kernel_index == index
        if rows.any():
            out[rows] = kernel(d2[rows])
    return out

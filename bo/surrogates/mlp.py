"""Stacks of small tanh MLPs evaluated together: the networks of the ensemble and HMC surrogates.

A stack holds `S` networks of one architecture as batched weights, layer by layer: `W` of
shape `S x fan_in x fan_out` and `b` of shape `S x 1 x fan_out`; one batched matrix product per
layer evaluates every network at every point, and gradients reach the inputs.
"""

from __future__ import annotations

import torch

Layers = list[tuple[torch.Tensor, torch.Tensor]]


def scale_inputs(X: torch.Tensor) -> torch.Tensor:
    """Unit-cube points to `[-1, 1]` (any shape), the networks' inputs."""
    return 2.0 * X - 1.0


def stacked_mlp(X: torch.Tensor, layers: Layers) -> torch.Tensor:
    """Every network of a stack at every point, `S x n`.

    Args:
        X: An `n x d` tensor of network inputs (already scaled).
        layers: Per layer `(W, b)`: `S x fan_in x fan_out` and `S x 1 x fan_out`; tanh between
            layers, none after the last (whose `fan_out` is 1).
    """
    h = X.unsqueeze(0)
    for i, (W, b) in enumerate(layers):
        h = torch.baddbmm(b, h.expand(W.shape[0], -1, -1), W)
        if i < len(layers) - 1:
            h = torch.tanh(h)
    return h.squeeze(-1)


def predict_stack(X: torch.Tensor, layers: Layers) -> torch.Tensor:
    """Every network at `X`, a `batch_shape x d` tensor of unit-cube points: `S x batch_shape`."""
    flat = scale_inputs(X.reshape(-1, X.shape[-1]).to(layers[0][0].dtype))
    return stacked_mlp(flat, layers).reshape(layers[0][0].shape[0], *X.shape[:-1])

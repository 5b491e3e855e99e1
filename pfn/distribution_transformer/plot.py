"""Plot helpers shared by `benchmarks/dist.py` and `pfn demo`: 2-sigma ellipses of 2-D mixture components."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch


def ellipse(mean: np.ndarray, cov: np.ndarray, scale: float = 2.0) -> np.ndarray:
    """Points (`100 x 2`) of the `scale`-sigma ellipse of N(mean, cov) (`mean`: `2`, `cov`: `2 x 2`)."""
    angles = np.linspace(0, 2 * np.pi, 100)
    return mean + scale * np.stack([np.cos(angles), np.sin(angles)], -1) @ np.linalg.cholesky(cov).T


def draw_ellipses(ax: Any, weights: torch.Tensor, means: torch.Tensor, covs: torch.Tensor, color: str,
                  style: str = "-", min_weight: float = 1e-3, lw: float | None = None) -> None:
    """Draws the 2-sigma ellipse of every component of one 2-D mixture with weight above `min_weight`.

    Args:
        ax: A matplotlib axis.
        weights: `K`. means: `K x 2`. covs: `K x 2 x 2`.
        color, style: Matplotlib colour and line style.
        min_weight: Components at or below it are left out.
        lw: Line width; None draws each component with `0.5 + 2.5 * weight`.
    """
    for w, m, s in zip(weights.tolist(), means.double().numpy(), covs.double().numpy(), strict=True):
        if w > min_weight:
            ax.plot(*ellipse(m, s).T, style, color=color, lw=0.5 + 2.5 * w if lw is None else lw)


__all__ = ["draw_ellipses", "ellipse"]

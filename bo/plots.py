"""Plots of a run: convergence, and the surrogate's predictions against the observed values.

Both return a matplotlib `Figure` (made without pyplot, so no display is needed) or draw on the
given `ax`.
"""

from __future__ import annotations

import copy
from typing import TYPE_CHECKING

import numpy as np
import torch
from matplotlib.figure import Figure

if TYPE_CHECKING:
    import pandas as pd
    from matplotlib.axes import Axes

    from bo.optimizer import Optimizer


def _axes(ax: Axes | None) -> tuple[Figure, Axes]:
    if ax is not None:
        return ax.figure, ax
    fig = Figure(figsize=(5, 4), layout="constrained")
    return fig, fig.add_subplot()


def plot_convergence(history: pd.DataFrame, direction: str = "minimize", ax: Axes | None = None) -> Figure:
    """Each complete trial's value and the best so far against the trial number.

    Args:
        history: A run's history DataFrame (`Optimizer.history()`, `Result.history`).
        direction: "minimize" or "maximize".
        ax: A matplotlib axes to draw on, or None for a new figure.
    """
    fig, ax = _axes(ax)
    complete = history[history["state"] == "complete"]
    values = complete["value"].to_numpy(dtype=float)
    best = np.minimum.accumulate(values) if direction == "minimize" else np.maximum.accumulate(values)
    ax.scatter(complete["number"], values, s=12, alpha=0.5, label="trial")
    ax.step(complete["number"], best, where="post", color="C1", label="best so far")
    failed = history[history["state"] == "failed"]["number"]
    if len(failed):  # drawn at the worst value
        worst = 0.0 if not len(values) else values.max() if direction == "minimize" else values.min()
        ax.scatter(failed, np.full(len(failed), worst), marker="x", color="C3", label="failed (at the worst value)")
    ax.set_xlabel("trial")
    ax.set_ylabel("value")
    ax.legend()
    return fig


def predictions(optimizer: Optimizer, method: str = "loo") -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The surrogate's predictions of each complete trial, in the objective's units.

    Args:
        optimizer: An optimiser with at least two complete trials.
        method: "loo": each trial predicted by the surrogate fitted to all the others
            (leave-one-out, one fit per trial); "in_sample": one fit to all trials.

    Returns:
        Observed values, predicted medians, and the predicted 10% and 90% quantiles
        (a `2 x n` array of distances below and above the median, for error bars).
    """
    if method not in ("loo", "in_sample"):
        raise ValueError(f"method must be 'loo' or 'in_sample', got {method!r}")
    X, y, complete = optimizer.training_data()
    if int(complete.sum()) < 2:
        raise ValueError("predicted against observed needs at least two complete trials")
    surrogate = copy.deepcopy(optimizer.surrogate)  # the optimiser's own fit stays as it is
    rows = torch.nonzero(complete).squeeze(-1).tolist()

    def quantiles(keep: torch.Tensor, at: list[int]) -> torch.Tensor:
        surrogate.fit(X[keep], y[keep])
        with torch.no_grad():
            pred = surrogate.predict(X[at])
            return torch.stack([pred.quantile(q) for q in (0.1, 0.5, 0.9)], -1).double()

    everything = torch.ones(len(y), dtype=torch.bool)
    if method == "in_sample":
        q = quantiles(everything, rows)
    else:
        q = torch.cat([quantiles(torch.arange(len(y)) != i, [i]) for i in rows])
    sign = 1.0 if optimizer.direction == "minimize" else -1.0
    low, mid, high = (sign * q[:, j].numpy() for j in range(3))
    return sign * y[rows].numpy(), mid, np.abs(np.stack([mid - low, high - mid]))


def plot_predictions(optimizer: Optimizer, method: str = "loo", ax: Axes | None = None) -> Figure:
    """Predicted (median, 10-90% interval) against observed values of the complete trials (see `predictions`)."""
    observed, mid, err = predictions(optimizer, method)
    fig, ax = _axes(ax)
    ax.errorbar(observed, mid, yerr=err, fmt="o", ms=3, alpha=0.7, elinewidth=0.8)
    lo, hi = min(observed.min(), (mid - err[0]).min()), max(observed.max(), (mid + err[1]).max())
    ax.plot([lo, hi], [lo, hi], color="grey", lw=0.8, ls="--")
    ax.set_xlabel("observed")
    ax.set_ylabel("predicted (leave-one-out)" if method == "loo" else "predicted (in sample)")
    return fig

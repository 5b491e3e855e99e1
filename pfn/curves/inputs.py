"""Checks and conversion of user learning curves to one padded `curves x epochs` matrix."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch


def check_horizon(horizon: Any, max_horizon: int) -> int:
    """`horizon` as an int in `[1, max_horizon]`, or a `ValueError` that says what the model supports."""
    if isinstance(horizon, bool) or not isinstance(horizon, (int, np.integer)):
        raise TypeError(f"horizon must be an integer number of epochs, got {horizon!r}")
    if not 1 <= int(horizon) <= max_horizon:
        raise ValueError(f"horizon={int(horizon)} epochs is outside what this model was trained for (1 to "
                         f"{max_horizon} epochs); use a model trained with n_points >= {int(horizon)}, or "
                         f"subsample the epochs (e.g. every other epoch) to at most {max_horizon}")
    return int(horizon)


def _as_rows(curves: Any) -> list[np.ndarray]:
    """The curves as a list of 1-D float64 arrays (NaN kept)."""
    if isinstance(curves, torch.Tensor):
        curves = curves.detach().cpu().numpy()
    if isinstance(curves, np.ndarray):
        if curves.ndim != 2:
            raise ValueError(f"curves given as one array must be 2-D (curves x epochs, NaN for unseen epochs), got "
                             f"shape {curves.shape}; for a single curve pass [curve]")
        return [np.asarray(row, dtype=np.float64) for row in curves]
    if not isinstance(curves, Sequence) or isinstance(curves, str):
        raise TypeError(f"curves must be a list of 1-D arrays or a 2-D array, got {type(curves).__name__}")
    rows = []
    for i, curve in enumerate(curves):
        if isinstance(curve, torch.Tensor):
            curve = curve.detach().cpu().numpy()
        try:
            row = np.asarray(curve, dtype=np.float64)
        except (TypeError, ValueError) as err:
            raise TypeError(f"curve {i} must be a 1-D array of numbers: {err}") from None
        if row.ndim != 1:
            raise ValueError(f"curve {i} must be 1-D (one value per epoch), got shape {row.shape}; a list of "
                             "numbers is read as a list of curves, so pass [curve] for a single curve")
        rows.append(row)
    return rows


def curve_matrix(curves: Any, horizon: int) -> torch.Tensor:
    """Stacks learning curves into one `B x W` float64 tensor, NaN where an epoch is unseen.

    Args:
        curves: A list of `B` 1-D arrays (value `j` is epoch `j + 1`; lengths may differ), or a
            `B x L` array with NaN for unseen epochs.
        horizon: The last epoch predicted.

    Returns:
        `B x W` values, `W` the last observed epoch over all curves. NaN marks an unseen
        epoch: trailing NaN (and shorter rows) are epochs not reached yet; NaN before a
        curve's last value is a missing epoch, left out of that curve's context.

    Raises:
        ValueError: for no curves, an empty (or all-NaN) curve, an infinite value, or a
            curve with values beyond `horizon`.
    """
    rows = _as_rows(curves)
    if not rows:
        raise ValueError("curves is empty: give at least one learning curve")
    lengths = []
    for i, row in enumerate(rows):
        seen = np.flatnonzero(~np.isnan(row))
        if seen.size == 0:
            raise ValueError(f"curve {i} is empty (no observed epoch); every curve needs at least its first value")
        if np.isinf(row).any():
            raise ValueError(f"curve {i} has an infinite value at epoch {int(np.flatnonzero(np.isinf(row))[0]) + 1}; "
                             "replace diverged values by NaN (missing) or stop such runs")
        if seen[-1] + 1 > horizon:
            raise ValueError(f"curve {i} has a value at epoch {seen[-1] + 1} but the horizon is {horizon}; the "
                             "horizon (the epoch to predict to) must be at least each curve's length")
        lengths.append(int(seen[-1]) + 1)
    out = torch.full((len(rows), max(lengths)), torch.nan, dtype=torch.float64)
    for i, (row, n) in enumerate(zip(rows, lengths, strict=True)):
        out[i, :n] = torch.from_numpy(row[:n])
    return out


__all__ = ["check_horizon", "curve_matrix"]

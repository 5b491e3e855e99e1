"""Checks and conversions of user inputs to `predict`, with messages that say what to do."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch


def as_float_tensor(name: str, value: Any, device: torch.device, allow_nan: bool = False) -> torch.Tensor:
    """Converts array-likes to a float32 tensor, rejecting non-numeric data, infinities and
    (unless `allow_nan`, where NaN marks a missing value) NaN."""
    if isinstance(value, torch.Tensor):
        t = value
    else:
        try:
            t = torch.as_tensor(np.asarray(value, dtype=np.float64))
        except (TypeError, ValueError) as err:
            raise TypeError(f"{name} must be numeric (array-like of floats): {err}") from None
    if not (t.is_floating_point() or t.dtype in (torch.int32, torch.int64, torch.int16, torch.int8, torch.uint8)):
        raise TypeError(f"{name} must be a float or integer tensor, got dtype {t.dtype}")
    t = t.to(device=device, dtype=torch.float32)
    if torch.isinf(t).any():
        raise ValueError(f"{name} contains {int(torch.isinf(t).sum())} infinite values; drop or clip them first")
    if not allow_nan and torch.isnan(t).any():
        raise ValueError(f"{name} contains {int(torch.isnan(t).sum())} NaN values; drop or impute them first "
                         "(models with feature_encoding='per_feature' read NaN as missing)")
    return t


def check_context(
    x_context: Any, y_context: Any, max_features: int, device: torch.device, allow_nan: bool = False
) -> tuple[torch.Tensor, torch.Tensor, bool]:
    """Validates and batches a context.

    Accepts unbatched `N x F` and `N` or batched `B x N x F` and `B x N` (an unbatched 1-D
    `x_context` is read as one feature).

    Returns:
        `x_context` (`B x N x F`), `y_context` (`B x N`) and whether the input was unbatched.
    """
    xc = as_float_tensor("x_context", x_context, device, allow_nan)
    yc = as_float_tensor("y_context", y_context, device)
    unbatched = yc.dim() == 1
    if unbatched:
        xc = (xc.unsqueeze(-1) if xc.dim() == 1 else xc).unsqueeze(0)
        yc = yc.unsqueeze(0)
    if yc.dim() != 2 or xc.dim() != 3:
        raise ValueError("expected x_context (N, F) with y_context (N,), or batched (B, N, F) with (B, N); "
                         f"got {tuple(xc.shape)} and {tuple(yc.shape)}")
    if xc.shape[:2] != yc.shape:
        raise ValueError(f"x_context has shape {tuple(xc.shape)} but y_context {tuple(yc.shape)}; "
                         "they need the same batch size and number of rows")
    if xc.shape[1] == 0:
        raise ValueError("the context is empty: give at least one (x, y) pair")
    if not 1 <= xc.shape[2] <= max_features:
        raise ValueError(
            f"x_context has {xc.shape[2]} features but this model supports 1 to {max_features}; "
            "reduce the inputs (e.g. select features) or use a model trained for more")
    return xc, yc, unbatched


def check_query(x_query: Any, n_features: int, batch_size: int, unbatched: bool, device: torch.device,
                allow_nan: bool = False) -> torch.Tensor:
    """Validates queries against a checked context; returns `x_query` as `B x M x F`."""
    xq = as_float_tensor("x_query", x_query, device, allow_nan)
    if unbatched:
        xq = (xq.unsqueeze(-1) if xq.dim() == 1 and n_features == 1 else xq).unsqueeze(0)
    expected = f"({'' if unbatched else f'{batch_size}, '}M, {n_features})"
    if xq.dim() != 3 or xq.shape[0] != batch_size or xq.shape[-1] != n_features:
        raise ValueError(f"x_query must have shape {expected} to match the context, got "
                         f"{tuple(xq.shape[1:] if unbatched else xq.shape)}")
    return xq

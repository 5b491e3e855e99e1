"""Checks and conversions of user inputs to `predict`, with messages that say what to do."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch

from pfn.layouts import layout_names

_INTEGER_DTYPES = (torch.int8, torch.int16, torch.int32, torch.int64, torch.uint8)


def as_float_tensor(name: str, value: Any, device: torch.device, allow_nan: bool = False,
                    keep: torch.Tensor | None = None) -> torch.Tensor:
    """Converts array-likes to a float tensor, rejecting non-numeric data, infinities and
    (unless `allow_nan`, where NaN marks a missing value) NaN.

    `keep` (a bool tensor matching the leading dimensions) marks the entries that count;
    the others (padding) are set to 0 before the checks.

    float64 and integer inputs (numpy arrays included) become float64, so that values far
    from 0 keep their precision until the model standardises them; other floats become
    float32. A tensor that requires grad stays attached to its graph.
    """
    if isinstance(value, torch.Tensor):
        t = value
    else:
        try:
            t = torch.as_tensor(np.asarray(value, dtype=np.float64))
        except (TypeError, ValueError) as err:
            raise TypeError(f"{name} must be numeric (array-like of floats): {err}") from None
    if not (t.is_floating_point() or t.dtype in _INTEGER_DTYPES):
        raise TypeError(f"{name} must be a float or integer tensor, got dtype {t.dtype}")
    dtype = torch.float64 if t.dtype == torch.float64 or not t.is_floating_point() else torch.float32
    t = t.to(device=device, dtype=dtype)
    if keep is not None and t.shape[:keep.dim()] == keep.shape:
        t = torch.where(keep.reshape(*keep.shape, *([1] * (t.dim() - keep.dim()))), t, t.new_zeros(()))
    if torch.isinf(t).any():
        raise ValueError(f"{name} contains {int(torch.isinf(t).sum())} infinite values; drop or clip them first")
    if not allow_nan and torch.isnan(t).any():
        raise ValueError(f"{name} contains {int(torch.isnan(t).sum())} NaN values; drop or impute them first "
                         f"(models with feature_encoding in {layout_names(reads_missing=True)} read NaN as missing)")
    return t


def _as_mask(context_mask: Any, device: torch.device) -> torch.Tensor:
    mask = torch.as_tensor(context_mask, device=device)
    if mask.dtype != torch.bool:
        raise TypeError(f"context_mask must be boolean (True for a real context row), got {mask.dtype}")
    return mask


def check_context(
    x_context: Any, y_context: Any, max_features: int, device: torch.device, allow_nan: bool = False,
    context_mask: Any = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None, bool]:
    """Validates and batches a context.

    Accepts unbatched `N x F` and `N` or batched `B x N x F` and `B x N` (an unbatched 1-D
    `x_context` is read as one feature). `context_mask` (None, `N` or `B x N` bool) marks the
    real rows; padded rows may hold anything (NaN included) and are set to 0.

    Returns:
        `x_context` (`B x N x F`), `y_context` (`B x N`), the context mask (`B x N` or None)
        and whether the input was unbatched.
    """
    mask = None if context_mask is None else _as_mask(context_mask, device)
    xc = as_float_tensor("x_context", x_context, device, allow_nan, keep=mask)
    yc = as_float_tensor("y_context", y_context, device, keep=mask)
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
    if mask is not None:
        mask = mask.unsqueeze(0) if unbatched else mask
        if mask.shape != yc.shape:
            raise ValueError(f"context_mask must have shape {tuple(yc.shape[1:] if unbatched else yc.shape)} "
                             f"(one flag per context row), got {tuple(mask.shape[1:] if unbatched else mask.shape)}")
        if not mask.any(-1).all():
            raise ValueError("context_mask leaves a dataset without any context row; give at least one (x, y) "
                             "pair each")
    return xc, yc, mask, unbatched


def check_query(x_query: Any, n_features: int, batch_size: int, unbatched: bool, device: torch.device,
                allow_nan: bool = False) -> tuple[torch.Tensor, torch.Size]:
    """Validates queries against a checked context.

    An unbatched context takes `M x F` queries (`M` when `F == 1`) or any `batch x M x F`
    (BoTorch's `batch x q x d`), all decoded against the one shared context; a batched context
    of `B` datasets takes `B x M x F`.

    Returns:
        `x_query` as `B x M' x F` (the leading dimensions of an unbatched context's queries
        folded into `M'`), and the batch shape of the predictive (`M`, `batch x M` or `B x M`).
    """
    xq = as_float_tensor("x_query", x_query, device, allow_nan)
    if unbatched:
        if xq.dim() == 1 and n_features == 1:
            xq = xq.unsqueeze(-1)
        if xq.dim() < 2 or xq.shape[-1] != n_features:
            raise ValueError(f"x_query must have shape (M, {n_features}) or (batch, ..., M, {n_features}) to match "
                             f"the context, got {tuple(xq.shape)}")
        shape = xq.shape[:-1]
        return xq.reshape(1, math.prod(shape), n_features), shape
    if xq.dim() != 3 or xq.shape[0] != batch_size or xq.shape[-1] != n_features:
        raise ValueError(f"x_query must have shape ({batch_size}, M, {n_features}) to match the context, got "
                         f"{tuple(xq.shape)}")
    return xq, xq.shape[:-1]

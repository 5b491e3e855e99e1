"""What the token layouts share: their declared properties, the context cache, padding and context scaling.

A token layout is the transformer body of a `PFN` (`ModelConfig.feature_encoding` names it; the
registry is `pfn.layouts`): row tokens (`pfn.transformer`), standardised row tokens
(`pfn.row_table_transformer`) and per-feature tokens (`pfn.feature_transformer`). Each declares
its `LayoutProperties` on its class and builds on the helpers here:

- a context mask (`B x C` bool, True for a real row) becomes an attention mask (`attention_mask`)
  and zeroes the padded rows' values (`zero_padding`), so padding never changes a prediction;
- the layouts that read missing values standardise every feature by the context rows
  (`context_statistics`, a `FeatureScaling`): NaN and padded rows are ignored, the statistics
  are computed in float64 after dividing by the feature's largest magnitude, so that scale is
  treated alike at every magnitude (1e-9 or 1e20, or a 1e9 offset with unit spread), and
  standardised values are clipped to `[-CLIP, CLIP]`. A feature constant over the context
  (relative spread below `CONSTANT_SPREAD`) is measured relative to its value
  (`x / |c| - sign(c)`), or raw where that value is 0;
- `encode_context` returns a `KVCache` that `decode` reuses for any number of queries.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

CLIP = 10.0
CONSTANT_SPREAD = 1e-13


@dataclass(frozen=True)
class LayoutProperties:
    """What a token layout does with its inputs, declared as `properties` on its class.

    `reads_missing`: NaN in `x` is a missing value that the layout reads (the tables' layouts:
    `pfn.tabular` takes models with one of them); otherwise NaN inputs are refused.
    `feature_order_invariant`: the network is exactly equivariant to the order of the features
    (one token per cell); otherwise the feature order is one more thing that makes ensemble
    members differ.
    """

    reads_missing: bool
    feature_order_invariant: bool


@dataclass
class FeatureScaling:
    """Per-feature standardisation of a context: `z = (x / magnitude - mean) / std`.

    All three are `B x F` float64 tensors: `magnitude` the largest absolute observed context
    value (1 where none or all are 0), `mean` and `std` the context's statistics in units of
    `magnitude`.
    """

    magnitude: torch.Tensor
    mean: torch.Tensor
    std: torch.Tensor

    def standardise(self, x: torch.Tensor) -> torch.Tensor:
        """Standardised, clipped `x` (`B x N x F`) in float64; NaN stays NaN."""
        z = (x.double() / self.magnitude.unsqueeze(1) - self.mean.unsqueeze(1)) / self.std.unsqueeze(1)
        return z.clamp(-CLIP, CLIP)


@dataclass
class KVCache:
    """What `decode` needs of an encoded context.

    `kv`: per layer, the keys and values of the context, each `B x heads x C x d_head` for row
    tokens and `(B * T) x heads x C x d_head` for `T` tokens per row; `mask`: the `B x C` context
    mask, or None for no padding; `scaling`: the context's per-feature standardisation, which
    `decode` applies to the queries (None for a layout that does not standardise).
    """

    kv: list[tuple[torch.Tensor, torch.Tensor]]
    mask: torch.Tensor | None = None
    scaling: FeatureScaling | None = None


def attention_mask(context_mask: torch.Tensor | None, repeat: int = 1) -> torch.Tensor | None:
    """The boolean attention mask (`(B * repeat) x 1 x 1 x C`) of a `B x C` context mask; None stays None.

    `repeat` serves layouts that fold `repeat` sequences per dataset into the batch, as
    `(b r)` (dataset-major).
    """
    if context_mask is None:
        return None
    b, c = context_mask.shape
    return context_mask[:, None, None, None, :].expand(b, repeat, 1, 1, c).reshape(b * repeat, 1, 1, c)


def zero_padding(values: torch.Tensor, context_mask: torch.Tensor | None) -> torch.Tensor:
    """`values` (`B x C x ...`) with the padded rows (`context_mask` False) set to 0."""
    if context_mask is None:
        return values
    mask = context_mask.reshape(*context_mask.shape, *([1] * (values.dim() - 2)))
    return torch.where(mask, values, values.new_zeros(()))


def context_statistics(x_context: torch.Tensor, context_mask: torch.Tensor | None = None) -> FeatureScaling:
    """NaN-ignoring standardisation of the rows of `x_context` (`B x C x F`), padded rows excluded.

    `context_mask` is None or `B x C` bool (True: a real row). A feature with no observed
    value gets mean 0 and std 1; a constant one gets std 1 (see the module docstring).
    """
    x = x_context.detach().double()
    observed = ~torch.isnan(x)
    if context_mask is not None:
        observed &= context_mask.unsqueeze(-1)
    magnitude = torch.where(observed, x.abs(), 0.0).amax(1)
    magnitude = torch.where(magnitude > 0, magnitude, torch.ones_like(magnitude))
    scaled = torch.where(observed, x / magnitude.unsqueeze(1), 0.0)
    count = observed.sum(1)
    mean = scaled.sum(1) / count.clamp_min(1)
    var = (torch.where(observed, scaled - mean.unsqueeze(1), 0.0) ** 2).sum(1) / (count - 1).clamp_min(1)
    std = var.sqrt()
    return FeatureScaling(magnitude, mean, torch.where(std > CONSTANT_SPREAD, std, torch.ones_like(std)))

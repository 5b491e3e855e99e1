"""Row-token transformer for tables (`ModelConfig.feature_encoding="pad_standardised"`).

The row-token model of `pfn.transformer` (one token per row, features zero-padded to
`max_features` and rescaled by `sqrt(max_features / n_features)`), with the input handling
of the per-feature model (`pfn.feature_transformer`): every feature is standardised by the
mean and standard deviation of the context rows (`pfn.tokens.context_statistics`: NaN and
padded rows ignored, float64, scale free, clipped to `[-CLIP, CLIP]`), and a NaN cell, read as
missing, becomes 0 (the context mean). Like the row-token model it reads features by position,
so their order matters. One token per row instead of one per cell makes a training step on a
table of `F` features about `F` times cheaper, which on a CPU buys many more pretraining tables
for the same time (`benchmarks/results/tabular_scaling.md`).
"""

from __future__ import annotations

from typing import ClassVar

import torch

from pfn.tokens import FeatureScaling, KVCache, LayoutProperties, context_statistics
from pfn.transformer import PFNTransformer


def standardised(x: torch.Tensor, scaling: FeatureScaling) -> torch.Tensor:
    """`x` (`B x N x F`) standardised by `scaling`, NaN (missing) as 0; float64."""
    return torch.nan_to_num(scaling.standardise(x), nan=0.0)


class StandardisedRowTransformer(PFNTransformer):
    """`PFNTransformer` on inputs standardised by their context rows (see the module docstring).

    Shapes as in `PFNTransformer`: `x` is `B x N x F` (NaN marks a missing value),
    `y_context` is `B x C`, `context_mask` None or `B x C` bool.
    """

    properties: ClassVar[LayoutProperties] = LayoutProperties(reads_missing=True, feature_order_invariant=False)

    def forward(self, x: torch.Tensor, y_context: torch.Tensor,
                context_mask: torch.Tensor | None = None) -> torch.Tensor:
        """Hidden states of the queries `x[:, C:]` (`B x (N - C) x D`), `C = y_context.shape[1]`."""
        scaling = context_statistics(x[:, :y_context.shape[1]], context_mask)
        return super().forward(standardised(x, scaling), y_context, context_mask)

    def encode_context(self, x_context: torch.Tensor, y_context: torch.Tensor,
                       context_mask: torch.Tensor | None = None) -> KVCache:
        """The KV cache of the standardised context (`B x C x F`, `B x C`), with its standardisation."""
        scaling = context_statistics(x_context, context_mask)
        cache = super().encode_context(standardised(x_context, scaling), y_context, context_mask)
        return KVCache(cache.kv, cache.mask, scaling)

    def decode(self, cache: KVCache, x_query: torch.Tensor) -> torch.Tensor:
        """Hidden states (`B x M x D`) of queries `x_query` (`B x M x F`), standardised like the context."""
        if cache.scaling is None:
            raise TypeError("decode needs the cache of this model's encode_context")
        return super().decode(cache, standardised(x_query, cache.scaling))

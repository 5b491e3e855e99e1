"""The PFN transformer (`ModelConfig.feature_encoding="pad"`): context rows are a set, queries attend to the
context only.

Every layer computes keys and values from the context rows alone; all rows (context and
queries) attend to them. Hence context rows see each other (no positional encoding, so
the output is invariant to their order), and a query never sees another query. The
per-layer keys and values of the context are the KV cache: compute them once with
`encode_context`, then `decode` any number of queries.

Datasets of different context sizes share a batch through a context mask (`B x C`, True
for a real row): padded rows are zeroed before embedding and masked out of every
attention, so their values never change a prediction.

Features are zero-padded to `max_features` and rescaled by `sqrt(max_features / n_features)`,
one token per row: the network reads features by position, and NaN inputs are refused.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from pfn.attention import ContextAttentionLayer
from pfn.tokens import KVCache, LayoutProperties, attention_mask, zero_padding

if TYPE_CHECKING:
    from pfn.config import ModelConfig


class PFNTransformer(nn.Module):
    """Maps context `(x, y)` and query `x` to hidden states of the queries.

    Shapes: `x` is `B x N x F` with `F <= cfg.max_features`; `y_context` is `B x C`;
    `context_mask` is None or `B x C` bool (True: a real context row).
    """

    properties: ClassVar[LayoutProperties] = LayoutProperties(reads_missing=False, feature_order_invariant=False)

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.x_encoder = nn.Linear(cfg.max_features, cfg.d_model)
        self.y_encoder = nn.Linear(1, cfg.d_model)  # class indices enter as floats
        self.layers = nn.ModuleList(ContextAttentionLayer(cfg) for _ in range(cfg.n_layers))
        self.norm_out = nn.LayerNorm(cfg.d_model)

    def embed_x(self, x: torch.Tensor) -> torch.Tensor:
        """Zero-pads `x` (`B x N x F`) to `max_features`, rescales, embeds; returns `B x N x D`."""
        n_features = x.shape[-1]
        if not 1 <= n_features <= self.cfg.max_features:
            raise ValueError(f"x has {n_features} features but this model takes 1 to {self.cfg.max_features}")
        x = x.to(self.x_encoder.weight.dtype)
        x = F.pad(x, (0, self.cfg.max_features - n_features)) * math.sqrt(self.cfg.max_features / n_features)
        return self.x_encoder(x)

    def embed_context(self, x_context: torch.Tensor, y_context: torch.Tensor,
                      context_mask: torch.Tensor | None) -> torch.Tensor:
        x_context, y_context = zero_padding(x_context, context_mask), zero_padding(y_context, context_mask)
        return self.embed_x(x_context) + self.y_encoder(y_context.unsqueeze(-1).to(self.y_encoder.weight.dtype))

    def forward(self, x: torch.Tensor, y_context: torch.Tensor,
                context_mask: torch.Tensor | None = None) -> torch.Tensor:
        """Hidden states of the queries `x[:, C:]` (`B x (N - C) x D`), `C = y_context.shape[1]`."""
        c = y_context.shape[1]
        h = torch.cat([self.embed_context(x[:, :c], y_context, context_mask), self.embed_x(x[:, c:])], dim=1)
        mask = attention_mask(context_mask)
        for layer in self.layers:
            h = layer(h, c, mask)
        return self.norm_out(h[:, c:])

    def encode_context(self, x_context: torch.Tensor, y_context: torch.Tensor,
                       context_mask: torch.Tensor | None = None) -> KVCache:
        """Per-layer keys and values of the context (`B x C x F`, `B x C`): the KV cache."""
        h = self.embed_context(x_context, y_context, context_mask)
        mask = attention_mask(context_mask)
        kv = []
        for i, layer in enumerate(self.layers):
            kv.append(layer.context_kv(h))
            if i + 1 < len(self.layers):  # the last layer's context states are not needed
                h = layer.attend(h, *kv[-1], mask)
        return KVCache(kv, context_mask)

    def decode(self, cache: KVCache, x_query: torch.Tensor) -> torch.Tensor:
        """Hidden states (`B x M x D`) of queries `x_query` (`B x M x F`) given a KV cache."""
        h = self.embed_x(x_query)
        mask = attention_mask(cache.mask)
        for layer, (k, v) in zip(self.layers, cache.kv, strict=True):
            h = layer.attend(h, k, v, mask)
        return self.norm_out(h)

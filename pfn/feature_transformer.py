"""Per-feature-token transformer for tables (`ModelConfig.feature_encoding="per_feature"`).

Every cell of the table is a token, and every row gets one more token for its target (the
context row's label, or a learned "unknown" vector for a query row). Each layer first lets
the tokens of a row attend to each other (across features), then lets every token attend
to the tokens of the same column in the context rows (across rows, keys and values from the
context only, exactly as in `pfn.transformer`). Hence one network serves any number of
features, is equivariant to their order, and keeps the rules of the row-token model: the
context is a set, a query never sees another query, and the context's per-layer keys and
values (plus its feature statistics) are a cache that `decode` reuses for any number of
queries.

Inputs are standardised per feature by the context rows (`pfn.tokens.context_statistics`:
NaN and padded rows ignored, float64, scale free, clipped). A NaN cell is read as missing: its
value becomes 0 and a missing-indicator input of its embedding is set.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

import torch
from einops import rearrange
from torch import nn

from pfn.attention import ContextAttentionLayer, attention
from pfn.tokens import FeatureScaling, KVCache, LayoutProperties, attention_mask, context_statistics, zero_padding

if TYPE_CHECKING:
    from pfn.config import ModelConfig


class FeatureAttention(nn.Module):
    """Pre-norm self-attention among the tokens of each row; the output projection starts at zero."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.n_heads = cfg.n_heads
        self.norm = nn.LayerNorm(cfg.d_model)
        self.to_qkv = nn.Linear(cfg.d_model, 3 * cfg.d_model)
        self.out = nn.Linear(cfg.d_model, cfg.d_model)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        """Updates `h` (`R x T x D`: R rows of T tokens); returns `R x T x D`."""
        q, k, v = rearrange(self.to_qkv(self.norm(h)), "r t (three h d) -> three r h t d", three=3, h=self.n_heads)
        o = attention(q, k, v)
        return h + self.out(rearrange(o, "r h t d -> r t (h d)"))


class FeatureTokenLayer(nn.Module):
    """Attention across the features of a row, then across the context rows of each column (with MLP)."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.across_features = FeatureAttention(cfg)
        self.across_rows = ContextAttentionLayer(cfg)

    def mix_features(self, h: torch.Tensor) -> torch.Tensor:
        """Attention within each row of `h` (`B x N x T x D`); returns `B x N x T x D`."""
        return self.across_features(h.flatten(0, 1)).view_as(h)

    def context_kv(self, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Keys and values (`(B * T) x heads x C x d_head`) of the context tokens `h` (`B x C x T x D`)."""
        return self.across_rows.context_kv(rearrange(h, "b n t d -> (b t) n d"))

    def attend_rows(self, h: torch.Tensor, k: torch.Tensor, v: torch.Tensor,
                    context_mask: torch.Tensor | None) -> torch.Tensor:
        """Every token of `h` (`B x N x T x D`) attends to its column's context keys/values."""
        mask = attention_mask(context_mask, repeat=h.shape[2])
        columns = self.across_rows.attend(rearrange(h, "b n t d -> (b t) n d"), k, v, mask)
        return rearrange(columns, "(b t) n d -> b n t d", b=h.shape[0])

    def forward(self, h: torch.Tensor, n_context: int, context_mask: torch.Tensor | None = None) -> torch.Tensor:
        """One layer on `h` (`B x N x T x D`) whose first `n_context` rows are the context."""
        h = self.mix_features(h)
        return self.attend_rows(h, *self.context_kv(h[:, :n_context]), context_mask)


class FeatureTokenTransformer(nn.Module):
    """Maps context `(x, y)` and query `x` to hidden states of the queries' target tokens.

    Shapes: `x` is `B x N x F` (NaN marks a missing value), `y_context` is `B x C`,
    `context_mask` None or `B x C` bool (True: a real context row).
    """

    properties: ClassVar[LayoutProperties] = LayoutProperties(reads_missing=True, feature_order_invariant=True)

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.cell_encoder = nn.Linear(2, cfg.d_model)
        self.y_encoder = nn.Linear(1, cfg.d_model)  # class indices enter as floats
        self.query_target = nn.Parameter(torch.zeros(cfg.d_model))
        self.layers = nn.ModuleList(FeatureTokenLayer(cfg) for _ in range(cfg.n_layers))
        self.norm_out = nn.LayerNorm(cfg.d_model)

    def embed_rows(self, x: torch.Tensor, scaling: FeatureScaling, y: torch.Tensor | None) -> torch.Tensor:
        """Tokens `B x N x (F + 1) x D` of rows `x` (`B x N x F`); the last is the target token,
        from `y` (`B x N`) for context rows and `query_target` when `y` is None."""
        dtype = self.cell_encoder.weight.dtype
        missing = torch.isnan(x)
        z = torch.where(missing, 0.0, scaling.standardise(x)).to(dtype)
        cells = self.cell_encoder(torch.stack([z, missing.to(dtype)], dim=-1))
        if y is None:
            target = self.query_target.expand(*x.shape[:2], 1, -1)
        else:
            target = self.y_encoder(y.unsqueeze(-1).to(dtype)).unsqueeze(2)
        return torch.cat([cells, target.to(cells.dtype)], dim=2)

    def embed_context(self, x_context: torch.Tensor, y_context: torch.Tensor,
                      context_mask: torch.Tensor | None) -> tuple[torch.Tensor, FeatureScaling]:
        """Tokens of the context rows (padded rows zeroed) and the context's feature scaling."""
        x_context, y_context = zero_padding(x_context, context_mask), zero_padding(y_context, context_mask)
        scaling = context_statistics(x_context, context_mask)
        return self.embed_rows(x_context, scaling, y_context), scaling

    def forward(self, x: torch.Tensor, y_context: torch.Tensor,
                context_mask: torch.Tensor | None = None) -> torch.Tensor:
        """Hidden states of the queries `x[:, C:]` (`B x (N - C) x D`), `C = y_context.shape[1]`."""
        c = y_context.shape[1]
        context, scaling = self.embed_context(x[:, :c], y_context, context_mask)
        h = torch.cat([context, self.embed_rows(x[:, c:], scaling, None)], dim=1)
        for layer in self.layers:
            h = layer(h, c, context_mask)
        return self.norm_out(h[:, c:, -1])

    def encode_context(self, x_context: torch.Tensor, y_context: torch.Tensor,
                       context_mask: torch.Tensor | None = None) -> KVCache:
        """Per-layer keys/values of the context (`B x C x F`, `B x C`; `(B * (F + 1)) x heads x C x d_head` each) and
        its feature scaling."""
        h, scaling = self.embed_context(x_context, y_context, context_mask)
        kv = []
        for i, layer in enumerate(self.layers):
            h = layer.mix_features(h)
            kv.append(layer.context_kv(h))
            if i + 1 < len(self.layers):  # the last layer's context states are not needed
                h = layer.attend_rows(h, *kv[-1], context_mask)
        return KVCache(kv, context_mask, scaling)

    def decode(self, cache: KVCache, x_query: torch.Tensor) -> torch.Tensor:
        """Hidden states (`B x M x D`) of queries `x_query` (`B x M x F`) given an encoded context."""
        h = self.embed_rows(x_query, cache.scaling, None)
        for layer, (k, v) in zip(self.layers, cache.kv, strict=True):
            h = layer.attend_rows(layer.mix_features(h), k, v, cache.mask)
        return self.norm_out(h[:, :, -1])

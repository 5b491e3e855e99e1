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

Inputs are standardised per feature with the mean and standard deviation of the context
rows (ignoring NaN) and clipped to `[-CLIP, CLIP]`; a NaN cell is read as missing: its value
becomes 0 and a missing-indicator input of its embedding is set.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn

from pfn.config import ModelConfig
from pfn.transformer import ContextAttentionLayer

CLIP = 10.0


@dataclass
class TableCache:
    """What `decode` needs of an encoded context.

    `mean`, `std`: `B x F` per-feature statistics of the context rows; `kv`: per layer, the
    keys and values of the context tokens, each `(B * (F + 1)) x heads x C x d_head`.
    """

    mean: torch.Tensor
    std: torch.Tensor
    kv: list[tuple[torch.Tensor, torch.Tensor]]


def context_statistics(x_context: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """NaN-ignoring mean and standard deviation (`B x F` each) over the rows of `x_context` (`B x C x F`).

    A feature with no observed value gets mean 0; a (near-)constant one gets standard deviation 1.
    """
    observed = ~torch.isnan(x_context)
    count = observed.sum(1)
    values = torch.where(observed, x_context, 0.0)
    mean = values.sum(1) / count.clamp_min(1)
    var = (torch.where(observed, x_context - mean.unsqueeze(1), 0.0) ** 2).sum(1) / (count - 1).clamp_min(1)
    std = var.sqrt()
    return mean, torch.where(std > 1e-8 * (1 + mean.abs()), std, torch.ones_like(std))


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
        o = F.scaled_dot_product_attention(q, k, v)
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

    def forward(self, h: torch.Tensor, n_context: int) -> torch.Tensor:
        """One layer on `h` (`B x N x T x D`) whose first `n_context` rows are the context."""
        h = self.mix_features(h)
        columns = self.across_rows(rearrange(h, "b n t d -> (b t) n d"), n_context)
        return rearrange(columns, "(b t) n d -> b n t d", b=h.shape[0])


class FeatureTokenTransformer(nn.Module):
    """Maps context `(x, y)` and query `x` to hidden states of the queries' target tokens.

    Shapes: `x` is `B x N x F` (NaN marks a missing value), `y_context` is `B x C`.
    """

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.cell_encoder = nn.Linear(2, cfg.d_model)
        self.y_encoder = nn.Linear(1, cfg.d_model)  # class indices enter as floats
        self.query_target = nn.Parameter(torch.zeros(cfg.d_model))
        self.layers = nn.ModuleList(FeatureTokenLayer(cfg) for _ in range(cfg.n_layers))
        self.norm_out = nn.LayerNorm(cfg.d_model)

    def embed_rows(self, x: torch.Tensor, mean: torch.Tensor, std: torch.Tensor,
                   y: torch.Tensor | None) -> torch.Tensor:
        """Tokens `B x N x (F + 1) x D` of rows `x` (`B x N x F`); the last is the target token,
        from `y` (`B x N`) for context rows and `query_target` when `y` is None."""
        missing = torch.isnan(x)
        z = ((x - mean.unsqueeze(1)) / std.unsqueeze(1)).clamp(-CLIP, CLIP)
        z = torch.where(missing, 0.0, z)
        cells = self.cell_encoder(torch.stack([z, missing.to(z.dtype)], dim=-1))
        if y is None:
            target = self.query_target.expand(*x.shape[:2], 1, -1)
        else:
            target = self.y_encoder(y.unsqueeze(-1)).unsqueeze(2)
        return torch.cat([cells, target.to(cells.dtype)], dim=2)

    def forward(self, x: torch.Tensor, y_context: torch.Tensor) -> torch.Tensor:
        """Hidden states of the queries `x[:, C:]` (`B x (N - C) x D`), `C = y_context.shape[1]`."""
        c = y_context.shape[1]
        mean, std = context_statistics(x[:, :c])
        h = torch.cat([self.embed_rows(x[:, :c], mean, std, y_context),
                       self.embed_rows(x[:, c:], mean, std, None)], dim=1)
        for layer in self.layers:
            h = layer(h, c)
        return self.norm_out(h[:, c:, -1])

    @torch.no_grad()
    def encode_context(self, x_context: torch.Tensor, y_context: torch.Tensor) -> TableCache:
        """Feature statistics and per-layer keys/values of the context (`B x C x F`, `B x C`)."""
        mean, std = context_statistics(x_context)
        h = self.embed_rows(x_context, mean, std, y_context)
        kv = []
        for layer in self.layers:
            h = layer.mix_features(h)
            columns = rearrange(h, "b n t d -> (b t) n d")
            k, v = layer.across_rows.context_kv(columns)
            kv.append((k, v))
            h = rearrange(layer.across_rows.attend(columns, k, v), "(b t) n d -> b n t d", b=h.shape[0])
        return TableCache(mean, std, kv)

    def decode(self, cache: TableCache, x_query: torch.Tensor) -> torch.Tensor:
        """Hidden states (`B x M x D`) of queries `x_query` (`B x M x F`) given an encoded context."""
        h = self.embed_rows(x_query, cache.mean, cache.std, None)
        for layer, (k, v) in zip(self.layers, cache.kv, strict=True):
            h = layer.mix_features(h)
            columns = layer.across_rows.attend(rearrange(h, "b n t d -> (b t) n d"), k, v)
            h = rearrange(columns, "(b t) n d -> b n t d", b=h.shape[0])
        return self.norm_out(h[:, :, -1])

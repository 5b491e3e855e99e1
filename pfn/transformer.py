"""The PFN transformer: context rows are a set, queries attend to the context only.

Every layer computes keys and values from the context rows alone; all rows (context and
queries) attend to them. Hence context rows see each other (no positional encoding, so
the output is invariant to their order), and a query never sees another query. The
per-layer keys and values of the context are the KV cache: compute them once with
`encode_context`, then `decode` any number of queries.

Datasets of different context sizes share a batch through a context mask (`B x C`, True
for a real row): padded rows are zeroed before embedding and masked out of every
attention, so their values never change a prediction.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn

from pfn.attention import attention
from pfn.config import ModelConfig


@dataclass
class KVCache:
    """What `decode` needs of an encoded context: per layer, the keys and values of the context
    (`B x heads x C x d_head` each), and the context mask (`B x C` bool, or None for no padding)."""

    kv: list[tuple[torch.Tensor, torch.Tensor]]
    mask: torch.Tensor | None = None


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


class ContextAttentionLayer(nn.Module):
    """Pre-norm transformer layer whose keys and values come from the context only."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.n_heads = cfg.n_heads
        self.norm_attn = nn.LayerNorm(cfg.d_model)
        self.to_q = nn.Linear(cfg.d_model, cfg.d_model)
        self.to_kv = nn.Linear(cfg.d_model, 2 * cfg.d_model)
        self.attn_out = nn.Linear(cfg.d_model, cfg.d_model)
        self.norm_mlp = nn.LayerNorm(cfg.d_model)
        self.mlp = nn.Sequential(nn.Linear(cfg.d_model, cfg.d_ff), nn.GELU(), nn.Linear(cfg.d_ff, cfg.d_model))
        for out in (self.attn_out, self.mlp[-1]):  # each layer starts as the identity
            nn.init.zeros_(out.weight)
            nn.init.zeros_(out.bias)

    def context_kv(self, h_context: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Keys and values (`B x heads x C x d_head`) of context states `h_context` (`B x C x D`)."""
        k, v = self.to_kv(self.norm_attn(h_context)).chunk(2, dim=-1)
        split = "b n (h d) -> b h n d"
        return rearrange(k, split, h=self.n_heads), rearrange(v, split, h=self.n_heads)

    def attend(self, h: torch.Tensor, k: torch.Tensor, v: torch.Tensor,
               attn_mask: torch.Tensor | None = None) -> torch.Tensor:
        """Updates states `h` (`B x N x D`) attending to context keys/values; returns `B x N x D`.

        `attn_mask`: None, or `B x 1 x 1 x C` bool (True: attend), from `attention_mask`.
        """
        q = rearrange(self.to_q(self.norm_attn(h)), "b n (h d) -> b h n d", h=self.n_heads)
        o = attention(q, k, v, attn_mask)
        h = h + self.attn_out(rearrange(o, "b h n d -> b n (h d)"))
        return h + self.mlp(self.norm_mlp(h))

    def forward(self, h: torch.Tensor, n_context: int, attn_mask: torch.Tensor | None = None) -> torch.Tensor:
        k, v = self.context_kv(h[:, :n_context])
        return self.attend(h, k, v, attn_mask)


class PFNTransformer(nn.Module):
    """Maps context `(x, y)` and query `x` to hidden states of the queries.

    Shapes: `x` is `B x N x F` with `F <= cfg.max_features`; `y_context` is `B x C`;
    `context_mask` is None or `B x C` bool (True: a real context row).
    """

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

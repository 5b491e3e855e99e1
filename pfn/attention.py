"""Exact multi-head attention on the kernel that is fastest for the shapes at hand.

On a CPU, torch's fused `scaled_dot_product_attention` is slow under bf16 autocast and in
training for the small problems of PFN training: forward + backward with 32 datasets, 4 heads,
100 queries against 50 context rows and head width 32 took 33.7 ms fused against 4.8 ms as an
explicit matmul-softmax-matmul (fp32: 8.2 ms against 7.2 ms; one thread, torch 2.13). Without
gradients in fp32 the fused kernel is never slower and far faster for large problems (4 tables,
4 heads, 500 queries against 500 context rows: 4.4 ms against 16.9 ms on 2 threads), so it
serves every prediction. The explicit form materialises the `queries x context` scores, so it
is used only while they are small (`MAX_SCORE_ELEMENTS`) and only on the CPU, where gradients or
autocast are in play. Both are exact attention: they agree to rounding.

`ContextAttentionLayer`, the transformer layer whose keys and values come from the context
rows only, is the building block that every token layout (`pfn.tokens`) stacks.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn

if TYPE_CHECKING:
    from pfn.config import ModelConfig

MAX_SCORE_ELEMENTS = 2**24  # at most 64 MiB of float32 scores (and as much again for their gradient)


def attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """`softmax(q k^T / sqrt(d)) v`, with keys where `mask` is False left out.

    Args:
        q: `... x N x d` queries.
        k, v: `... x C x d` keys and values (the same leading dimensions as `q`).
        mask: None, or a bool tensor broadcastable to `... x N x C` (True: attend).

    Returns:
        `... x N x d` (the dtype of `v`; under autocast, autocast's).
    """
    needs_grad = torch.is_grad_enabled() and (q.requires_grad or k.requires_grad or v.requires_grad)
    small = q.shape[:-1].numel() * k.shape[-2] <= MAX_SCORE_ELEMENTS
    if q.device.type != "cpu" or not small or not (needs_grad or torch.is_autocast_enabled("cpu")):
        return F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
    scores = (q * q.shape[-1] ** -0.5) @ k.transpose(-1, -2)
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf"))
    weights = torch.softmax(scores, dim=-1, dtype=torch.promote_types(scores.dtype, torch.float32))
    return weights.to(scores.dtype) @ v


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

        `attn_mask`: None, or `B x 1 x 1 x C` bool (True: attend), from `pfn.tokens.attention_mask`.
        """
        q = rearrange(self.to_q(self.norm_attn(h)), "b n (h d) -> b h n d", h=self.n_heads)
        o = attention(q, k, v, attn_mask)
        h = h + self.attn_out(rearrange(o, "b h n d -> b n (h d)"))
        return h + self.mlp(self.norm_mlp(h))

    def forward(self, h: torch.Tensor, n_context: int, attn_mask: torch.Tensor | None = None) -> torch.Tensor:
        k, v = self.context_kv(h[:, :n_context])
        return self.attend(h, k, v, attn_mask)

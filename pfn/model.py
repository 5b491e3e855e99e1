"""`PFN`: the transformer with its output head, and the user-facing `predict`."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from pfn.config import ModelConfig
from pfn.heads import BarHead
from pfn.riemann import RiemannDistribution
from pfn.transformer import KVCache, PFNTransformer
from pfn.validation import check_context, check_query
from priors.batch import Batch


class PFN(nn.Module):
    """A prior-data fitted network: transformer plus Riemann head.

    Args:
        config: The architecture.
        borders: A `K + 1` tensor of bucket borders (`K = config.n_buckets`).
        info: Free-form metadata kept in the checkpoint (prior config, training record).
    """

    def __init__(self, config: ModelConfig, borders: torch.Tensor, info: dict[str, Any] | None = None) -> None:
        super().__init__()
        if borders.numel() != config.n_buckets + 1:
            raise ValueError(f"config.n_buckets={config.n_buckets} needs {config.n_buckets + 1} borders")
        self.config = config
        self.info = dict(info or {})
        self.transformer = PFNTransformer(config)
        self.head = BarHead(config.d_model, borders)

    @property
    def device(self) -> torch.device:
        return self.head.borders.device

    def forward(self, x: torch.Tensor, y_context: torch.Tensor) -> torch.Tensor:
        """Bucket logits (`B x (N - C) x K`) of the queries `x[:, C:]`; `C = y_context.shape[1]`."""
        return self.head(self.transformer(x, y_context))

    def loss(self, batch: Batch) -> torch.Tensor:
        """Mean negative log density of `batch.target_y` at the query rows (scalar)."""
        c = batch.n_context
        logits = self(batch.x, batch.y[:, :c])
        return self.head.nll(logits, batch.target_y[:, c:]).mean()

    @torch.no_grad()
    def fit(self, x_context: Any, y_context: Any) -> FittedPFN:
        """Encodes the context once; returns an object whose `predict` reuses it (KV cache).

        Args:
            x_context: `N x F` (or batched `B x N x F`) inputs.
            y_context: `N` (or `B x N`) targets.
        """
        xc, yc, unbatched = check_context(x_context, y_context, self.config.max_features, self.device)
        self.eval()
        return FittedPFN(self, self.transformer.encode_context(xc, yc), xc.shape[-1], xc.shape[0], unbatched)

    def predict(self, x_context: Any, y_context: Any, x_query: Any, chunk_size: int = 4096) -> RiemannDistribution:
        """Posterior predictive at `x_query` given the context.

        Args:
            x_context: `N x F` inputs (or `B x N x F`).
            y_context: `N` targets (or `B x N`).
            x_query: `M x F` inputs (or `B x M x F`).
            chunk_size: Queries per forward pass (bounds memory).

        Returns:
            A `RiemannDistribution` with batch shape `M` (or `B x M`).
        """
        return self.fit(x_context, y_context).predict(x_query, chunk_size=chunk_size)


class FittedPFN:
    """A PFN with an encoded context; `predict` decodes queries against the KV cache."""

    def __init__(self, model: PFN, cache: KVCache, n_features: int, batch_size: int, unbatched: bool) -> None:
        self.model, self.cache = model, cache
        self.n_features, self.batch_size, self.unbatched = n_features, batch_size, unbatched

    @torch.no_grad()
    def predict(self, x_query: Any, chunk_size: int = 4096) -> RiemannDistribution:
        """Predictive at `x_query` (`M x F`, or `B x M x F`); batch shape `M` (or `B x M`)."""
        if chunk_size < 1:
            raise ValueError(f"chunk_size must be a positive number of queries, got {chunk_size}")
        xq = check_query(x_query, self.n_features, self.batch_size, self.unbatched, self.model.device)
        self.model.eval()
        log_probs = torch.empty(*xq.shape[:2], self.model.config.n_buckets, device=xq.device)
        for start in range(0, xq.shape[1], chunk_size):
            part = xq[:, start:start + chunk_size]
            logits = self.model.head(self.model.transformer.decode(self.cache, part))
            log_probs[:, start:start + chunk_size] = torch.log_softmax(logits.float(), dim=-1)
        dist = RiemannDistribution(log_probs, self.model.head.borders, normalized=True)
        return dist[0] if self.unbatched else dist

"""`PFN`: the transformer with its output head, and the user-facing `predict`."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from pfn.config import ModelConfig
from pfn.feature_transformer import FeatureTokenTransformer
from pfn.heads import BarHead, ClassificationHead
from pfn.riemann import RiemannDistribution
from pfn.transformer import PFNTransformer
from pfn.validation import check_context, check_query
from priors.batch import Batch

TRANSFORMERS = {"pad": PFNTransformer, "per_feature": FeatureTokenTransformer}


class PFN(nn.Module):
    """A prior-data fitted network: transformer plus output head.

    Args:
        config: The architecture (`config.feature_encoding` picks the transformer,
            `config.head` the head).
        borders: A `K + 1` tensor of bucket borders (`K = config.n_buckets`) for `head="bar"`;
            None for `head="classification"`.
        info: Free-form metadata kept in the checkpoint (prior config, training record).
    """

    def __init__(self, config: ModelConfig, borders: torch.Tensor | None = None,
                 info: dict[str, Any] | None = None) -> None:
        super().__init__()
        self.config = config
        self.info = dict(info or {})
        self.transformer = TRANSFORMERS[config.feature_encoding](config)
        if config.head == "classification":
            if borders is not None:
                raise ValueError("a classification head takes no borders")
            self.head = ClassificationHead(config.d_model, config.max_classes)
        else:
            if borders is None or borders.numel() != config.n_buckets + 1:
                raise ValueError(f"config.n_buckets={config.n_buckets} needs {config.n_buckets + 1} borders")
            self.head = BarHead(config.d_model, borders)

    @property
    def is_classifier(self) -> bool:
        return self.config.head == "classification"

    @property
    def device(self) -> torch.device:
        return self.head.proj.weight.device

    def forward(self, x: torch.Tensor, y_context: torch.Tensor) -> torch.Tensor:
        """Logits (`B x (N - C) x K`: buckets or classes) of the queries `x[:, C:]`; `C = y_context.shape[1]`."""
        return self.head(self.transformer(x, y_context))

    def query_nll(self, logits: torch.Tensor, batch: Batch) -> torch.Tensor:
        """Negative log density (`B x (N - C)`) of `batch.target_y` at the query rows under `logits`."""
        target = batch.target_y[:, batch.n_context:]
        if self.is_classifier:
            return self.head.nll(logits, target, batch.meta["n_classes"])
        return self.head.nll(logits, target)

    def loss(self, batch: Batch) -> torch.Tensor:
        """Mean negative log density of `batch.target_y` at the query rows (scalar)."""
        return self.query_nll(self(batch.x, batch.y[:, :batch.n_context]), batch).mean()

    @torch.no_grad()
    def fit(self, x_context: Any, y_context: Any, n_classes: int | None = None) -> FittedPFN:
        """Encodes the context once; returns an object whose `predict` reuses it (KV cache).

        Args:
            x_context: `N x F` (or batched `B x N x F`) inputs; NaN marks a missing value
                for `feature_encoding="per_feature"`.
            y_context: `N` (or `B x N`) targets; class indices `0, ..., k - 1` for a classifier.
            n_classes: A classifier's class count `k` (default: the largest index + 1).
        """
        xc, yc, unbatched = check_context(x_context, y_context, self.config.max_features, self.device,
                                          allow_nan=self.config.feature_encoding == "per_feature")
        if self.is_classifier:
            n_classes = self._check_labels(yc, n_classes)
        self.eval()
        return FittedPFN(self, self.transformer.encode_context(xc, yc), xc.shape[-1], xc.shape[0], unbatched,
                         n_classes)

    def _check_labels(self, yc: torch.Tensor, n_classes: int | None) -> int:
        if (yc != yc.round()).any() or (yc < 0).any():
            raise ValueError("a classifier's y_context must hold class indices 0, 1, ..., k - 1")
        k = int(yc.max()) + 1 if n_classes is None else int(n_classes)
        if not int(yc.max()) < k <= self.config.max_classes:
            raise ValueError(f"{k} classes given (labels up to {int(yc.max())}) but this model supports 2 to "
                             f"{self.config.max_classes} classes")
        return k

    def predict(self, x_context: Any, y_context: Any, x_query: Any,
                chunk_size: int = 4096) -> RiemannDistribution | torch.distributions.Categorical:
        """Posterior predictive at `x_query` given the context.

        Args:
            x_context: `N x F` inputs (or `B x N x F`).
            y_context: `N` targets (or `B x N`).
            x_query: `M x F` inputs (or `B x M x F`).
            chunk_size: Queries per forward pass (bounds memory).

        Returns:
            A `RiemannDistribution` (regression) or a `Categorical` (classification) with batch
            shape `M` (or `B x M`).
        """
        return self.fit(x_context, y_context).predict(x_query, chunk_size=chunk_size)


class FittedPFN:
    """A PFN with an encoded context; `predict` decodes queries against the cache."""

    def __init__(self, model: PFN, cache: Any, n_features: int, batch_size: int, unbatched: bool,
                 n_classes: int | None = None) -> None:
        self.model, self.cache = model, cache
        self.n_features, self.batch_size, self.unbatched = n_features, batch_size, unbatched
        self.n_classes = n_classes

    @torch.no_grad()
    def predict(self, x_query: Any, chunk_size: int = 4096) -> RiemannDistribution | torch.distributions.Categorical:
        """Predictive at `x_query` (`M x F`, or `B x M x F`); batch shape `M` (or `B x M`).

        Regression: a `RiemannDistribution`. Classification: a `Categorical` over the
        context's `n_classes` classes.
        """
        if chunk_size < 1:
            raise ValueError(f"chunk_size must be a positive number of queries, got {chunk_size}")
        model = self.model
        xq = check_query(x_query, self.n_features, self.batch_size, self.unbatched, model.device,
                         allow_nan=model.config.feature_encoding == "per_feature")
        model.eval()
        n_out = self.n_classes if model.is_classifier else model.config.n_buckets
        log_probs = torch.empty(*xq.shape[:2], n_out, device=xq.device)
        for start in range(0, xq.shape[1], chunk_size):
            logits = model.head(model.transformer.decode(self.cache, xq[:, start:start + chunk_size]))
            if model.is_classifier:
                part = model.head.log_probs(logits, self.n_classes)[..., :self.n_classes]
            else:
                part = torch.log_softmax(logits.float(), dim=-1)
            log_probs[:, start:start + chunk_size] = part
        if model.is_classifier:
            return torch.distributions.Categorical(logits=log_probs[0] if self.unbatched else log_probs)
        dist = RiemannDistribution(log_probs, model.head.borders, normalized=True)
        return dist[0] if self.unbatched else dist

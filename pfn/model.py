"""`PFN`: the transformer with its output head, and the user-facing `fit` / `predict`."""

from __future__ import annotations

from contextlib import nullcontext
from typing import Any

import torch
from torch import nn

from pfn.architectures import register_architecture
from pfn.config import ModelConfig
from pfn.heads import head_class
from pfn.layouts import layout_class
from pfn.validation import check_context, check_query
from priors.batch import Batch


@register_architecture("pfn")
class PFN(nn.Module):
    """A prior-data fitted network: transformer plus output head (`ModelConfig.architecture="pfn"`).

    Args:
        config: The architecture (`config.feature_encoding` picks the transformer, a token layout of
            `pfn.layouts`; `config.head` the head).
        head_state: The head's own state, e.g. `{"borders": ...}` (a `K + 1` list or tensor of
            bucket borders, `K = config.n_buckets`) for `head="bar"`; None for a head without
            state (`head="classification"`).
        info: Free-form metadata kept in the checkpoint (prior config, training record).
    """

    def __init__(self, config: ModelConfig, head_state: dict[str, Any] | None = None,
                 info: dict[str, Any] | None = None) -> None:
        super().__init__()
        self.config = config
        self.info = dict(info or {})
        self.transformer = layout_class(config.feature_encoding)(config)
        self.head = head_class(config.head).build(config, head_state)

    @property
    def device(self) -> torch.device:
        return next(self.head.parameters()).device

    def forward(self, x: torch.Tensor, y_context: torch.Tensor,
                context_mask: torch.Tensor | None = None) -> torch.Tensor:
        """Logits (`B x (N - C) x K`, `K` the head's outputs) of the queries `x[:, C:]`.

        `C = y_context.shape[1]`; `context_mask` (None or `B x C` bool) marks real context rows.
        """
        return self.head(self.transformer(x, y_context, context_mask))

    def batch_loss(self, logits: torch.Tensor, batch: Batch) -> torch.Tensor:
        """Mean negative log-likelihood (scalar) of `batch`'s scored query targets under `logits`."""
        nll = self.head.loss(logits, batch)
        if batch.query_mask is None:
            return nll.mean()
        return nll.sum() / batch.query_mask.sum().clamp_min(1)

    def loss(self, batch: Batch) -> torch.Tensor:
        """Mean negative log-likelihood (scalar) of the batch's query targets."""
        c = batch.n_context
        return self.batch_loss(self(batch.x, batch.y[:, :c], batch.context_mask), batch)

    def fit(self, x_context: Any, y_context: Any, context_mask: Any = None, *, grad: bool = False,
            **task_options: Any) -> FittedPFN:
        """Encodes the context once; returns an object whose `predict` reuses it (KV cache).

        Args:
            x_context: `N x F` (or batched `B x N x F`) inputs; NaN marks a missing value
                for the layouts that read it (`self.transformer.properties.reads_missing`). float64 inputs keep
                their precision until the model standardises them.
            y_context: `N` (or `B x N`) targets; class indices `0, ..., k - 1` for a classifier.
            context_mask: None, or `N` (`B x N`) bool: True for a real row. Datasets of
                different sizes share a batch this way; padded rows may hold anything.
            grad: Keep the autograd graph of the encoding (gradients reaching the context).
                Gradients to the queries need only `predict(..., grad=True)`.
            task_options: Options of the head, e.g. `n_classes` for a classifier (default:
                the largest index + 1).
        """
        xc, yc, mask, unbatched = check_context(x_context, y_context, self.config.max_features, self.device,
                                                allow_nan=self.transformer.properties.reads_missing,
                                                context_mask=context_mask)
        task = self.head.task_of_context(yc if mask is None else yc[mask], **task_options)
        self.eval()
        with nullcontext() if grad else torch.no_grad():
            cache = self.transformer.encode_context(xc, yc, mask)
        return FittedPFN(self, cache, xc.shape[-1], xc.shape[0], unbatched, task)

    def predict(self, x_context: Any, y_context: Any, x_query: Any, context_mask: Any = None, *,
                chunk_size: int = 4096, grad: bool = False, **task_options: Any) -> Any:
        """Posterior predictive at `x_query` given the context (`fit` then `FittedPFN.predict`).

        Args:
            x_context: `N x F` inputs (or `B x N x F`).
            y_context: `N` targets (or `B x N`).
            x_query: `M x F` inputs, any `batch x M x F` against one context, or `B x M x F`.
            context_mask: None, or `N` (`B x N`) bool marking real context rows.
            chunk_size: Queries per forward pass (bounds memory).
            grad: Let gradients flow from the predictive to `x_query` (and the context).

        Returns:
            The head's predictive distribution, e.g. a `RiemannDistribution` (regression) or a
            `Categorical` (classification), with batch shape `M` (`batch x M`, `B x M`).
        """
        fitted = self.fit(x_context, y_context, context_mask, grad=grad, **task_options)
        return fitted.predict(x_query, chunk_size=chunk_size, grad=grad)


class FittedPFN:
    """A PFN with an encoded context; `predict` decodes queries against the cache."""

    def __init__(self, model: PFN, cache: Any, n_features: int, batch_size: int, unbatched: bool,
                 task: dict[str, Any]) -> None:
        self.model, self.cache = model, cache
        self.n_features, self.batch_size, self.unbatched = n_features, batch_size, unbatched
        self.task = task

    def predict(self, x_query: Any, chunk_size: int = 4096, grad: bool = False) -> Any:
        """The predictive at `x_query`.

        Args:
            x_query: For an unbatched context, `M x F` (`M` when `F == 1`) or any
                `batch x M x F` (e.g. BoTorch's `batch x q x d`), all decoded against the
                one shared context without copying it; for a batched context, `B x M x F`.
            chunk_size: Queries decoded per forward pass; the predictive's parameters are
                written into one preallocated table, so memory is that table plus one chunk.
            grad: Keep the autograd graph: gradients of any statistic of the predictive
                (mean, EI, log_prob, ...) reach `x_query`. Otherwise runs under `no_grad`.

        Returns:
            The head's predictive (`RiemannDistribution`, `Categorical`, ...) with batch shape
            `M`, `batch x M` or `B x M`.
        """
        if chunk_size < 1:
            raise ValueError(f"chunk_size must be a positive number of queries, got {chunk_size}")
        model = self.model
        xq, shape = check_query(x_query, self.n_features, self.batch_size, self.unbatched, model.device,
                                allow_nan=model.transformer.properties.reads_missing)
        if model.training:  # `eval()` walks every module: skipped on the hot path of repeated predictions
            model.eval()
        head = model.head
        with nullcontext() if grad else torch.no_grad():
            params = None
            for start in range(0, xq.shape[1], chunk_size):
                part = head.parameters_of(head(model.transformer.decode(self.cache, xq[:, start:start + chunk_size])),
                                          **self.task)
                if params is None:
                    params = part.new_empty(*xq.shape[:2], head.n_parameters(**self.task))
                params[:, start:start + chunk_size] = part
            if params is None:  # no queries
                params = torch.empty(*xq.shape[:2], head.n_parameters(**self.task), device=xq.device)
            params = params.reshape(*shape, params.shape[-1])
        return head.distribution(params, **self.task)

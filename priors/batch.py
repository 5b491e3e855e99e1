"""The `Batch` of datasets that every prior returns."""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import torch


@dataclass
class Batch:
    """A batch of datasets, batch-first.

    Attributes:
        x: A `B x N x F` float tensor of inputs.
        y: A `B x N` float tensor of observed targets (class index as float for
            classification).
        target_y: A `B x N` float tensor of what the loss scores (noise-free where the
            prior says so).
        n_context: Positions `[:n_context]` of every dataset are the context slots, the
            rest are queries.
        meta: Sampled hyperparameters, each a tensor whose first dimension is `B`.
        context_mask: None (every context slot is real) or a `B x n_context` bool tensor,
            True where a context slot holds a real row. Datasets of different context sizes
            share one batch this way: a padded slot (False) is ignored by the model, so its
            values never change a prediction. Every dataset needs at least one real row.
        query_mask: None (every query is scored) or a `B x (N - n_context)` bool tensor, True
            where a query row is scored by the loss (e.g. curves of different horizons).
    """

    x: torch.Tensor
    y: torch.Tensor
    target_y: torch.Tensor
    n_context: int
    meta: dict[str, torch.Tensor] = field(default_factory=dict)
    context_mask: torch.Tensor | None = None
    query_mask: torch.Tensor | None = None

    def __post_init__(self) -> None:
        if self.x.dim() != 3:
            raise ValueError(f"Batch.x must be B x N x F, got shape {tuple(self.x.shape)}")
        b, n, _ = self.x.shape
        for name in ("y", "target_y"):
            t = getattr(self, name)
            if t.shape != (b, n):
                raise ValueError(f"Batch.{name} must have shape {(b, n)}, got {tuple(t.shape)}")
        if not 0 <= self.n_context <= n:
            raise ValueError(f"n_context={self.n_context} is outside [0, {n}]")
        for name, size in (("context_mask", self.n_context), ("query_mask", n - self.n_context)):
            mask = getattr(self, name)
            if mask is None:
                continue
            if mask.dtype != torch.bool or mask.shape != (b, size):
                raise ValueError(f"Batch.{name} must be a bool tensor of shape {(b, size)}, got "
                                 f"{mask.dtype} {tuple(mask.shape)}")
        if self.context_mask is not None and not self.context_mask.any(1).all():
            raise ValueError("Batch.context_mask leaves a dataset without any context row")

    @property
    def batch_size(self) -> int:
        return self.x.shape[0]

    @property
    def n_points(self) -> int:
        return self.x.shape[1]

    @property
    def n_features(self) -> int:
        return self.x.shape[2]

    @property
    def context_sizes(self) -> torch.Tensor:
        """Real context rows per dataset (`B`, int64)."""
        if self.context_mask is None:
            return torch.full((self.batch_size,), self.n_context, dtype=torch.long, device=self.x.device)
        return self.context_mask.sum(1)

    def to(self, device: torch.device | str) -> Batch:
        """Returns a copy of the batch on `device`."""
        def move(t: torch.Tensor | None) -> torch.Tensor | None:
            return None if t is None else t.to(device)

        return Batch(x=self.x.to(device), y=self.y.to(device), target_y=self.target_y.to(device),
                     n_context=self.n_context, meta={k: v.to(device) for k, v in self.meta.items()},
                     context_mask=move(self.context_mask), query_mask=move(self.query_mask))

    def with_n_context(self, n_context: int) -> Batch:
        """Returns the same datasets with a different context/query split (and no masks)."""
        return replace(self, n_context=n_context, context_mask=None, query_mask=None)

    def with_context_sizes(self, sizes: torch.Tensor) -> Batch:
        """The same datasets where dataset `i` uses only its first `sizes[i]` context slots.

        Args:
            sizes: A `B` integer tensor with values in `[1, n_context]`.

        Returns:
            A `Batch` with `context_mask[i, j] = j < sizes[i]`; the slots past a dataset's
            size are padding (not context, not scored).
        """
        sizes = torch.as_tensor(sizes, device=self.x.device)
        if sizes.shape != (self.batch_size,) or int(sizes.min()) < 1 or int(sizes.max()) > self.n_context:
            raise ValueError(f"context sizes must be {self.batch_size} integers in [1, {self.n_context}]")
        mask = torch.arange(self.n_context, device=self.x.device) < sizes.unsqueeze(1)
        return replace(self, context_mask=mask)

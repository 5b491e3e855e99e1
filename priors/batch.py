"""The `Batch` of datasets that every prior returns."""

from __future__ import annotations

from dataclasses import dataclass, field

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
        n_context: Positions `[:n_context]` of every dataset are the context, the rest
            are queries.
        meta: Sampled hyperparameters, each a tensor whose first dimension is `B`.
    """

    x: torch.Tensor
    y: torch.Tensor
    target_y: torch.Tensor
    n_context: int
    meta: dict[str, torch.Tensor] = field(default_factory=dict)

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

    @property
    def batch_size(self) -> int:
        return self.x.shape[0]

    @property
    def n_points(self) -> int:
        return self.x.shape[1]

    @property
    def n_features(self) -> int:
        return self.x.shape[2]

    def to(self, device: torch.device | str) -> Batch:
        """Returns a copy of the batch on `device`."""
        return Batch(
            x=self.x.to(device),
            y=self.y.to(device),
            target_y=self.target_y.to(device),
            n_context=self.n_context,
            meta={k: v.to(device) for k, v in self.meta.items()},
        )

    def with_n_context(self, n_context: int) -> Batch:
        """Returns the same datasets with a different context/query split."""
        return Batch(self.x, self.y, self.target_y, n_context, self.meta)

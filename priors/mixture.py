"""A weighted mixture of priors: each dataset comes from one component."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from priors.batch import Batch
from priors.registry import prior_from_dict, register_prior


@register_prior
@dataclass(frozen=True)
class MixturePrior:
    """Draws each dataset from component `i` with probability `weights[i] / sum(weights)`.

    `meta` (every entry has first dimension `B`):

    - `component`: which component drew each dataset.
    - `f"{i}.{k}"` for every key `k` of component `i`'s meta, filled in rows of other
      components with NaN (floats), -1 (integers) or False (booleans).
    - `k` itself (the plain key) for every key that all components drawn in the batch
      provide with one dtype and one trailing shape: their values merged row by row, with
      no fill. So a mixture of classification priors has `meta["n_classes"]` for the
      classification loss, and one of curve priors `meta["noise"]`. A key that only some
      components provide appears as `f"{i}.{k}"` only (which keys are shared can then
      depend on which components a batch happened to draw). `component` is never merged.

    Every component is sampled with the mixture's `n_context`.
    """

    components: tuple[Any, ...]
    weights: tuple[float, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "components", tuple(self.components))
        weights = tuple(float(w) for w in self.weights) or tuple(1.0 for _ in self.components)
        if not self.components or len(weights) != len(self.components) or min(weights) < 0 or sum(weights) <= 0:
            raise ValueError("MixturePrior needs components and one non-negative weight each")
        object.__setattr__(self, "weights", weights)

    def to_dict(self) -> dict[str, Any]:
        return {"type": "MixturePrior", "components": [c.to_dict() for c in self.components],
                "weights": list(self.weights)}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> MixturePrior:
        return cls(tuple(prior_from_dict(c) for c in d["components"]), tuple(d.get("weights", ())))

    def sample(
        self, batch_size: int, n_points: int, n_features: int, *,
        generator: torch.Generator | None = None, device: torch.device | str = "cpu",
        n_context: int | None = None,
    ) -> Batch:
        """Draws `batch_size` datasets; returns a `Batch` (`x`: `B x N x F`) with the `meta` of the class docstring."""
        n_context = n_points // 2 if n_context is None else n_context
        probs = torch.tensor(self.weights, device=device)
        component = torch.multinomial(probs, batch_size, replacement=True, generator=generator)
        x = torch.empty(batch_size, n_points, n_features, device=device)
        y = torch.empty(batch_size, n_points, device=device)
        target_y = torch.empty_like(y)
        parts: dict[int, tuple[torch.Tensor, dict[str, torch.Tensor]]] = {}
        for i, prior in enumerate(self.components):
            rows = (component == i).nonzero().squeeze(-1)
            if rows.numel() == 0:
                continue
            part = prior.sample(rows.numel(), n_points, n_features, generator=generator, device=device,
                                n_context=n_context)
            x[rows], y[rows], target_y[rows] = part.x, part.y, part.target_y
            parts[i] = (rows, part.meta)
        meta = {"component": component, **_shared_meta(parts, batch_size)}
        for i, (rows, part_meta) in parts.items():
            meta.update({f"{i}.{k}": _scatter(rows, v, batch_size) for k, v in part_meta.items()})
        return Batch(x=x, y=y, target_y=target_y, n_context=n_context, meta=meta)


def _shared_meta(
    parts: dict[int, tuple[torch.Tensor, dict[str, torch.Tensor]]], batch_size: int
) -> dict[str, torch.Tensor]:
    """The meta keys every part provides with one dtype and trailing shape, merged over the batch.

    Args:
        parts: For each drawn component, its rows (a long tensor) in the batch and its meta.
        batch_size: `B`; the parts' rows partition `range(B)`.

    Returns:
        `{key: B x ... tensor}` for the shared keys except `component`.
    """
    metas = [m for _, m in parts.values()]
    shared = {}
    for key, first in metas[0].items():
        values = [m.get(key) for m in metas]
        if key == "component" or any(v is None or v.dtype != first.dtype or v.shape[1:] != first.shape[1:]
                                     for v in values):
            continue
        merged = torch.empty((batch_size, *first.shape[1:]), dtype=first.dtype, device=first.device)
        for (rows, _), value in zip(parts.values(), values, strict=True):
            merged[rows] = value
        shared[key] = merged
    return shared


def _scatter(rows: torch.Tensor, value: torch.Tensor, batch_size: int) -> torch.Tensor:
    """`value` (`len(rows) x ...`) placed at `rows` of a `B x ...` tensor filled with NaN, -1 or False elsewhere."""
    fill = float("nan") if value.is_floating_point() else (False if value.dtype == torch.bool else -1)
    full = torch.full((batch_size, *value.shape[1:]), fill, dtype=value.dtype, device=value.device)
    full[rows] = value
    return full

"""A weighted mixture of priors: each dataset comes from one component."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from priors.batch import Batch


@dataclass(frozen=True)
class MixturePrior:
    """Draws each dataset from component `i` with probability `weights[i] / sum(weights)`.

    `meta["component"]` (`B`) says which; a component's own hyperparameter `k` appears as
    `meta[f"{i}.{k}"]`, filled in rows of other components with NaN (floats), -1 (integers)
    or False (booleans).
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
        from priors.registry import prior_from_dict

        return cls(tuple(prior_from_dict(c) for c in d["components"]), tuple(d.get("weights", ())))

    def sample(
        self, batch_size: int, n_points: int, n_features: int, *,
        generator: torch.Generator | None = None, device: torch.device | str = "cpu",
        n_context: int | None = None,
    ) -> Batch:
        """Draws `batch_size` datasets; returns a `Batch` (`x`: `B x N x F`)."""
        probs = torch.tensor(self.weights, device=device)
        component = torch.multinomial(probs, batch_size, replacement=True, generator=generator)
        x = torch.empty(batch_size, n_points, n_features, device=device)
        y = torch.empty(batch_size, n_points, device=device)
        target_y = torch.empty_like(y)
        meta: dict[str, torch.Tensor] = {"component": component}
        for i, prior in enumerate(self.components):
            rows = (component == i).nonzero().squeeze(-1)
            if rows.numel() == 0:
                continue
            part = prior.sample(rows.numel(), n_points, n_features, generator=generator, device=device)
            x[rows], y[rows], target_y[rows] = part.x, part.y, part.target_y
            for k, v in part.meta.items():
                fill = float("nan") if v.is_floating_point() else (False if v.dtype == torch.bool else -1)
                full = torch.full((batch_size, *v.shape[1:]), fill, dtype=v.dtype, device=device)
                full[rows] = v
                meta[f"{i}.{k}"] = full
        return Batch(x=x, y=y, target_y=target_y,
                     n_context=n_points // 2 if n_context is None else n_context, meta=meta)

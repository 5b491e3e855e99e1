"""Drawing scalar fields of any dataclass prior per dataset from hyperpriors."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

import torch

from priors.batch import Batch
from priors.hyperpriors import Hyperprior, hyperprior_from_dict
from priors.registry import prior_from_dict, register_prior


@register_prior
@dataclass(frozen=True)
class HyperpriorWrapper:
    """Wraps a frozen-dataclass prior and redraws some of its scalar fields per group of datasets.

    For each group of `group_size` datasets, every field named in `hyperpriors` is drawn
    from its hyperprior and the base prior is sampled with those values
    (`dataclasses.replace`). `group_size=1` gives one draw per dataset; larger groups trade
    independence for vectorisation inside the base prior. Priors whose hyperparameters are
    already `Hyperprior` objects (`GPPrior`, `BNNPrior`) draw per dataset themselves and
    need no wrapper. The drawn values appear in `meta` under their field names (`B`).

    Example: `HyperpriorWrapper(SinusoidPrior(), {"noise_std": LogNormal(-2.5, 0.5)})`.
    """

    base: Any
    hyperpriors: dict[str, Hyperprior] = field(default_factory=dict)
    group_size: int = 1

    def __post_init__(self) -> None:
        if not dataclasses.is_dataclass(self.base):
            raise TypeError("HyperpriorWrapper needs a dataclass prior (its fields are replaced per group)")
        names = {f.name for f in dataclasses.fields(self.base)}
        unknown = set(self.hyperpriors) - names
        if unknown:
            raise ValueError(f"{type(self.base).__name__} has no fields {sorted(unknown)}; fields: {sorted(names)}")
        if self.group_size < 1:
            raise ValueError("group_size must be >= 1")

    def to_dict(self) -> dict[str, Any]:
        return {"type": "HyperpriorWrapper", "base": self.base.to_dict(), "group_size": self.group_size,
                "hyperpriors": {k: v.to_dict() for k, v in self.hyperpriors.items()}}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> HyperpriorWrapper:
        return cls(prior_from_dict(d["base"]), {k: hyperprior_from_dict(v) for k, v in d["hyperpriors"].items()},
                   d.get("group_size", 1))

    def sample(
        self, batch_size: int, n_points: int, n_features: int, *,
        generator: torch.Generator | None = None, device: torch.device | str = "cpu",
        n_context: int | None = None,
    ) -> Batch:
        """Draws `batch_size` datasets in groups; returns a `Batch` (`x`: `B x N x F`)."""
        n_groups = -(-batch_size // self.group_size)
        drawn = {k: h.sample((n_groups,), generator, device) for k, h in self.hyperpriors.items()}
        parts = []
        for g in range(n_groups):
            size = min(self.group_size, batch_size - g * self.group_size)
            prior = dataclasses.replace(self.base, **{k: float(v[g]) for k, v in drawn.items()})
            parts.append(prior.sample(size, n_points, n_features, generator=generator, device=device,
                                      n_context=n_context))
        meta = {k: torch.cat([p.meta[k] for p in parts]) for k in parts[0].meta if parts[0].meta[k].dim() >= 1}
        meta.update({k: v.repeat_interleave(self.group_size)[:batch_size] for k, v in drawn.items()})
        return Batch(x=torch.cat([p.x for p in parts]), y=torch.cat([p.y for p in parts]),
                     target_y=torch.cat([p.target_y for p in parts]), n_context=parts[0].n_context, meta=meta)

"""Random multi-layer-perceptron functions (a Bayesian-neural-network prior)."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from priors.batch import Batch
from priors.hyperpriors import (
    DataclassConfig,
    Hyperprior,
    LogNormal,
    Uniform,
    as_hyperprior,
    check_choices,
    check_positive_support,
)
from priors.registry import register_prior

ACTIVATIONS = ("tanh", "relu", "sin")
_HYPER_FIELDS = ("weight_scale", "noise")


@register_prior
@dataclass(frozen=True)
class BNNPrior(DataclassConfig):
    """Functions computed by randomly initialised MLPs, one network per dataset.

    Per dataset: depth uniform in `[min_depth, max_depth]` hidden layers, width uniform in
    `[min_width, max_width]` units, activation uniform among `activations`, weights
    `N(0, weight_scale^2 / fan_in)` with `weight_scale ~ LogNormal(0.3, 0.3)` and Gaussian
    observation noise of variance `noise ~ LogNormal(-4, 1.5)`. Inputs are uniform on the
    unit cube; `target_y` is noise-free. Vectorised: every network is padded to
    `max_width` units and `max_depth` layers, with inactive units and layers masked out.
    """

    min_depth: int = 1
    max_depth: int = 3
    min_width: int = 8
    max_width: int = 64
    activations: tuple[str, ...] = ACTIVATIONS
    weight_scale: Hyperprior = LogNormal(0.3, 0.3)
    bias_scale: Hyperprior = Uniform(0.0, 1.0)
    noise: Hyperprior = LogNormal(-4.0, 1.5)

    def __post_init__(self) -> None:
        for name in (*_HYPER_FIELDS, "bias_scale"):
            object.__setattr__(self, name, as_hyperprior(getattr(self, name)))
        for name in _HYPER_FIELDS:
            check_positive_support(name, getattr(self, name), allow_zero=True)
        object.__setattr__(self, "activations", tuple(self.activations))
        if not 1 <= self.min_depth <= self.max_depth or not 1 <= self.min_width <= self.max_width:
            raise ValueError("BNNPrior needs 1 <= min_depth <= max_depth and 1 <= min_width <= max_width")
        check_choices("activations", tuple(self.activations), ACTIVATIONS)

    def sample(
        self, batch_size: int, n_points: int, n_features: int, *,
        generator: torch.Generator | None = None, device: torch.device | str = "cpu",
        n_context: int | None = None,
    ) -> Batch:
        """Draws `batch_size` datasets; returns a `Batch` (`x`: `B x N x F`)."""
        b, w = batch_size, self.max_width
        kw = {"generator": generator, "device": device}
        depth = torch.randint(self.min_depth, self.max_depth + 1, (b,), **kw)
        width = torch.randint(self.min_width, self.max_width + 1, (b,), **kw)
        act_pool = torch.tensor([ACTIVATIONS.index(a) for a in self.activations], device=device)
        act = act_pool[torch.randint(len(self.activations), (b,), **kw)]
        weight_scale = self.weight_scale.sample((b,), generator, device)
        bias_scale = self.bias_scale.sample((b,), generator, device)
        noise = self.noise.sample((b,), generator, device)
        unit_mask = (torch.arange(w, device=device) < width.unsqueeze(-1)).float().unsqueeze(1)  # B x 1 x W

        x = torch.rand(b, n_points, n_features, **kw)
        h = self._layer(x, n_features, weight_scale, bias_scale, act, kw, n_features) * unit_mask
        for layer in range(1, self.max_depth):
            nxt = self._layer(h, w, weight_scale, bias_scale, act, kw, width.float()) * unit_mask
            active = (layer < depth).view(-1, 1, 1)
            h = torch.where(active, nxt, h)
        w_out = torch.randn(b, w, **kw) * unit_mask.squeeze(1) / width.float().sqrt().unsqueeze(-1)
        f = (h * w_out.unsqueeze(1)).sum(-1)
        y = f + noise.sqrt().unsqueeze(-1) * torch.randn(b, n_points, **kw)
        meta = {"depth": depth, "width": width, "activation": act, "weight_scale": weight_scale,
                "bias_scale": bias_scale, "noise": noise}
        return Batch(x=x, y=y, target_y=f, n_context=n_points // 2 if n_context is None else n_context,
                     meta=meta)

    def _layer(self, h, fan_in, weight_scale, bias_scale, act, kw, fan_in_scale):
        b = h.shape[0]
        fan = torch.as_tensor(fan_in_scale, dtype=torch.float32, device=h.device).expand(b)
        weights = torch.randn(b, fan_in, self.max_width, **kw) * (weight_scale / fan.sqrt()).view(-1, 1, 1)
        bias = torch.randn(b, 1, self.max_width, **kw) * bias_scale.view(-1, 1, 1)
        pre = h @ weights + bias
        out = torch.stack([torch.tanh(pre), torch.relu(pre), torch.sin(pre)])  # ACTIVATIONS order
        return out.gather(0, act.view(1, -1, 1, 1).expand(1, *pre.shape)).squeeze(0)

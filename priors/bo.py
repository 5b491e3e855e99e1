"""The prior of the BO surrogate: GP objectives with warped inputs, varied kernels and irrelevant dimensions."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from priors.batch import Batch
from priors.gp import sample_gp_functions
from priors.hyperpriors import (
    DataclassConfig,
    Hyperprior,
    LogNormal,
    as_hyperprior,
    check_choices,
    check_positive_support,
)
from priors.kernels import KERNELS
from priors.registry import register_prior

_HYPER_FIELDS = ("lengthscale", "outputscale", "noise", "warp_concentration", "local_width")
_PROBABILITIES = ("noiseless_probability", "warp_probability", "irrelevant_probability", "local_probability")


@register_prior
@dataclass(frozen=True)
class BOPrior(DataclassConfig):
    """Objectives for Bayesian optimisation: GP draws on the unit cube, made to look like what BO meets.

    Per dataset (hyperparameter defaults in brackets, inputs in units of `[0, 1]^F`):

    - **Kernel** among `kernels` (RBF, Matern-5/2, Matern-3/2), equally likely unless
      `kernel_weights` says otherwise.
    - **Irrelevant dimensions**: each input is irrelevant (its lengthscale infinite) with
      probability `irrelevant_probability` [0.2]; at least one is always relevant. Real tuning
      problems have parameters that hardly matter, and the surrogate should learn to ignore them.
    - **Lengthscales** (ARD): `lengthscale` [LogNormal(-0.9, 0.75), median 0.41] times
      `sqrt(R)` for `R` relevant dimensions, so functions do not grow rougher with dimension
      (the dimension-scaled lengthscale prior that Hvarfner et al., 2024, found to make plain
      GP-BO work in many dimensions).
    - **Outputscale** [LogNormal(0, 0.5)] and **noise** variance [LogNormal(-4.5, 1.5)], the
      noise replaced by 1e-6 (noise-free, as in simulations) with probability
      `noiseless_probability` [0.3].
    - **Input warping**: with probability `warp_probability` [0.5] each input goes through a
      Kumaraswamy CDF `1 - (1 - x^a)^b`, `a, b ~ warp_concentration` [LogNormal(0, 0.6)],
      which stretches or squeezes the ends of a range (a parameter that should have been on a
      log scale, an objective whose action is near one bound).
    - **Where the points lie**: uniform in the cube, except that with probability
      `local_probability` [0.5] a uniform fraction in `[0, 0.9]` of the rows lie around one
      random centre (Gaussian, std `local_width` [LogNormal(-2.3, 0.7), median 0.1], clipped
      to the cube). A BO run's observations crowd around its incumbents, so the model must
      read dense clusters as well as uniform designs; context and query rows are drawn alike.

    `y` is the function plus noise; `target_y` the noise-free function (the loss scores the
    model's predictive of `f(x)`). `meta` holds `lengthscale` (`B x F`, inf where irrelevant),
    `outputscale`, `noise`, `kernel` (index into `priors.kernels.KERNELS`) and `warped`
    (bool), each `B`, and `relevant` (`B x F` bool).
    """

    lengthscale: Hyperprior = LogNormal(-0.9, 0.75)
    outputscale: Hyperprior = LogNormal(0.0, 0.5)
    noise: Hyperprior = LogNormal(-4.5, 1.5)
    noiseless_probability: float = 0.3
    kernels: tuple[str, ...] = ("rbf", "matern52", "matern32")
    kernel_weights: tuple[float, ...] = ()
    irrelevant_probability: float = 0.2
    warp_probability: float = 0.5
    warp_concentration: Hyperprior = LogNormal(0.0, 0.6)
    local_probability: float = 0.5
    local_width: Hyperprior = LogNormal(-2.3, 0.7)

    def __post_init__(self) -> None:
        for name in _HYPER_FIELDS:
            object.__setattr__(self, name, as_hyperprior(getattr(self, name)))
            check_positive_support(name, getattr(self, name), allow_zero=name == "noise")
        for name in _PROBABILITIES:
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} must lie in [0, 1], got {value}")
        object.__setattr__(self, "kernels", tuple(self.kernels))
        check_choices("kernels", self.kernels, KERNELS)
        weights = tuple(self.kernel_weights) or tuple(1.0 for _ in self.kernels)
        if len(weights) != len(self.kernels) or min(weights) < 0 or sum(weights) <= 0:
            raise ValueError(f"kernel_weights {weights} must be non-negative, one per kernel")
        object.__setattr__(self, "kernel_weights", weights)

    def sample_hyperparameters(
        self, batch_size: int, n_features: int, generator: torch.Generator | None = None,
        device: torch.device | str = "cpu",
    ) -> dict[str, torch.Tensor]:
        """The per-dataset draws of the class docstring: `lengthscale` and `relevant` (`B x F`), the rest `B`."""
        b, f = batch_size, n_features
        pick = torch.multinomial(torch.tensor(self.kernel_weights, device=device), b, replacement=True,
                                 generator=generator)
        kernel = torch.tensor([KERNELS.index(k) for k in self.kernels], device=device)[pick]
        relevant = torch.rand(b, f, generator=generator, device=device) >= self.irrelevant_probability
        forced = torch.randint(0, f, (b,), generator=generator, device=device)
        relevant[torch.arange(b, device=device), forced] |= ~relevant.any(-1)
        n_relevant = relevant.sum(-1, keepdim=True).float()
        lengthscale = self.lengthscale.sample((b, f), generator, device) * n_relevant.sqrt()
        noise = self.noise.sample((b,), generator, device)
        noiseless = torch.rand(b, generator=generator, device=device) < self.noiseless_probability
        return {
            "lengthscale": torch.where(relevant, lengthscale, torch.inf),
            "relevant": relevant,
            "outputscale": self.outputscale.sample((b,), generator, device),
            "noise": torch.where(noiseless, torch.full_like(noise, 1e-6), noise),
            "kernel": kernel,
            "warped": torch.rand(b, generator=generator, device=device) < self.warp_probability,
        }

    def sample_inputs(self, batch_size: int, n_points: int, n_features: int,
                      generator: torch.Generator | None = None, device: torch.device | str = "cpu") -> torch.Tensor:
        """Inputs in `[0, 1]^F` (`B x N x F`): uniform, with a local cluster in some datasets (class docstring)."""
        b, n, f = batch_size, n_points, n_features
        x = torch.rand(b, n, f, generator=generator, device=device)
        centre = torch.rand(b, 1, f, generator=generator, device=device)
        width = self.local_width.sample((b, 1, 1), generator, device)
        local = (centre + width * torch.randn(b, n, f, generator=generator, device=device)).clamp(0.0, 1.0)
        fraction = 0.9 * torch.rand(b, 1, generator=generator, device=device)
        fraction = torch.where(torch.rand(b, 1, generator=generator, device=device) < self.local_probability,
                               fraction, torch.zeros_like(fraction))
        is_local = torch.rand(b, n, generator=generator, device=device) < fraction
        return torch.where(is_local.unsqueeze(-1), local, x)

    def warp(self, x: torch.Tensor, warped: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """`x` (`B x N x F`) through per-dataset, per-input Kumaraswamy CDFs where `warped` (`B`) is True."""
        b, _, f = x.shape
        a = self.warp_concentration.sample((b, 1, f), generator, x.device)
        c = self.warp_concentration.sample((b, 1, f), generator, x.device)
        bent = 1.0 - (1.0 - x.clamp(0.0, 1.0) ** a) ** c
        return torch.where(warped.view(b, 1, 1), bent, x)

    def sample(
        self, batch_size: int, n_points: int, n_features: int, *,
        generator: torch.Generator | None = None, device: torch.device | str = "cpu",
        n_context: int | None = None,
    ) -> Batch:
        """Draws `batch_size` objectives observed at `n_points` points of `[0, 1]^n_features`.

        Returns:
            A `Batch` with `x` (`B x N x F`, the unwarped points the optimiser sees), `y` and
            `target_y` (`B x N`), `n_context` default `N // 2`, and the class docstring's `meta`.
        """
        hyp = self.sample_hyperparameters(batch_size, n_features, generator, device)
        x = self.sample_inputs(batch_size, n_points, n_features, generator, device)
        f = sample_gp_functions(self.warp(x, hyp["warped"], generator), hyp, generator)
        eps = torch.randn(batch_size, n_points, generator=generator, device=device)
        y = f + hyp["noise"].sqrt().unsqueeze(-1) * eps
        return Batch(x=x, y=y, target_y=f, n_context=n_points // 2 if n_context is None else n_context, meta=hyp)



__all__ = ["BOPrior"]

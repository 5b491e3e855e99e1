"""Gaussian-process prior with per-dataset hyperparameters."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from priors.batch import Batch
from priors.hyperpriors import (
    DataclassConfig,
    Fixed,
    Hyperprior,
    LogNormal,
    as_hyperprior,
    check_choices,
    check_positive_support,
)
from priors.kernels import KERNELS, correlation, scaled_sq_dist
from priors.registry import register_prior

_HYPER_FIELDS = ("lengthscale", "outputscale", "noise")


def batched_cholesky(k: torch.Tensor, jitter: float = 1e-6, max_tries: int = 6) -> torch.Tensor:
    """Cholesky factors of a batch of PSD matrices, adding jitter where needed.

    Datasets whose factorisation fails get `jitter` times the mean diagonal added, ten
    times more on each retry; the others are untouched.

    Args:
        k: A `B x N x N` symmetric PSD tensor (float64 recommended).

    Returns:
        A `B x N x N` lower-triangular tensor `L` with `L @ L.T ~= k`.
    """
    eye = torch.eye(k.shape[-1], dtype=k.dtype, device=k.device)
    scale = k.diagonal(dim1=-2, dim2=-1).mean(-1).clamp_min(1e-12).view(-1, 1, 1)
    chol, info = torch.linalg.cholesky_ex(k)
    added = torch.zeros_like(scale)
    for i in range(max_tries):
        failed = info > 0
        if not failed.any():
            return chol
        added = torch.where(failed.view(-1, 1, 1), scale * jitter * 10.0**i, added)
        retry, info_retry = torch.linalg.cholesky_ex(k[failed] + added[failed] * eye)
        chol[failed] = retry
        info[failed] = info_retry
    raise RuntimeError("Cholesky failed even with jitter; the kernel matrix is not PSD")


@register_prior
@dataclass(frozen=True)
class GPPrior(DataclassConfig):
    """Functions drawn from a zero-mean GP whose hyperparameters are drawn per dataset.

    Each hyperparameter is a `priors.hyperpriors` object (`Fixed` for a constant).
    Defaults (in units of the unit-cube inputs):

    - `lengthscale` (one per feature, ARD): `LogNormal(-1.0, 0.75)`, median 0.37.
    - `outputscale` (signal variance): `LogNormal(0.0, 0.5)`, median 1.0.
    - `noise` (observation noise variance): `LogNormal(-4.0, 1.5)`, median 0.018.
    - `kernels`: drawn per dataset among `("rbf", "matern52")` with `kernel_weights`.

    Inputs are uniform on `[0, 1]^F`. `y` is `f + noise`; `target_y` is the noise-free `f`
    (set `noisy_targets=True` to score noisy targets instead).
    `meta` holds `lengthscale` (`B x F`), `outputscale` (`B`), `noise` (`B`) and `kernel`
    (`B`, index into `priors.kernels.KERNELS`).
    """

    lengthscale: Hyperprior = LogNormal(-1.0, 0.75)
    outputscale: Hyperprior = LogNormal(0.0, 0.5)
    noise: Hyperprior = LogNormal(-4.0, 1.5)
    kernels: tuple[str, ...] = ("rbf", "matern52")
    kernel_weights: tuple[float, ...] = field(default=())
    noisy_targets: bool = False

    def __post_init__(self) -> None:
        for name in _HYPER_FIELDS:
            object.__setattr__(self, name, as_hyperprior(getattr(self, name)))
        for name in _HYPER_FIELDS:
            check_positive_support(name, getattr(self, name), allow_zero=name == "noise")
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
        """Returns `lengthscale` (`B x F`), `outputscale`, `noise` and `kernel` (each `B`)."""
        weights = torch.tensor(self.kernel_weights, device=device)
        pick = torch.multinomial(weights, batch_size, replacement=True, generator=generator)
        kernel_index = torch.tensor([KERNELS.index(k) for k in self.kernels], device=device)[pick]
        return {
            "lengthscale": self.lengthscale.sample((batch_size, n_features), generator, device),
            "outputscale": self.outputscale.sample((batch_size,), generator, device),
            "noise": self.noise.sample((batch_size,), generator, device),
            "kernel": kernel_index,
        }

    def sample(
        self, batch_size: int, n_points: int, n_features: int, *,
        generator: torch.Generator | None = None, device: torch.device | str = "cpu",
        n_context: int | None = None,
    ) -> Batch:
        """Draws `batch_size` datasets of `n_points` rows and `n_features` inputs.

        Returns:
            A `Batch` with `x` (`B x N x F`), `y` and `target_y` (`B x N`).
        """
        hyp = self.sample_hyperparameters(batch_size, n_features, generator, device)
        x = torch.rand(batch_size, n_points, n_features, generator=generator, device=device)
        f = sample_gp_functions(x, hyp, generator)
        eps = torch.randn(batch_size, n_points, generator=generator, device=device)
        y = f + hyp["noise"].sqrt().unsqueeze(-1) * eps
        return Batch(
            x=x, y=y, target_y=y if self.noisy_targets else f,
            n_context=n_points // 2 if n_context is None else n_context, meta=hyp,
        )


def sample_gp_functions(
    x: torch.Tensor, hyperparameters: dict[str, torch.Tensor], generator: torch.Generator | None
) -> torch.Tensor:
    """Noise-free GP function values at `x` (`B x N x F`); returns `B x N` float32."""
    x64 = x.double()
    d2 = scaled_sq_dist(x64, hyperparameters["lengthscale"].double())
    k = correlation(d2, hyperparameters["kernel"]) * hyperparameters["outputscale"].double().view(-1, 1, 1)
    chol = batched_cholesky(k, jitter=1e-8)
    z = torch.randn(x.shape[:2], generator=generator, device=x.device, dtype=torch.float64)
    return (chol @ z.unsqueeze(-1)).squeeze(-1).to(x.dtype)


__all__ = ["GPPrior", "Fixed", "batched_cholesky", "sample_gp_functions"]

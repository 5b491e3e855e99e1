"""Predictives behind the `Predictive` interface: Gaussian (GPs) and the PFN's bar distribution."""

from __future__ import annotations

import math

import torch

from bo.surrogates.base import Predictive
from pfn.riemann import RiemannDistribution

_LOG_SQRT_2PI = 0.5 * math.log(2 * math.pi)
_INV_SQRT_2PI = 1 / math.sqrt(2 * math.pi)
_SQRT2 = math.sqrt(2.0)
_LOG_TINY = math.log(torch.finfo(torch.float64).tiny)
_ASYMPTOTIC_Z = -1e3  # below it, log h(z) by its asymptote (the bracket below cancels to ~1e-6 relative)


def log_h(z: torch.Tensor) -> torch.Tensor:
    """`log(phi(z) + z * Phi(z))`, the log of the standard normal's expected improvement at `z`, finite everywhere.

    For `z > -1` directly; below, `h(z) = phi(z) * (1 - |z| * Phi(z) / phi(z))` with the ratio
    written by the scaled complementary error function (`erfcx`), so nothing underflows until
    `|z| ~ 1e154`; for `z < -1e3` the asymptote `log phi(z) - 2 log|z|`.
    """
    z_hi = z.clamp_min(-1.0)
    direct = torch.log(torch.exp(-0.5 * z_hi**2) * _INV_SQRT_2PI + z_hi * 0.5 * torch.erfc(-z_hi / _SQRT2))
    z_mid = z.clamp(_ASYMPTOTIC_Z, -1.0)
    scaled = -0.5 * z_mid**2 + torch.log(_INV_SQRT_2PI + 0.5 * z_mid * torch.special.erfcx(-z_mid / _SQRT2))
    z_lo = z.clamp_max(_ASYMPTOTIC_Z)
    asymptote = -0.5 * z_lo**2 - _LOG_SQRT_2PI - 2 * torch.log(-z_lo)
    return torch.where(z > -1.0, direct, torch.where(z > _ASYMPTOTIC_Z, scaled, asymptote))


class GaussianPredictive(Predictive):
    """Independent normal predictives.

    Args:
        mean: A `batch_shape` tensor of means.
        variance: A `batch_shape` tensor of variances (floored at 1e-12 for the acquisition values).
        clip: The bounds to which the surrogate clipped its observations; the acquisition values
            measure improvement on `best` clipped alike.
    """

    def __init__(self, mean: torch.Tensor, variance: torch.Tensor,
                 clip: tuple[float, float] = (-math.inf, math.inf)) -> None:
        self._mean, self._variance, self.clip = mean, variance, clip

    @property
    def batch_shape(self) -> torch.Size:
        return self._mean.shape

    @property
    def mean(self) -> torch.Tensor:
        return self._mean

    @property
    def variance(self) -> torch.Tensor:
        return self._variance

    @property
    def stddev(self) -> torch.Tensor:
        return self._variance.clamp_min(1e-12).sqrt()

    def _z(self, best: float | torch.Tensor) -> torch.Tensor:
        return (torch.as_tensor(best, dtype=self._mean.dtype).clamp(*self.clip) - self._mean) / self.stddev

    def quantile(self, q: float | torch.Tensor) -> torch.Tensor:
        q = torch.as_tensor(q, dtype=self._mean.dtype)
        return self._mean + self.stddev * _SQRT2 * torch.erfinv(2 * q - 1)

    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        eps = torch.randn(n, *self.batch_shape, generator=generator, dtype=self._mean.dtype)
        return self._mean + self.stddev * eps

    def expected_improvement(self, best: float | torch.Tensor) -> torch.Tensor:
        return self.log_expected_improvement(best).exp()

    def log_expected_improvement(self, best: float | torch.Tensor) -> torch.Tensor:
        return self.stddev.log() + log_h(self._z(best))

    def probability_of_improvement(self, best: float | torch.Tensor) -> torch.Tensor:
        return 0.5 * torch.erfc(-self._z(best) / _SQRT2)


class BarPredictive(Predictive):
    """A PFN's bar (Riemann) distribution behind the `Predictive` interface (minimisation).

    Args:
        dist: A `RiemannDistribution` in the units of the surrogate's `y`, with `batch_shape` the queries'.
        clip: The bounds to which the surrogate clipped its observations (`OutcomeTransform`);
            the acquisition values measure improvement on `best` clipped alike, the best value as
            the surrogate sees it (an observed `-1e200` is no target for a predictive of the
            clipped observations).
    """

    def __init__(self, dist: RiemannDistribution, clip: tuple[float, float] = (-math.inf, math.inf)) -> None:
        self.dist = dist
        self.clip = clip

    @property
    def batch_shape(self) -> torch.Size:
        return self.dist.batch_shape

    @property
    def mean(self) -> torch.Tensor:
        return self.dist.mean

    @property
    def variance(self) -> torch.Tensor:
        return self.dist.variance

    def quantile(self, q: float | torch.Tensor) -> torch.Tensor:
        return self.dist.icdf(q)

    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        return self.dist.sample((n,), generator=generator)

    def _best(self, best: float | torch.Tensor) -> torch.Tensor:
        return torch.as_tensor(best, dtype=torch.float64).clamp(*self.clip)

    def expected_improvement(self, best: float | torch.Tensor) -> torch.Tensor:
        """E[max(best - Y, 0)] in closed form over the buckets (zero far beyond the right of the bars'
        range, where float32 underflows; `log_expected_improvement` stays informative there)."""
        return self.dist.expected_improvement(self._best(best), maximize=False)

    def log_expected_improvement(self, best: float | torch.Tensor) -> torch.Tensor:
        """log E[max(best - Y, 0)], summed in log space over the buckets
        (`RiemannDistribution.log_expected_improvement`): finite where EI underflows, floored at
        the log of float64's smallest normal where even that fails."""
        return self.dist.log_expected_improvement(self._best(best), maximize=False).clamp_min(_LOG_TINY)

    def probability_of_improvement(self, best: float | torch.Tensor) -> torch.Tensor:
        return self.dist.probability_of_improvement(self._best(best), maximize=False)

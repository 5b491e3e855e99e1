"""`MixturePredictive`: an equal-weight mixture of Gaussians, the predictive of ensemble-like surrogates.

A deep ensemble (`"ensemble"`, one Gaussian per network) and a BNN sampled by MCMC (`"hmc"`,
one Gaussian per posterior draw of the weights) both predict, at each query point, `S`
Gaussians `N(mu_s, sigma_s^2)` with equal weights `1 / S`. Their statistics:

- mean `(1/S) sum_s mu_s`; variance `(1/S) sum_s sigma_s^2 + (1/S) sum_s (mu_s - mean)^2` (the
  members' noise plus the spread of their means, the law of total variance);
- CDF, PI and EI as the averages of the members' closed forms (EI and PI are linear in the
  distribution); log-EI by `logsumexp` over the members' `log sigma_s + log_h(z_s)`, finite
  where every member's EI underflows;
- quantiles by bisection on the mixture's CDF, vectorised over the batch, with one Newton step
  taken with gradients so that the quantile is differentiable by the implicit function theorem;
- draws by choosing a member uniformly, then a normal draw around it (reparameterised).

BoTorch: the members' means are what `botorch.posteriors.ensemble.EnsemblePosterior` takes
(`values` of shape `b x s x q x m`, here `means.movedim(0, -2).unsqueeze(-1)` for `b x q`
queries); an adapter to BoTorch's MC acquisitions would wrap them so, and add each member's
observation noise to its draws itself (the ensemble posterior carries no noise). `bo.optimize`
uses the `Predictive` interface below.
"""

from __future__ import annotations

import math

import torch

from bo.surrogates.base import Predictive
from bo.surrogates.outcome import OutcomeTransform
from bo.surrogates.predictive import log_h

_SQRT2 = math.sqrt(2.0)
_LOG_SQRT_2PI = 0.5 * math.log(2 * math.pi)
_MIN_VARIANCE = 1e-12
_BISECTION_STEPS = 64  # halves the bracket to below float64 resolution from any finite start


class MixturePredictive(Predictive):
    """An equal-weight mixture of `S` independent Gaussians at each query point.

    Args:
        means: An `S x batch_shape` tensor, the members' means.
        variances: An `S x batch_shape` tensor (or one broadcastable to it, e.g. `S x 1`), the
            members' variances (floored at 1e-12).
        clip: The bounds to which the surrogate clipped its observations; the acquisition values
            measure improvement on `best` clipped alike.
    """

    def __init__(self, means: torch.Tensor, variances: torch.Tensor,
                 clip: tuple[float, float] = (-math.inf, math.inf)) -> None:
        if means.dim() < 1:
            raise ValueError("means must have a leading member dimension (S x batch_shape)")
        self.means = means
        self.variances = variances.clamp_min(_MIN_VARIANCE).expand_as(means)
        self.clip = clip

    @classmethod
    def from_standardised(cls, means: torch.Tensor, variances: torch.Tensor,
                          transform: OutcomeTransform) -> MixturePredictive:
        """The mixture in `y` units from one in the units of `transform` (an `OutcomeTransform` without
        its power step, `lam = 1`, so affine: `y = loc + scale * z`); shapes as in the constructor."""
        if transform.lam != 1.0:
            raise ValueError("MixturePredictive.from_standardised needs an OutcomeTransform with power=False")
        loc = transform.loc + transform.scale * transform.loc2
        scale = transform.scale * transform.scale2
        return cls(loc + scale * means, scale**2 * variances, clip=(transform.lo, transform.hi))

    @property
    def n_members(self) -> int:
        return self.means.shape[0]

    @property
    def batch_shape(self) -> torch.Size:
        return self.means.shape[1:]

    @property
    def mean(self) -> torch.Tensor:
        return self.means.mean(0)

    @property
    def variance(self) -> torch.Tensor:
        return self.variances.mean(0) + (self.means - self.mean).square().mean(0)

    @property
    def stddev(self) -> torch.Tensor:
        return self.variance.clamp_min(_MIN_VARIANCE).sqrt()

    def _z(self, value: torch.Tensor) -> torch.Tensor:
        """`(value - mu_s) / sigma_s`, `S x batch_shape` (`value` broadcast to `batch_shape`)."""
        return (value - self.means) / self.variances.sqrt()

    def cdf(self, value: float | torch.Tensor) -> torch.Tensor:
        """P(Y <= value), `batch_shape`."""
        value = torch.as_tensor(value, dtype=self.means.dtype)
        return (0.5 * torch.erfc(-self._z(value) / _SQRT2)).mean(0)

    def log_prob(self, value: float | torch.Tensor) -> torch.Tensor:
        """The log of the mixture's density at `value` (broadcast to `batch_shape`), by `logsumexp`."""
        value = torch.as_tensor(value, dtype=self.means.dtype)
        log_member = -0.5 * self._z(value) ** 2 - 0.5 * self.variances.log() - _LOG_SQRT_2PI
        return torch.logsumexp(log_member, 0) - math.log(self.n_members)

    def pdf(self, value: float | torch.Tensor) -> torch.Tensor:
        """The mixture's density at `value`, `batch_shape`."""
        return self.log_prob(value).exp()

    def quantile(self, q: float | torch.Tensor) -> torch.Tensor:
        """The `q`-quantile, `batch_shape`: bisection on the CDF between the members' extreme
        quantiles (the mixture's lies between them), then one Newton step with gradients."""
        q = torch.as_tensor(q, dtype=self.means.dtype).expand(self.batch_shape)
        with torch.no_grad():
            means, stds = self.means.detach(), self.variances.detach().sqrt()
            member_q = means + stds * _SQRT2 * torch.erfinv(2 * q - 1)
            lo, hi = member_q.min(0).values, member_q.max(0).values
            for _ in range(_BISECTION_STEPS):
                mid = 0.5 * (lo + hi)
                below = (0.5 * torch.erfc(-(mid - means) / (stds * _SQRT2))).mean(0) < q
                lo, hi = torch.where(below, mid, lo), torch.where(below, hi, mid)
            root = 0.5 * (lo + hi)
        return root - (self.cdf(root) - q) / self.pdf(root).clamp_min(torch.finfo(self.means.dtype).tiny)

    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """`n x batch_shape` draws: a member uniformly at random, then a normal draw from it."""
        index = torch.randint(self.n_members, (n, *self.batch_shape), generator=generator)
        eps = torch.randn(n, *self.batch_shape, generator=generator, dtype=self.means.dtype)
        return self.means.gather(0, index) + self.variances.sqrt().gather(0, index) * eps

    def _best(self, best: float | torch.Tensor) -> torch.Tensor:
        return torch.as_tensor(best, dtype=self.means.dtype).clamp(*self.clip)

    def expected_improvement(self, best: float | torch.Tensor) -> torch.Tensor:
        return self.log_expected_improvement(best).exp()

    def log_expected_improvement(self, best: float | torch.Tensor) -> torch.Tensor:
        """`log((1/S) sum_s sigma_s h(z_s))` by `logsumexp`, `batch_shape`."""
        log_member = 0.5 * self.variances.log() + log_h(self._z(self._best(best)))
        return torch.logsumexp(log_member, 0) - math.log(self.n_members)

    def probability_of_improvement(self, best: float | torch.Tensor) -> torch.Tensor:
        return self.cdf(self._best(best))

"""Outcome transform for surrogates trained on standardised targets: standardise, Yeo-Johnson, standardise.

`y` is standardised (mean 0, standard deviation 1, in float64, so values far from zero keep
their precision), then power-transformed by Yeo-Johnson with the exponent `lambda` that makes
the observations most normal (maximum likelihood, `most_normal_exponent`), then
standardised again. A monotone transform keeps the order of the observations, so the best
point stays the best; what it removes is skew: an objective with a few very bad values (a
long right tail when minimising, as most losses and test functions have) would, merely
standardised, crush all the good values together near the bottom of the range, which no
smooth GP-like function drawn from a prior looks like.

Extreme values are clipped first, by a fixed rule. The robust spread is `1.4826 * MAD`, the
standard deviation of normal data (the mean absolute deviation from the median where more than
half the values are equal). A value further than `ABSURD_SPREADS` (1e4) spreads from the median
is absurd, and is brought in to the farther of two bounds on its side: the most extreme value
that is not absurd, and `EXTREME_SPREADS` (100) spreads from the median. Everything is also kept
within a quarter of float64's largest number. An objective that returns `-1e200` or `1e308`
among values of order one is then seen as returning a value 100 spreads away (still the best or
the worst observation), instead of turning every other value into the same number after
standardisation or overflowing the network's float32 inputs. Ordinary values are never moved,
even when most observations crowd around an incumbent and the spread collapses: on Branin, 20
random points and 30-300 points within 0.05 of the optimum, the absurd bound lies at 5.6e3 to
1.1e4 against a largest value of 123-218 (a plain 100-spread rule clipped 4-11 of the 20 random
values). The clipping is part of the transform (`__call__` clips with the bounds fitted to the
observations); the rule is monotone, so the order of the observations is kept.

`lambda` is kept within `[0, 2]` (`1` is the identity; below 1 compresses large values, above 1
small ones): on that range the inverse transform is defined on the whole real line, so the
bucket borders of a predictive can be mapped back however far out they lie.
"""

from __future__ import annotations

import math

import torch
from scipy import optimize

_MIN_POWER_FIT = 3  # observations needed to fit lambda; fewer are only standardised
_LAMBDA_EPS = 1e-8


ABSURD_SPREADS = 1e4  # observations further from the median, in robust spreads, are clipped ...
EXTREME_SPREADS = 100.0  # ... to at most this far, or to the most extreme ordinary observation if further
_FLOAT_LIMIT = torch.finfo(torch.float64).max / 4  # sums and differences of clipped values stay finite
_MAD_TO_STD = 1.4826  # the MAD of normal data times this is their standard deviation
_MEAN_AD_TO_STD = math.sqrt(math.pi / 2)  # likewise for the mean absolute deviation


def _standardise(y: torch.Tensor) -> tuple[float, float]:
    """Mean and standard deviation of `y` (within `+-_FLOAT_LIMIT`), the latter 1.0 where it is zero or
    undefined (n < 2).

    Computed on `y` scaled by a power of two to below 1 in magnitude (exact, so the result is
    bit for bit that of `y` itself), then scaled back: no sum or square overflows.
    """
    _, exponent = torch.frexp(y.abs().max())
    scaled = torch.ldexp(y, -exponent)
    mean = float(torch.ldexp(scaled.mean(), exponent))
    std = float(torch.ldexp(scaled.std(), exponent)) if y.numel() > 1 else 0.0
    return mean, std if std > 0 and math.isfinite(std) else 1.0


def clip_bounds(y: torch.Tensor) -> tuple[float, float]:
    """The bounds `(lo, hi)` to which `OutcomeTransform` clips `y` (`n`, float64): see the module docstring."""
    y = y.clamp(-_FLOAT_LIMIT, _FLOAT_LIMIT)
    median = y.median()
    deviation = (y - median).abs()
    spread = _MAD_TO_STD * float(deviation.median())
    if spread == 0.0:
        spread = _MEAN_AD_TO_STD * float(deviation.mean())
    if spread == 0.0:  # a constant
        return -_FLOAT_LIMIT, _FLOAT_LIMIT
    ordinary = y[deviation <= ABSURD_SPREADS * spread]  # never empty: the median's neighbours are in it
    lo = min(float(median) - EXTREME_SPREADS * spread, float(ordinary.min()))
    hi = max(float(median) + EXTREME_SPREADS * spread, float(ordinary.max()))
    return max(lo, -_FLOAT_LIMIT), min(hi, _FLOAT_LIMIT)


def yeo_johnson(x: torch.Tensor, lam: float) -> torch.Tensor:
    """The Yeo-Johnson transform of `x` (any shape, float64) with exponent `lam` in `[0, 2]`."""
    pos = x.clamp_min(0.0)
    neg = x.clamp_max(0.0)
    up = torch.log1p(pos) if abs(lam) < _LAMBDA_EPS else ((pos + 1) ** lam - 1) / lam
    down = -torch.log1p(-neg) if abs(lam - 2) < _LAMBDA_EPS else -((1 - neg) ** (2 - lam) - 1) / (2 - lam)
    return torch.where(x >= 0, up, down)


def inverse_yeo_johnson(z: torch.Tensor, lam: float) -> torch.Tensor:
    """The inverse of `yeo_johnson` (defined for all real `z` when `lam` is in `[0, 2]`)."""
    pos = z.clamp_min(0.0)
    neg = z.clamp_max(0.0)
    up = torch.expm1(pos) if abs(lam) < _LAMBDA_EPS else (1 + lam * pos) ** (1 / lam) - 1
    down = -torch.expm1(-neg) if abs(lam - 2) < _LAMBDA_EPS else 1 - (1 - (2 - lam) * neg) ** (1 / (2 - lam))
    return torch.where(z >= 0, up, down)


def most_normal_exponent(u: torch.Tensor) -> float:
    """The Yeo-Johnson exponent in `[0, 2]` under which `u` (`n`, float64, not constant) looks most normal.

    Maximises the profile log-likelihood `-n/2 log var(yeo_johnson(u, lam)) + (lam - 1) *
    sum(sign(u) log1p|u|)` (scipy's `yeojohnson_llf`) by `fminbound` on `[0, 2]`: where the
    likelihood is unimodal in `lam` (the usual case), the maximiser of
    `scipy.stats.yeojohnson_normmax` clipped to `[0, 2]`, without that function's per-call
    overhead (about 15 ms for 100 observations, which a BO step would pay on every fit).
    """
    n = u.numel()
    jacobian = float((u.sign() * u.abs().log1p()).sum())

    def negative_llf(lam: float) -> float:
        var = float(yeo_johnson(u, lam).var(unbiased=False))
        return 0.5 * n * math.log(var) - (lam - 1) * jacobian if 0 < var < math.inf else math.inf

    lam = float(optimize.fminbound(negative_llf, 0.0, 2.0, xtol=1.48e-8))
    return lam if math.isfinite(lam) else 1.0


class OutcomeTransform:
    """Maps objective values `y` to the surrogate's units `z` (and predictive borders back), fitted on `y`.

    `z = (yeo_johnson((clip(y) - loc) / scale, lam) - loc2) / scale2`, with `clip` to the bounds
    `lo, hi` of `clip_bounds`; `power=False` fixes `lam = 1`, a plain standardisation.

    Args:
        y: An `n` tensor of observed values (finite).
        power: Fit the Yeo-Johnson exponent (with at least 3 distinct observations).
    """

    def __init__(self, y: torch.Tensor, power: bool = True) -> None:
        self.lo, self.hi = clip_bounds(y.double())
        y = y.double().clamp(self.lo, self.hi)
        self.loc, self.scale = _standardise(y)
        u = (y - self.loc) / self.scale
        self.lam = 1.0
        if power and y.numel() >= _MIN_POWER_FIT and bool((u != u[0]).any()):
            self.lam = most_normal_exponent(u)
        self.loc2, self.scale2 = _standardise(yeo_johnson(u, self.lam))

    def __call__(self, y: torch.Tensor) -> torch.Tensor:
        """`y` (any shape) in the surrogate's units, float64."""
        return (yeo_johnson((y.double().clamp(self.lo, self.hi) - self.loc) / self.scale, self.lam) - self.loc2) \
            / self.scale2

    def untransform_standardised(self, z: torch.Tensor) -> torch.Tensor:
        """`z` (any shape, the surrogate's units) mapped back to standardised units `(y - loc) / scale`, float64.

        Monotone increasing; the last affine step to `y` (`loc + scale * .`) is left to the caller,
        which keeps it in float64 (`RiemannDistribution.affine`).
        """
        return inverse_yeo_johnson(self.loc2 + self.scale2 * z.double(), self.lam)

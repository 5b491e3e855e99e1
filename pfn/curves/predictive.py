"""`CurvePredictive`: the model's predictive of a metric at future epochs, in the metric's own units."""

from __future__ import annotations

from functools import cache

import numpy as np
import torch

from pfn.curves.normalize import CurveScale
from pfn.riemann import RiemannDistribution, check_probabilities

MEAN_NODES = 64  # Gauss-Legendre nodes in the quantile level for the mean through a nonlinear map


@cache
def _quantile_rule(n: int) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Gauss-Legendre nodes and weights (`n` each) on the quantile levels `(0, 1)`."""
    nodes, weights = np.polynomial.legendre.leggauss(n)
    return tuple((nodes + 1.0) / 2.0), tuple(weights / 2.0)


class CurvePredictive:
    """Predictive distributions of a metric at epochs of several curves, in the metric's units.

    The model's bar distribution of the prior-scale value `z` with the curves' monotone maps
    (`pfn.curves.normalize.CurveScale`); every statistic is that of `v = denormalize(z)`,
    computed exactly through the map (quantiles map back, densities get the log-Jacobian).

    The batch shape is `n_curves x horizon` as returned by `LCPFN.predict` (epoch `e` at index
    `e - 1`, so `[:, -1]` is the horizon), or any shape after indexing (`pred[3]`,
    `pred[:, -1]`). At observed epochs (`observed` True: the epoch is in the curve's context)
    every statistic is NaN: the model predicts unseen epochs only. Values passed in (`values`,
    `value`) broadcast to the batch shape, e.g. `n_curves x 1` for one value per curve of a
    `n_curves x horizon` predictive. All outputs are float64 tensors.

    Args:
        normalized: A `RiemannDistribution` of `z` with batch shape `batch_shape`.
        scale: The maps, `offset` and `scale` of shape `batch_shape` (`CurveScale.expand`).
        observed: A `batch_shape` bool tensor, True at epochs in the context.
    """

    def __init__(self, normalized: RiemannDistribution, scale: CurveScale, observed: torch.Tensor) -> None:
        shape = normalized.batch_shape
        if observed.shape != shape or scale.offset.shape != shape or scale.scale.shape != shape:
            raise ValueError(f"observed {tuple(observed.shape)} and the scale's offset {tuple(scale.offset.shape)} "
                             f"must have the distribution's batch shape {tuple(shape)}")
        self.normalized, self.scale, self.observed = normalized, scale, observed
        self.metric = scale.metric

    @property
    def batch_shape(self) -> torch.Size:
        return self.normalized.batch_shape

    def __getitem__(self, index) -> CurvePredictive:
        """The predictives at `index` of the batch, e.g. `pred[:, -1]` for the horizon of every curve."""
        return CurvePredictive(self.normalized[index], self.scale[index], self.observed[index])

    def __repr__(self) -> str:
        return (f"CurvePredictive(batch_shape={tuple(self.batch_shape)}, direction={self.metric.direction!r}, "
                f"bounds={self.metric.bounds})")

    def _unseen(self, t: torch.Tensor) -> torch.Tensor:
        """`t` (`... x batch_shape`) as float64 with NaN at the observed epochs."""
        return torch.where(self.observed, torch.nan, t.double())

    def _values(self, values: torch.Tensor | float) -> torch.Tensor:
        """Metric values broadcast to `batch_shape` (float64)."""
        values = torch.as_tensor(values, dtype=torch.float64, device=self.observed.device)
        try:
            return values.expand(self.batch_shape)
        except RuntimeError:
            raise ValueError(f"values of shape {tuple(values.shape)} do not broadcast to the predictive's "
                             f"{tuple(self.batch_shape)} (n_curves x horizon; use n_curves x 1 for one value per "
                             "curve)") from None

    def _worse(self, values: torch.Tensor | float, strictly: bool) -> torch.Tensor:
        """`P(V at most as good as values)`, or `P(V strictly worse)` (`batch_shape`).

        `F_z(z(values))`; with a lone good end `g`, the predictive's (rare) mass at `z >= 1` sits on
        `g` itself, so at `g` the first is 1 and the second `F_z(1)`; beyond `g` both are 1.
        """
        values = self._values(values)
        worse = self.normalized.cdf(self.scale.normalize(values)).double()
        g = self.metric.good_bound
        if g is None:
            return worse
        at_or_beyond = torch.isinf(self.metric.progress(values))
        if strictly:
            at_or_beyond = at_or_beyond & (values != g)
        return torch.where(at_or_beyond, 1.0, worse)

    # --- statistics in metric units -------------------------------------------------------
    def quantile(self, q: torch.Tensor | float) -> torch.Tensor:
        """The `q`-quantile of the metric (`batch_shape`); `q` in `[0, 1]` (else a `ValueError`), broadcast to
        `batch_shape`."""
        q = check_probabilities(q, "q")
        level = q if self.metric.direction == "maximize" else 1.0 - q
        return self._unseen(self.scale.denormalize(self.normalized.icdf(level)))

    icdf = quantile

    def cdf(self, values: torch.Tensor | float) -> torch.Tensor:
        """`P(V <= values)` (`batch_shape`), whatever the direction."""
        if self.metric.direction == "maximize":
            return self._unseen(self._worse(values, strictly=False))
        return self._unseen(1.0 - self._worse(values, strictly=True))

    def prob_above(self, value: torch.Tensor | float) -> torch.Tensor:
        """The probability of ending better than `value` in the metric's direction (`batch_shape`).

        `P(V > value)` when maximising and `P(V < value)` when minimising.
        """
        return self._unseen(1.0 - self._worse(value, strictly=False))

    def log_prob(self, values: torch.Tensor | float) -> torch.Tensor:
        """Log density of the metric at `values` (`batch_shape`), with the log-Jacobian of the map.

        `-inf` at and beyond a lone declared good end (no mass lies there). With both bounds
        declared, values just outside them keep the model's small tail density.
        """
        values = self._values(values)
        z = self.scale.normalize(values)
        defined = torch.isfinite(self.metric.progress(values))
        lp = self.normalized.log_prob(torch.where(defined, z, 0.0)) + self.scale.log_jacobian(values)
        return self._unseen(torch.where(defined, lp, -torch.inf))

    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """`n x batch_shape` draws of the metric."""
        return self._unseen(self.scale.denormalize(self.normalized.sample((n,), generator=generator)))

    @property
    def mean(self) -> torch.Tensor:
        """The mean of the metric (`batch_shape`), computed in metric units.

        Exact where the map is affine (both bounds declared). Otherwise `int_0^1 v(F_z^-1(q)) dq`
        by `MEAN_NODES`-point Gauss-Legendre quadrature over the quantile level, never the mean of
        `z` mapped back. Its outermost nodes are at `q = 3.5e-4` and `1 - 3.5e-4`: a bent map sends
        the predictive's mass at the prior's 0 and 1 (where the prior clips its curves) to the
        metric's ends, infinite where no bound is declared, which would make the exact mean
        infinite; the quadrature sees such mass only where it exceeds those levels (the mean is
        then infinite too). The weighted sum runs where it cannot overflow (`CurveScale.weighted_value`),
        so metrics near the float64 limit (a loss near 1e300) keep a finite mean. For a point
        prediction that is always finite, use `quantile(0.5)`.
        """
        if not self.scale.bends:
            return self._unseen(self.scale.denormalize(self.normalized.mean))
        nodes, weights = _quantile_rule(MEAN_NODES)
        z = (self.normalized.icdf(q) for q in nodes)  # one node at a time: no `MEAN_NODES x batch` table
        return self._unseen(self.scale.weighted_value(z, weights))


__all__ = ["MEAN_NODES", "CurvePredictive"]

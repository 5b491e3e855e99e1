"""The monotone normalisation of a metric to the curve prior's scale: `[0, 1]`, higher is better.

A metric `v` (accuracy, error rate, loss, reward, ...) is described by its `direction`
(`"maximize"` or `"minimize"`) and its `bounds = (lo, hi)`, either of which may be None
(unknown). Its *good end* is `hi` when maximising and `lo` when minimising. The prior's
scale `z` is reached in two steps.

1. Progress `w`, growing as the metric improves (`s = +1` maximising, `-1` minimising):

   | declared bounds | `w(v)` | typical metric |
   |---|---|---|
   | both `lo` and `hi` | `s v` | accuracy in `[0, 1]`, error rate, a score in `[0, 100]` |
   | only the good end `g` | `-log |v - g|` | a loss in `[0, inf)`, given as `bounds=(0, None)` |
   | none, or only the bad end | `s v` | a reward of unknown range |

   With only the good end known, progress toward it is multiplicative (a loss halves, then
   halves again), hence the log of the distance to it; `v = g` is `w = inf`.

2. The map `a = (w - offset) / scale`, then `z = a`, bent outside the observed range unless
   both bounds are declared:

   - Both bounds declared: fixed and affine, `z = (v - lo) / (hi - lo)` (maximise) or
     `(hi - v) / (hi - lo)` (minimise), the prior's `[0, 1]` exactly.
   - Otherwise fitted per curve on its observed values: the worst goes to `Z_WORST = 0.3`
     and the best to `Z_BEST = 0.5`. A curve whose observed `w` spans less than a floor (one
     epoch, a flat curve) gets the floor instead: `MIN_SPAN * max(1, |w|)` for `w = s v` (a
     relative precision, unchanged by a change of units), `MIN_SPAN` for the log-distance `w`
     (a change of units only shifts it, so the floor must not grow with `|w|`; a floor of 10% of
     `|log v|` made a loss near 1e300 spread over many orders of magnitude, its mean infinite).
     Each curve's map depends on its own values only, so a curve's prediction never depends on
     the other curves of a call.
     Outside `[Z_WORST, Z_BEST]` the map bends so that the whole range of `w` fits in `(0, 1)`:
     `z = 1 - (1 - Z_BEST) exp(-(a - Z_BEST) / (1 - Z_BEST))` above and `z = Z_WORST exp((a -
     Z_WORST) / Z_WORST)` below (continuous with their slopes at the knees). An improvement by
     the observed range lands at 0.66, by five times it at 0.93; `z -> 1` at the good end
     (`v -> g`, or infinity without a known good end) and `z -> 0` toward the bad end. The
     context itself lies in `[Z_WORST, Z_BEST]`, where the map is affine.

   Why these choices (measured on the real curves of `benchmarks/data/` with a small model,
   by the log-likelihood of final values): the model's predictive has almost no density
   outside `[0, 1]` (its outermost buckets hold the prior's clipped values at exactly 0 and
   1), so a value mapped there, e.g. a loss that improves or diverges far beyond what its
   first epochs showed, would get a log density of -1e6 or worse. Bending into `(0, 1)` keeps
   every value on the prior's scale; the price is that the predictive's mass at 0 and 1 (the
   prior's clipped "floor" and "ceiling") maps to the ends of the metric, so the mean is
   infinite when that mass sits at an infinite end. Among (`Z_WORST`, `Z_BEST`) in
   {(0.1, 0.4), (0.2, 0.4), (0.2, 0.5), (0.3, 0.5), ...}, (0.3, 0.5) had nearly the best
   log-likelihood of losses and the fewest infinite means.

Every step is strictly monotone with a closed-form inverse, so quantiles map back exactly
(the `q`-quantile of `z` is that of `v` when maximising, the `1 - q`-quantile when
minimising); densities pick up the log-Jacobian `log |dz/dv|`. A bent map sends the
predictive's mass at `z >= 1` to the good end (`g`, or infinity) and at `z <= 0` to
the bad end (infinity). Values outside the declared bounds, or on a lone good bound (where
`w` is infinite), are rejected with a `ValueError`; nothing is clipped. A lone declared bad
end only checks the values.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import torch

DIRECTIONS = ("maximize", "minimize")
Z_WORST, Z_BEST = 0.3, 0.5  # where the worst and best observed values of a curve land (estimated maps)
MIN_SPAN = 0.1  # the smallest observed range of a curve's progress w (relative to max(1, |w|) for w = s v)


def _bound(value: Any, name: str) -> float:
    """One end of `bounds` as a float (`None` is unknown: -inf for `lo`, inf for `hi`)."""
    if value is None:
        return -math.inf if name == "lo" else math.inf
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"bounds: {name} must be a number or None (unknown), got {value!r}")
    value = float(value)
    if math.isnan(value):
        raise ValueError(f"bounds: {name} is NaN; give a number, or None for an unknown bound")
    return value


def check_bounds(bounds: Any) -> tuple[float, float]:
    """A metric's declared `bounds` as `(lo, hi)` floats (unknown ends infinite); the one validator of bounds.

    Raises a `TypeError` for anything but None or a sequence of numbers/None, and a `ValueError`
    for a sequence that is not a pair, a NaN end or `lo >= hi`.
    """
    if bounds is None:
        return -math.inf, math.inf
    try:
        ends = () if isinstance(bounds, (str, bytes)) else tuple(bounds)
    except TypeError:
        ends = ()
    if not ends:
        raise TypeError(f"bounds must be a pair (lo, hi) (None for an unknown bound), or None, got {bounds!r}")
    if len(ends) != 2:
        raise ValueError(f"bounds must be a pair (lo, hi) (None for an unknown bound), got {bounds!r}")
    lo, hi = _bound(ends[0], "lo"), _bound(ends[1], "hi")
    if not lo < hi:
        raise ValueError(f"bounds must satisfy lo < hi, got ({lo}, {hi})")
    return lo, hi


@dataclass(frozen=True)
class Metric:
    """A metric's direction and declared bounds; they pick the progress `w` of the module docstring.

    Args:
        direction: `"maximize"` (accuracy, reward) or `"minimize"` (loss, error).
        bounds: `(lo, hi)`; either may be None (or -inf / inf) for unknown; None for both.
    """

    direction: str = "maximize"
    bounds: tuple[float | None, float | None] | None = None

    def __post_init__(self) -> None:
        if self.direction not in DIRECTIONS:
            raise ValueError(f"direction must be one of {DIRECTIONS}, got {self.direction!r}")
        object.__setattr__(self, "bounds", check_bounds(self.bounds))

    @property
    def sign(self) -> float:
        """+1 when maximising, -1 when minimising."""
        return 1.0 if self.direction == "maximize" else -1.0

    @property
    def fixed(self) -> bool:
        """True if both bounds are declared: the map to `[0, 1]` is fixed, not fitted per curve."""
        return all(math.isfinite(b) for b in self.bounds)

    @property
    def good_bound(self) -> float | None:
        """The lone declared good end `g` (then `w = -log |v - g|`), or None (`w = s v`)."""
        lo, hi = self.bounds
        good, bad = (hi, lo) if self.direction == "maximize" else (lo, hi)
        return good if math.isfinite(good) and not math.isfinite(bad) else None

    def progress(self, v: torch.Tensor) -> torch.Tensor:
        """`w(v)` (float64, same shape); `inf` at and beyond a lone good end."""
        v = torch.as_tensor(v, dtype=torch.float64)
        g = self.good_bound
        if g is None:
            return self.sign * v
        gap = self.sign * (g - v)  # the distance to the good end, negative beyond it
        return torch.where(gap > 0, -torch.log(gap.clamp_min(1e-300)), torch.inf)

    def value(self, w: torch.Tensor) -> torch.Tensor:
        """`v(w)`, the inverse of `progress` (float64, same shape); `w = inf` is the good end."""
        w = torch.as_tensor(w, dtype=torch.float64)
        g = self.good_bound
        return self.sign * w if g is None else g - self.sign * torch.exp(-w)

    def log_derivative(self, v: torch.Tensor) -> torch.Tensor:
        """`log |dw/dv|` (float64, same shape): 0, or `-log |v - g|` for a lone good end."""
        v = torch.as_tensor(v, dtype=torch.float64)
        g = self.good_bound
        return torch.zeros_like(v) if g is None else -torch.log((v - g).abs())

    def inside(self, v: torch.Tensor) -> torch.Tensor:
        """Where `v` lies in the metric's domain (within the bounds, and off a lone good end)."""
        v = torch.as_tensor(v, dtype=torch.float64)
        lo, hi = self.bounds
        ok = (v >= lo) & (v <= hi)
        return ok if self.good_bound is None else ok & (v != self.good_bound)

    def check(self, values: torch.Tensor) -> None:
        """Raises a `ValueError` naming the first value (`curves x epochs`, NaN = missing) outside the domain."""
        bad = ~self.inside(values) & ~torch.isnan(values)
        if not bool(bad.any()):
            return
        i, j = (int(k) for k in bad.nonzero()[0])
        value = float(values[i, j])
        self.refuse(value, f"curve {i}, epoch {j + 1}: value {value}")

    def refuse(self, value: float, where: str) -> None:
        """Raises the `ValueError` for `value`, which lies outside the domain, starting with `where`."""
        lo, hi = self.bounds
        if lo <= value <= hi:
            raise ValueError(f"{where} lies on the good bound, where the log-distance progress of a metric with "
                             "only that bound declared is infinite; declare the other bound too (an affine map) or "
                             "no bounds")
        raise ValueError(f"{where} is outside the declared bounds ({lo}, {hi}); fix the bounds (None for an "
                         "unknown end) or the values")

    def fit(self, values: torch.Tensor) -> CurveScale:
        """The per-curve maps of the module docstring for curves `values` (`B x N`, NaN = missing).

        Raises a `ValueError` (see `check`) for values outside the domain. Every curve needs at
        least one observed value. The returned `offset` and `scale` are `B x 1`.
        """
        values = torch.as_tensor(values, dtype=torch.float64)
        self.check(values)
        b = values.shape[0]
        if self.fixed:
            lo, hi = self.bounds
            offset = torch.full((b, 1), lo if self.direction == "maximize" else -hi, dtype=torch.float64)
            return CurveScale(self, offset, torch.full((b, 1), hi - lo, dtype=torch.float64))
        w = self.progress(values)
        seen = ~torch.isnan(values)
        w_min = torch.where(seen, w, torch.inf).amin(1, keepdim=True)
        w_max = torch.where(seen, w, -torch.inf).amax(1, keepdim=True)
        floor = MIN_SPAN * torch.ones_like(w_min)
        if self.good_bound is None:  # w = s v: relative precision; the log-distance is unit-free already
            floor = floor * torch.maximum(w_min.abs(), w_max.abs()).clamp_min(1.0)
        scale = torch.maximum(w_max - w_min, floor) / (Z_BEST - Z_WORST)
        return CurveScale(self, w_min - Z_WORST * scale, scale)


@dataclass(frozen=True)
class CurveScale:
    """A metric's map to the prior's scale, fitted per curve (module docstring).

    Attributes:
        metric: The `Metric` (direction, bounds, progress `w`).
        offset, scale: float64 tensors broadcastable against the values they map (`B x 1`
            from `Metric.fit`, one entry per curve; `expand` them to a predictive's batch
            shape to index them alike); `a = (w - offset) / scale`, `scale > 0`.
    """

    metric: Metric
    offset: torch.Tensor
    scale: torch.Tensor

    @property
    def bends(self) -> bool:
        """Whether the map bends outside `[Z_WORST, Z_BEST]` (estimated maps); if not, it is affine in `v`."""
        return not self.metric.fixed

    def expand(self, shape: torch.Size) -> CurveScale:
        """The same maps with `offset` and `scale` broadcast to `shape`."""
        return CurveScale(self.metric, self.offset.expand(shape), self.scale.expand(shape))

    def __getitem__(self, index) -> CurveScale:
        return CurveScale(self.metric, self.offset[index], self.scale[index])

    def to(self, device: torch.device | str) -> CurveScale:
        return CurveScale(self.metric, self.offset.to(device), self.scale.to(device))

    def normalize(self, values: torch.Tensor) -> torch.Tensor:
        """`z` (float64) of metric values `values`; NaN stays NaN."""
        a = (self.metric.progress(values) - self.offset) / self.scale
        if not self.bends:
            return a
        top = 1.0 - (1.0 - Z_BEST) * torch.exp(-(a - Z_BEST) / (1.0 - Z_BEST))
        bottom = Z_WORST * torch.exp((a - Z_WORST) / Z_WORST)
        return torch.where(a > Z_BEST, top, torch.where(a < Z_WORST, bottom, a))

    def unbend(self, z: torch.Tensor) -> torch.Tensor:
        """`a` (float64) of prior-scale values `z`, the inverse of the bends (`z` itself for an affine map)."""
        a = torch.as_tensor(z, dtype=torch.float64)
        if self.bends:
            top = Z_BEST - (1.0 - Z_BEST) * torch.log((1.0 - a).clamp_min(0.0) / (1.0 - Z_BEST))
            bottom = Z_WORST + Z_WORST * torch.log(a.clamp_min(0.0) / Z_WORST)
            a = torch.where(a > Z_BEST, top, torch.where(a < Z_WORST, bottom, a))
        return a

    def denormalize(self, z: torch.Tensor) -> torch.Tensor:
        """Metric values (float64) of prior-scale values `z`: the exact inverse of `normalize`.

        With bends, `z >= 1` maps to the good end (`g`, or infinite) and `z <= 0` to the bad end.
        """
        return self.metric.value(self.offset + self.scale * self.unbend(z))

    def weighted_value(self, zs: Iterable[torch.Tensor], weights: Sequence[float]) -> torch.Tensor:
        """`sum_i weights_i * denormalize(zs_i)` (float64, the shape of each `zs_i`), `weights` positive.

        Summed where it cannot overflow: `w = s v` is affine, so the sum is the value of the
        weighted mean of `a`; the log-distance's `|v - g| = exp(-w)` is summed in log space. Finite
        whenever the result is, even where single terms exceed the float64 range. The terms are
        added one at a time, so `zs` may be a generator and memory stays that of two terms.
        """
        g = self.metric.good_bound
        total = None
        for z, weight in zip(zs, weights, strict=True):
            a = self.unbend(z)
            if g is None:
                term = weight * a
                total = term if total is None else total + term
            else:
                term = math.log(weight) - (self.offset + self.scale * a)
                total = term if total is None else torch.logaddexp(total, term)
        if g is None:
            return self.metric.value(self.offset + self.scale * total)
        return g - self.metric.sign * torch.exp(total)

    def log_jacobian(self, values: torch.Tensor) -> torch.Tensor:
        """`log |dz/dv|` (float64) at metric values `values` inside the domain."""
        log_dz = self.metric.log_derivative(values) - torch.log(self.scale)
        if not self.bends:
            return log_dz
        a = (self.metric.progress(values) - self.offset) / self.scale
        return log_dz - ((a - Z_BEST) / (1.0 - Z_BEST)).clamp_min(0.0) + ((a - Z_WORST) / Z_WORST).clamp_max(0.0)


__all__ = ["DIRECTIONS", "MIN_SPAN", "Z_BEST", "Z_WORST", "CurveScale", "Metric", "check_bounds"]

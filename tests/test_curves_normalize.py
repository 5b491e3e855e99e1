"""The metric normalisation of `pfn.curves`: exact inverses, exact quantiles, densities with their
Jacobian, the mean in metric units, and clear errors for values outside the declared bounds."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from pfn.curves.normalize import MIN_SPAN, Z_BEST, Z_WORST, Metric
from pfn.curves.predictive import CurvePredictive
from pfn.riemann import RiemannDistribution

# (direction, bounds, a function turning uniforms in (0, 1) into values inside the domain)
METRICS = {
    "accuracy": ("maximize", (0.0, 1.0), lambda u: u),
    "error": ("minimize", (0.0, 100.0), lambda u: 100.0 * u),
    "loss": ("minimize", (0.0, None), lambda u: -torch.log(u)),  # log distance to a lone good end
    "accuracy-upper-only": ("maximize", (None, 1.0), lambda u: 1.0 - u),  # ... toward hi
    "reward": ("maximize", None, lambda u: 1e3 * (u - 0.5)),
    "cost-above-floor": ("minimize", (None, 5.0), lambda u: 5.0 - 3.0 * u),  # bad end known only: identity
}


def curves(kind: str, b: int = 4, n: int = 12, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return METRICS[kind][2](torch.rand(b, n, generator=g, dtype=torch.float64).clamp(1e-6, 1 - 1e-6))


def metric(kind: str) -> Metric:
    direction, bounds, _ = METRICS[kind]
    return Metric(direction, bounds)


def predictive(kind: str, b: int = 3, h: int = 5, seed: int = 0, k: int = 40,
               support: tuple[float, float] = (0.0, 1.0)) -> tuple[CurvePredictive, tuple]:
    """A predictive with random bucket probabilities on `support` (none in the two outer buckets and tails,
    as a trained model's predictive of an unclipped value), and the normalized distribution and scale."""
    g = torch.Generator().manual_seed(seed)
    logits = 2.0 * torch.randn(b, h, k, generator=g, dtype=torch.float64)
    logits[..., [0, 1, -2, -1]] -= 40.0
    normalized = RiemannDistribution(logits, torch.linspace(*support, k + 1, dtype=torch.float64))
    scale = metric(kind).fit(curves(kind, b=b, seed=seed)).expand((b, h))
    return CurvePredictive(normalized, scale, torch.zeros(b, h, dtype=torch.bool)), (normalized, scale)


# --- the map --------------------------------------------------------------------------------

@settings(max_examples=60, deadline=None)
@given(kind=st.sampled_from(sorted(METRICS)), seed=st.integers(0, 10_000), n=st.integers(1, 30))
def test_normalisation_round_trips_exactly(kind, seed, n):
    values = curves(kind, n=n, seed=seed)
    scale = metric(kind).fit(values)
    z = scale.normalize(values)
    assert torch.isfinite(z).all()
    torch.testing.assert_close(scale.denormalize(z), values, rtol=1e-12, atol=1e-12)
    # A bent map sends z >= 1 and z <= 0 to the ends. Near a lone good end g, float64 keeps a value's distance to
    # g only to 1e-16 absolute, so z can round-trip only where that distance is not tiny: beyond 1e-10 it has
    # a relative error below ~1e-6, hence w (its log) an absolute one, and z (slope <= 1 / scale <= 2) below 1e-5.
    low, top, tol = (0.05, 0.9, 1e-5) if scale.bends else (-0.2, 1.2, 1e-9)
    grid = torch.linspace(low, top, 15, dtype=torch.float64).expand(values.shape[0], 15)
    back = scale.denormalize(grid)
    g = scale.metric.good_bound
    distinct = torch.ones_like(back, dtype=torch.bool) if g is None else (back - g).abs() > 1e-10 * max(1.0, abs(g))
    torch.testing.assert_close(scale.normalize(back)[distinct], grid[distinct], rtol=tol, atol=tol)


@pytest.mark.parametrize("kind", sorted(METRICS))
def test_better_values_map_higher_and_estimated_maps_put_the_observed_range_inside_the_margins(kind):
    values = curves(kind, n=20)
    m = metric(kind)
    z = m.fit(values).normalize(values)
    order = torch.sort(values, dim=1).indices
    z_sorted = z.gather(1, order)
    assert ((z_sorted.diff(dim=1) >= 0) if m.direction == "maximize" else (z_sorted.diff(dim=1) <= 0)).all()
    if m.fixed:
        assert (z >= 0).all() and (z <= 1).all()
    else:
        torch.testing.assert_close(z.amin(1), torch.full((4,), Z_WORST, dtype=torch.float64))
        torch.testing.assert_close(z.amax(1), torch.full((4,), Z_BEST, dtype=torch.float64))


def test_fixed_bounds_are_the_affine_map_onto_the_unit_interval():
    v = torch.tensor([[0.0, 25.0, 100.0]], dtype=torch.float64)
    torch.testing.assert_close(Metric("maximize", (0, 100)).fit(v).normalize(v), v / 100)
    torch.testing.assert_close(Metric("minimize", (0, 100)).fit(v).normalize(v), 1 - v / 100)


def test_a_flat_curve_gets_the_minimum_span_and_each_curve_its_own_map():
    values = torch.tensor([[2.0, 2.0, float("nan")], [0.5, 1.0, 4.0]], dtype=torch.float64)
    scale = Metric("minimize", (0.0, None)).fit(values)  # w = -log(v)
    u_span = (scale.scale * (Z_BEST - Z_WORST)).flatten().tolist()
    assert u_span[0] == pytest.approx(MIN_SPAN * 1.0)  # |log 2| < 1
    assert u_span[1] == pytest.approx(math.log(8.0))
    alone = Metric("minimize", (0.0, None)).fit(values[1:])
    torch.testing.assert_close(alone.offset, scale.offset[1:])  # a curve's map ignores the other curves


# --- the predictive in metric units ---------------------------------------------------------

@pytest.mark.parametrize("kind", sorted(METRICS))
def test_quantiles_map_back_exactly(kind):
    pred, (normalized, scale) = predictive(kind)
    q = torch.tensor([0.01, 0.1, 0.5, 0.9, 0.99])
    for level in q.tolist():
        z_level = level if metric(kind).direction == "maximize" else 1.0 - level
        # The quantile in metric units is the z-quantile mapped back, up to float32 rounding of z (a bent map
        # sends the predictive's mass at z >= 1 to the good end, z = 1).
        expected = normalized.icdf(z_level).double()
        expected = expected.clamp(0.0, 1.0) if scale.bends else expected
        torch.testing.assert_close(scale.normalize(pred.quantile(level)), expected, rtol=0, atol=1e-6)
        inside = (expected > 0.0) & (expected < 1.0)  # the cdf jumps over the mass at an end
        torch.testing.assert_close(pred.cdf(pred.quantile(level))[inside], torch.full(pred.batch_shape, level,
                                   dtype=torch.float64)[inside], atol=1e-4, rtol=0)
    assert (pred.quantile(0.2) <= pred.quantile(0.8)).all()


@pytest.mark.parametrize("kind", sorted(METRICS))
def test_log_prob_is_the_derivative_of_the_cdf_in_metric_units(kind):
    pred, (_, scale) = predictive(kind, b=2, h=2)
    levels = torch.tensor([0.05, 0.3, 0.6, 0.95])
    for level in levels.tolist():
        v = pred.quantile(level)
        eps = 1e-7 / scale.log_jacobian(v).exp()  # a step of 1e-7 in z (float64), within one bucket
        slope = (pred.cdf(v + eps) - pred.cdf(v - eps)) / (2 * eps)
        torch.testing.assert_close(pred.log_prob(v).exp(), slope, rtol=1e-4, atol=0)


@pytest.mark.parametrize("kind", sorted(METRICS))
def test_mean_is_computed_in_metric_units_and_matches_monte_carlo(kind):
    # A smooth predictive on 400 buckets, like a trained model's, with no mass near the prior's 0 and 1 (which a
    # bent map sends to infinite ends: see CurvePredictive.mean).
    b, h, k = 2, 3, 400
    g = torch.Generator().manual_seed(3)
    borders = torch.linspace(0.1, 0.9, k + 1, dtype=torch.float64)
    centers = (borders[1:] + borders[:-1]) / 2
    mu, sd = 0.3 + 0.4 * torch.rand(b, h, 1, generator=g), 0.02 + 0.05 * torch.rand(b, h, 1, generator=g)
    logits = -0.5 * ((centers - mu) / sd) ** 2
    logits[..., [0, -1]] = -1e3  # no tails
    normalized = RiemannDistribution(logits, borders)
    scale = metric(kind).fit(curves(kind, b=b, seed=3)).expand((b, h))
    pred = CurvePredictive(normalized, scale, torch.zeros(b, h, dtype=torch.bool))
    draws = pred.sample(400_000, generator=torch.Generator().manual_seed(0))
    stderr = draws.std(0) / math.sqrt(draws.shape[0])
    assert ((pred.mean - draws.mean(0)).abs() < 5 * stderr).all()
    if scale.bends:  # a nonlinear map: un-normalising the mean is biased
        naive = scale.denormalize(normalized.mean)
        assert ((naive - draws.mean(0)).abs() > 5 * stderr).any()


def test_prob_above_is_the_probability_of_being_better_in_the_metric_direction():
    for kind in ("accuracy", "loss"):
        pred, _ = predictive(kind)
        median = pred.quantile(0.5)
        torch.testing.assert_close(pred.prob_above(median), torch.full(pred.batch_shape, 0.5, dtype=torch.float64),
                                   atol=1e-4, rtol=0)
        better = pred.quantile(0.9 if kind == "accuracy" else 0.1)
        torch.testing.assert_close(pred.prob_above(better), torch.full(pred.batch_shape, 0.1, dtype=torch.float64),
                                   atol=1e-4, rtol=0)


def test_no_mass_lies_beyond_a_lone_good_bound_and_the_rest_sits_on_it():
    pred, (normalized, _) = predictive("loss", support=(0.5, 1.5))  # loss in [0, inf); much mass at z > 1
    atom = 1.0 - normalized.cdf(1.0).double()
    draws = pred.sample(20_000, generator=torch.Generator().manual_seed(0))
    assert (draws >= 0).all()
    torch.testing.assert_close((draws == 0).double().mean(0), atom, atol=0.01, rtol=0)
    assert (pred.log_prob(0.0) == -math.inf).all() and (pred.log_prob(-1.0) == -math.inf).all()
    torch.testing.assert_close(pred.cdf(0.0), atom)
    torch.testing.assert_close(pred.cdf(1e-300), atom)
    assert (pred.cdf(-1.0) == 0).all() and (pred.prob_above(0.0) == 0).all() and (pred.prob_above(-1.0) == 0).all()


def test_observed_epochs_are_nan_in_every_statistic():
    pred, (normalized, scale) = predictive("accuracy", b=2, h=4)
    observed = torch.tensor([[True, True, False, False], [True, False, False, False]])
    pred = CurvePredictive(normalized, scale, observed)
    for stat in (pred.quantile(0.5), pred.mean, pred.cdf(0.5), pred.prob_above(0.5), pred.log_prob(0.5),
                 pred.sample(3)[0]):
        assert torch.isnan(stat[observed]).all() and torch.isfinite(stat[~observed]).all()
    assert pred[:, -1].batch_shape == (2,) and not pred[:, -1].observed.any()
    torch.testing.assert_close(pred[1].quantile(0.3), pred.quantile(0.3)[1], equal_nan=True)


# --- errors ---------------------------------------------------------------------------------

@pytest.mark.parametrize("direction, bounds, message", [
    ("max", None, "direction must be one of"),
    ("maximize", (1.0, 0.0), "lo < hi"),
    ("maximize", (0.0, float("nan")), "hi is NaN"),
    ("maximize", (0.0, 1.0, 2.0), "must be a pair"),
])
def test_bad_metric_declarations_are_rejected(direction, bounds, message):
    with pytest.raises(ValueError, match=message):
        Metric(direction, bounds)


def test_values_outside_the_declared_bounds_are_rejected_with_their_place():
    values = torch.tensor([[0.2, 0.5, float("nan")], [0.3, 1.2, 0.9]], dtype=torch.float64)
    with pytest.raises(ValueError, match=r"curve 1, epoch 2: value 1.2 is outside the declared bounds \(0.0, 1.0\)"):
        Metric("maximize", (0, 1)).fit(values)
    with pytest.raises(ValueError, match=r"curve 0, epoch 2: value 0.0 lies on the good bound"):
        Metric("minimize", (0, None)).fit(torch.tensor([[1.0, 0.0]], dtype=torch.float64))


# --- metrics near the float64 limit -----------------------------------------------------------

LOSS = torch.tensor([[5.0, 3.0, 2.5, 2.2, 2.0], [2.0, 2.01, math.nan, math.nan, math.nan]], dtype=torch.float64)


@pytest.mark.parametrize("unit", [1e-3, 1e100, 1e300])
def test_a_loss_with_a_lone_good_bound_gets_the_same_map_in_any_unit(unit):
    # A change of units shifts the log-distance progress w: the fitted scale (the curve's span, or the floor of a
    # flat curve) must not change with it, nor the z of the values.
    metric = Metric("minimize", (0.0, None))
    ones, scaled = metric.fit(LOSS), metric.fit(unit * LOSS)
    torch.testing.assert_close(scaled.scale, ones.scale)
    torch.testing.assert_close(scaled.normalize(unit * LOSS), ones.normalize(LOSS), equal_nan=True)


def predictive_of_loss(unit: float) -> CurvePredictive:
    """A wide predictive (z from 0.02 to 0.98) of the two `LOSS` curves in `unit`s at three future epochs."""
    borders = torch.linspace(0.0, 1.0, 41, dtype=torch.float64)
    logits = torch.zeros(2, 3, 40, dtype=torch.float64)
    logits[..., [0, -1]] = -1e3  # no tails
    scale = Metric("minimize", (0.0, None)).fit(unit * LOSS).expand((2, 3))
    return CurvePredictive(RiemannDistribution(logits, borders), scale, torch.zeros(2, 3, dtype=torch.bool))


def test_the_mean_of_a_loss_near_the_float64_limit_is_finite_and_scales_with_the_unit():
    unit = 1e307
    ones, huge = predictive_of_loss(1.0), predictive_of_loss(unit)
    assert float(ones.quantile(0.9996).amax()) * unit > torch.finfo(torch.float64).max  # outer nodes overflow
    assert torch.isfinite(huge.mean).all() and torch.isfinite(huge.quantile(0.5)).all()
    torch.testing.assert_close(huge.mean / unit, ones.mean, rtol=1e-9, atol=0)
    torch.testing.assert_close(huge.quantile(0.9) / unit, ones.quantile(0.9), rtol=1e-9, atol=0)


@pytest.mark.parametrize("kind", ["accuracy", "loss"])
def test_quantile_levels_outside_the_unit_interval_are_refused_in_either_direction(kind):
    pred, _ = predictive(kind)
    for q in (1.5, -0.2, math.nan):
        with pytest.raises(ValueError, match=r"q must be probabilities in \[0, 1\], got"):
            pred.quantile(q)

"""Property tests of the Riemann (bar) distribution: every method agrees with one density.

The density: inner buckets uniform; the outer buckets are half-normals pinned at `b_1`
(extending left) and `b_{K-1}` (extending right) with scale `width / 0.6745`. We check the
density integrates to one, the cdf is its integral, `icdf` inverts the cdf, `sample()`
follows the cdf, and the moments and acquisition values agree with numerical integrals of the
density and with Monte Carlo on `sample()` (within a few Monte-Carlo standard errors).
Tolerances allow for float32 inputs: near a border, `y` is only known to an ulp.

Beyond the density: each border belongs to the piece above it (log_prob is right-continuous);
`affine` keeps float64 `loc`/`scale` beside the standardised borders, so targets far from zero
keep their precision; statistics computed in chunks of rows equal the whole batch at once,
allocate no temporaries of the table's size, and have finite-difference gradients in the logits.
"""

from __future__ import annotations

import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pfn import riemann
from pfn.riemann import RiemannDistribution, bar_nll, borders_from_samples

HALF_NORMAL_MEDIAN = 0.6744897501960817
N_MC = 40_000
MC_Z = 5.0  # tolerance in Monte-Carlo standard errors

PROPS = settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])

LOGITS = st.floats(-6.0, 6.0, allow_nan=False, allow_infinity=False)


@st.composite
def border_tensors(draw, n_buckets: int, families=("gaps", "normal", "exponential", "ties")) -> torch.Tensor:
    """`n_buckets + 1` increasing float32 borders: random gaps, or quantiles of prior-like samples."""
    family = draw(st.sampled_from(families))
    if family == "gaps":
        start = draw(st.floats(-20.0, 20.0))
        gaps = draw(st.lists(st.floats(0.02, 5.0), min_size=n_buckets, max_size=n_buckets))
        return (start + torch.cumsum(torch.tensor([0.0, *gaps], dtype=torch.float64), 0)).float()
    seed = draw(st.integers(0, 2**16))
    scale = draw(st.floats(0.01, 100.0))
    loc = scale * draw(st.floats(-100.0, 100.0))
    g = torch.Generator().manual_seed(seed)
    if family == "normal":
        z = torch.randn(3000, generator=g)
    elif family == "exponential":
        z = -torch.log(torch.rand(3000, generator=g).clamp_min(1e-12))
    else:  # discrete targets: many ties
        z = torch.randint(0, 5, (3000,), generator=g).float()
    return borders_from_samples(loc + scale * z, n_buckets)


@st.composite
def distributions(draw, families=("gaps", "normal", "exponential", "ties"), max_batch: int = 3):
    k = draw(st.integers(3, 40))
    batch = draw(st.integers(1, max_batch))
    logits = draw(st.lists(LOGITS, min_size=k * batch, max_size=k * batch))
    borders = draw(border_tensors(k, families))
    return RiemannDistribution(torch.tensor(logits).view(batch, k), borders)


CONTINUOUS = ("gaps", "normal", "exponential")


def tail_scales(borders: np.ndarray) -> tuple[float, float]:
    return (borders[1] - borders[0]) / HALF_NORMAL_MEDIAN, (borders[-1] - borders[-2]) / HALF_NORMAL_MEDIAN


def ulp32(y: torch.Tensor) -> torch.Tensor:
    """Spacing of float32 numbers at `y`: the input resolution of the float32 distribution."""
    y = y.float()
    return (torch.nextafter(y.abs(), torch.tensor(math.inf)) - y.abs()).double()


def integration_grid(
    borders: np.ndarray, n_tail: int = 3000, n_inner: int = 3, breaks: tuple[float, ...] = ()
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Midpoint rule pieces covering the support: returns (edges, midpoints, widths).

    Left tail on `[b_1 - 12 s, b_1]`, right tail on `[b_{K-1}, b_{K-1} + 12 s]` (mass beyond
    is `2 Phi(-12)`, negligible), and `n_inner` sub-intervals per inner bucket. `breaks` are
    added as edges, so that an integrand with a kink there (an improvement `max(y - best, 0)`)
    is smooth on every piece.
    """
    s_left, s_right = tail_scales(borders)
    k = len(borders) - 1
    pieces = [np.linspace(borders[1] - 12 * s_left, borders[1], n_tail + 1)]
    for i in range(1, k - 1):
        pieces.append(np.linspace(borders[i], borders[i + 1], n_inner + 1)[1:])
    pieces.append(np.linspace(borders[k - 1], borders[k - 1] + 12 * s_right, n_tail + 1)[1:])
    edges = np.concatenate(pieces)
    edges = np.union1d(edges, [t for t in breaks if edges[0] < t < edges[-1]])
    return edges, 0.5 * (edges[1:] + edges[:-1]), np.diff(edges)


def broadcast_points(dist: RiemannDistribution, points: np.ndarray) -> torch.Tensor:
    """`len(points) x batch_shape` float32 tensor of evaluation points."""
    t = torch.tensor(points, dtype=torch.float32)
    return t.view(-1, *([1] * len(dist.batch_shape))).expand(-1, *dist.batch_shape)


def grid_expectation(dist: RiemannDistribution, fn, n_inner: int = 64, breaks: tuple[float, ...] = ()) -> torch.Tensor:
    """`E[fn(Y)]` (`batch_shape`, float64): the midpoint rule on the density, independent of the
    distribution's own moment and acquisition code; `breaks`: kinks of `fn` (grid edges)."""
    _, mids, widths = integration_grid(dist.borders.double().numpy(), n_inner=n_inner, breaks=breaks)
    view = (-1, *([1] * len(dist.batch_shape)))
    weight = evaluate(dist, "log_prob", mids).exp() * torch.tensor(widths).view(view)
    return (weight * fn(torch.tensor(mids).view(view))).sum(0)


def grid_moments(dist: RiemannDistribution) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Mean, variance and fourth central moment of the density, by `grid_expectation`."""
    mean = grid_expectation(dist, lambda y: y)
    var = grid_expectation(dist, lambda y: (y - mean) ** 2)
    return mean, var, grid_expectation(dist, lambda y: (y - mean) ** 4)


def repeated(dist: RiemannDistribution, n: int) -> RiemannDistribution:
    """`dist` repeated along a new leading batch dimension of size `n`."""
    return RiemannDistribution(dist.log_probs.expand(n, *dist.log_probs.shape), dist.borders)


def evaluate(dist: RiemannDistribution, method: str, points: np.ndarray) -> torch.Tensor:
    """`method` of `dist` at each point (`len(points) x batch_shape`), via a broadcast batch."""
    return getattr(repeated(dist, len(points)), method)(broadcast_points(dist, points)).double()


def local_density(dist: RiemannDistribution, y: torch.Tensor) -> torch.Tensor:
    """Largest density within one float32 step of `y` (the density jumps at borders)."""
    y = y.float()
    steps = (torch.nextafter(y, torch.tensor(-math.inf)), y, torch.nextafter(y, torch.tensor(math.inf)))
    return torch.stack([dist.log_prob(t) for t in steps]).exp().amax(0).double()


def near_border(dist: RiemannDistribution, y: torch.Tensor, distance: torch.Tensor | None = None) -> torch.Tensor:
    """Whether `y` (`batch_shape`) lies within `distance` (default 4 float32 steps) of a border."""
    distance = 4 * ulp32(y) if distance is None else distance
    b = dist.borders.expand(*dist.batch_shape, -1).double()
    return ((b - y.double().unsqueeze(-1)).abs() <= distance.unsqueeze(-1)).any(-1)


def log_density_slope(dist: RiemannDistribution, y: torch.Tensor) -> torch.Tensor:
    """|d log p / dy| at `y`: zero inside inner buckets, `|z| / s` in the half-normal tails."""
    b = dist.borders.double()
    s_left = (b[..., 1] - b[..., 0]) / HALF_NORMAL_MEDIAN
    s_right = (b[..., -1] - b[..., -2]) / HALF_NORMAL_MEDIAN
    y = y.double()
    left = ((b[..., 1] - y) / s_left**2).clamp_min(0)
    right = ((y - b[..., -2]) / s_right**2).clamp_min(0)
    return left + right


def mc_samples(dist: RiemannDistribution, n: int = N_MC) -> torch.Tensor:
    return dist.sample((n,), generator=torch.Generator().manual_seed(0)).double()


def spread(dist: RiemannDistribution) -> float:
    """A scale for float32 rounding slack: largest border magnitude plus the tail scales."""
    b = dist.borders.double()
    return float(b.abs().max() + (b[..., 1] - b[..., 0]).max() + (b[..., -1] - b[..., -2]).max())


# --- borders ---------------------------------------------------------------------------------

@PROPS
@given(n_buckets=st.integers(3, 200), data=st.data())
def test_borders_from_samples_are_strictly_increasing_in_float32(n_buckets, data):
    borders = data.draw(border_tensors(n_buckets))
    assert borders.dtype == torch.float32
    assert borders.shape == (n_buckets + 1,)
    assert torch.isfinite(borders).all()
    assert (borders[1:] > borders[:-1]).all()


@pytest.mark.parametrize("values", [[100.0, 101.0], [5.0], [-3e6], [0.0], [1e4, 1e4 + 1e-3]])
def test_borders_from_tied_samples_far_from_zero_stay_strictly_increasing(values):
    samples = torch.tensor(values).repeat_interleave(500)
    borders = borders_from_samples(samples, 50)
    assert (borders[1:] > borders[:-1]).all()
    assert torch.isfinite(RiemannDistribution(torch.zeros(50), borders).log_prob(samples[0])).all()


def test_borders_from_samples_are_quantiles_and_ignore_non_finite_values():
    samples = torch.cat([torch.arange(1001.0), torch.tensor([math.nan, math.inf, -math.inf])])
    borders = borders_from_samples(samples, 10)
    assert torch.allclose(borders[1:-1], torch.linspace(100.0, 900.0, 9))


@pytest.mark.parametrize("draw", [lambda g: torch.randn(200_000, generator=g),
                                  lambda g: torch.distributions.StudentT(2.0).sample((200_000,)),
                                  lambda g: torch.rand(200_000, generator=g).pow(-1.5)])  # Pareto-like
def test_the_tails_of_borders_from_samples_have_the_samples_conditional_means(draw):
    torch.manual_seed(0)
    samples = draw(torch.Generator().manual_seed(0)).double()
    k = 20
    borders = borders_from_samples(samples, k)
    for piece, beyond in ((0, samples < borders[1]), (k - 1, samples >= borders[-2])):
        logits = torch.full((k,), -1e4)
        logits[piece] = 0.0
        tail_mean = RiemannDistribution(logits, borders).mean
        expected = samples[beyond].mean()
        assert tail_mean.item() == pytest.approx(expected.item(), rel=1e-3, abs=1e-3)


def test_borders_from_samples_needs_enough_samples():
    with pytest.raises(ValueError, match="at least 10"):
        borders_from_samples(torch.randn(5), 10)


def test_constructor_rejects_mismatched_borders_and_too_few_buckets():
    with pytest.raises(ValueError, match="borders"):
        RiemannDistribution(torch.zeros(4), torch.linspace(0, 1, 4))
    with pytest.raises(ValueError, match="at least 3 buckets"):
        RiemannDistribution(torch.zeros(2), torch.linspace(0, 1, 3))


# --- density, cdf, quantiles -------------------------------------------------------------------

@PROPS
@given(dist=distributions(CONTINUOUS))
def test_density_integrates_to_one(dist):
    _, mids, widths = integration_grid(dist.borders.double().numpy())
    density = evaluate(dist, "log_prob", mids).exp()
    total = (density * torch.tensor(widths).view(-1, *([1] * len(dist.batch_shape)))).sum(0)
    assert torch.allclose(total, torch.ones_like(total), atol=2e-4), total


@PROPS
@given(dist=distributions(CONTINUOUS))
def test_cdf_equals_integral_of_density(dist):
    edges, mids, widths = integration_grid(dist.borders.double().numpy())
    view = (-1, *([1] * len(dist.batch_shape)))
    density = evaluate(dist, "log_prob", mids).exp()
    integral = torch.cat([torch.zeros(1, *dist.batch_shape, dtype=torch.float64),
                          torch.cumsum(density * torch.tensor(widths).view(view), 0)])
    cdf = evaluate(dist, "cdf", edges)
    # The float32 input `y` is only known to an ulp: allow density * ulp on top.
    at_edges = local_density(repeated(dist, len(edges)), broadcast_points(dist, edges))
    tol = 2e-4 + 2 * at_edges * ulp32(torch.tensor(edges)).view(view)
    assert ((cdf - integral).abs() <= tol).all(), (cdf - integral).abs().max()


@PROPS
@given(dist=distributions(), data=st.data())
def test_half_of_each_tail_mass_lies_inside_its_outer_bucket(dist, data):
    p = dist.probs.double()
    b0, bk = dist.borders[0], dist.borders[-1]
    assert torch.allclose(dist.cdf(b0).double(), p[..., 0] / 2, atol=1e-5)
    assert torch.allclose(1 - dist.cdf(bk).double(), p[..., -1] / 2, atol=1e-5)
    # The cdf at inner borders is the cumulative bucket mass.
    i = data.draw(st.integers(1, dist.log_probs.shape[-1] - 1))
    assert torch.allclose(dist.cdf(dist.borders[i]).double(), p[..., :i].sum(-1), atol=1e-5)


@PROPS
@given(dist=distributions(), qs=st.lists(st.floats(1e-4, 1 - 1e-4), min_size=1, max_size=20))
def test_cdf_of_icdf_is_identity(dist, qs):
    q = torch.tensor(qs, dtype=torch.float32).view(-1, *([1] * len(dist.batch_shape))).expand(-1, *dist.batch_shape)
    big = repeated(dist, len(qs))
    y = big.icdf(q)
    assert torch.isfinite(y).all()
    back = big.cdf(y).double()
    tol = 2e-5 + 2 * local_density(big, y) * ulp32(y)
    assert ((back - q.double()).abs() <= tol).all(), (back - q.double()).abs().max()
    assert RiemannDistribution.quantile is RiemannDistribution.icdf


@PROPS
@given(dist=distributions(CONTINUOUS))
def test_icdf_is_monotone(dist):
    q = np.linspace(0.001, 0.999, 300)
    y = evaluate(dist, "icdf", q)
    assert (y[1:] >= y[:-1]).all()


def test_log_prob_is_constant_inside_inner_buckets_and_equals_mass_over_width():
    borders = torch.tensor([-1.0, 0.0, 0.5, 2.0, 3.0])
    dist = RiemannDistribution(torch.tensor([0.1, 0.2, 0.3, 0.4]).log(), borders)
    batched = RiemannDistribution(dist.log_probs.expand(5, 4), borders)
    for i, (lo, hi) in enumerate([(0.0, 0.5), (0.5, 2.0)], start=1):
        ys = torch.linspace(lo, hi, 7)[1:-1]
        expected = math.log([0.1, 0.2, 0.3, 0.4][i] / (hi - lo))
        assert torch.allclose(batched.log_prob(ys), torch.full((5,), expected), atol=1e-6)


# K = 5 buckets: b_0 and b_1 bound the left tail's bucket, b_4 and b_5 the right tail's.
EDGE_BORDERS = [-2.0, -1.0, 0.0, 0.5, 2.0, 3.0]
EDGE_LOGITS = [0.3, -0.2, 0.5, 0.1, -0.4]


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("i", [0, 1, 2, 4, 5], ids=["b_0", "b_1", "inner b_2", "b_K-1", "b_K"])
def test_log_prob_at_a_border_is_the_limit_from_above(i, dtype):
    borders = torch.tensor(EDGE_BORDERS, dtype=dtype)
    dist = RiemannDistribution(torch.tensor(EDGE_LOGITS, dtype=dtype), borders)
    above = torch.nextafter(borders[i], torch.tensor(math.inf, dtype=dtype))
    # One ulp above, the tails' log density moves by at most |z| / s * ulp (< 1e-6 here).
    assert torch.allclose(dist.log_prob(borders[i]), dist.log_prob(above), rtol=0, atol=1e-6)
    assert torch.allclose(dist.cdf(borders[i]), dist.cdf(above), rtol=0, atol=1e-6)


def test_log_prob_at_the_last_inner_border_is_the_right_tails_density():
    borders = torch.tensor(EDGE_BORDERS)
    dist = RiemannDistribution(torch.tensor(EDGE_LOGITS), borders)
    s_right = (borders[-1] - borders[-2]) / HALF_NORMAL_MEDIAN
    tail_at_zero = dist.log_probs[-1] + 0.5 * math.log(2 / math.pi) - torch.log(s_right)
    assert torch.allclose(dist.log_prob(borders[-2]), tail_at_zero, atol=1e-6)
    # b_1 belongs to the inner bucket above it: the density there is mass / width.
    assert torch.allclose(dist.log_prob(borders[1]), dist.log_probs[1] - torch.log(borders[2] - borders[1]), atol=1e-6)


def test_bar_nll_is_negative_log_prob():
    logits = torch.randn(2, 3, 10, generator=torch.Generator().manual_seed(0))
    borders = torch.linspace(-2, 2, 11)
    y = torch.randn(2, 3, generator=torch.Generator().manual_seed(1)) * 3
    assert torch.allclose(bar_nll(logits, borders, y), -RiemannDistribution(logits, borders).log_prob(y))


# --- sampling and Monte Carlo ------------------------------------------------------------------

@PROPS
@given(dist=distributions(), qs=st.lists(st.floats(0.005, 0.995), min_size=1, max_size=8))
def test_sample_follows_the_cdf(dist, qs):
    y = mc_samples(dist)
    assert y.shape == (N_MC, *dist.batch_shape)
    assert torch.isfinite(y).all()
    for q in qs:
        point = dist.icdf(q)
        emp = (y <= point.double()).double().mean(0)
        exact = dist.cdf(point).double()
        se = (exact * (1 - exact) / N_MC).sqrt()
        tol = MC_Z * se + 1e-4 + local_density(dist, point) * ulp32(point)
        assert ((emp - exact).abs() <= tol).all(), (q, emp, exact)


@PROPS
@given(dist=distributions())
def test_mean_and_variance_match_monte_carlo(dist):
    y = mc_samples(dist)
    mean, var = dist.mean.double(), dist.variance.double()
    assert (var > 0).all()
    emp_mean, emp_var = y.mean(0), y.var(0)
    # Standard errors from the density's own moments: a rare, far bucket makes the sample's
    # estimate of them unreliable. The larger of the two is used.
    _, grid_var, grid_m4 = grid_moments(dist)
    emp_m4 = ((y - emp_mean) ** 4).mean(0)
    se_mean = torch.maximum(grid_var, emp_var).div(N_MC).sqrt()
    se_var = torch.maximum(grid_m4 - grid_var**2, emp_m4 - emp_var**2).clamp_min(0).div(N_MC).sqrt()
    slack = 1e-5 * spread(dist)
    assert ((emp_mean - mean).abs() <= MC_Z * se_mean + slack).all(), (emp_mean, mean)
    assert ((emp_var - var).abs() <= MC_Z * se_var + 1e-4 * var + slack**2).all(), (emp_var, var)
    assert torch.allclose(dist.stddev.double(), var.sqrt(), rtol=1e-5)


@PROPS
@given(dist=distributions(CONTINUOUS), us=st.lists(st.floats(-0.1, 1.1), min_size=1, max_size=4))
def test_moments_and_expected_improvement_equal_integrals_of_the_density(dist, us):
    mean, var, _ = grid_moments(dist)
    mag = spread(dist)
    assert torch.allclose(dist.mean.double(), mean, rtol=1e-4, atol=1e-5 * mag)
    assert torch.allclose(dist.variance.double(), var, rtol=2e-3, atol=1e-9 * mag**2)
    for best in _best_values(dist, us):
        for maximize in (True, False):
            ei = dist.expected_improvement(best, maximize=maximize).double()
            exact = grid_expectation(dist, improvement_of(best, maximize), breaks=(float(best),))
            assert torch.allclose(ei, exact, rtol=2e-3, atol=1e-5 * mag), (best, maximize)


def improvement_of(best: torch.Tensor, maximize: bool):
    """`y -> max(y - best, 0)` (or `max(best - y, 0)` when minimising), in float64."""
    b = best.double()
    return (lambda y: (y - b).clamp_min(0)) if maximize else (lambda y: (b - y).clamp_min(0))


def _best_values(dist: RiemannDistribution, us: list[float]) -> list[torch.Tensor]:
    """Thresholds from the far left tail, through the buckets, to the far right tail."""
    b = dist.borders
    s_left = (b[1] - b[0]) / HALF_NORMAL_MEDIAN
    s_right = (b[-1] - b[-2]) / HALF_NORMAL_MEDIAN
    lo, hi = b[1] - 3 * s_left, b[-2] + 3 * s_right
    return [lo + u * (hi - lo) for u in us]


@PROPS
@given(dist=distributions(), us=st.lists(st.floats(-0.1, 1.1), min_size=1, max_size=5),
       maximize=st.booleans())
def test_expected_improvement_matches_monte_carlo(dist, us, maximize):
    y = mc_samples(dist)
    for best in _best_values(dist, us):
        improvement = (y - best.double()) if maximize else (best.double() - y)
        improvement = improvement.clamp_min(0)
        emp = improvement.mean(0)
        ei = dist.expected_improvement(best, maximize=maximize).double()
        assert (ei >= 0).all()
        gain = improvement_of(best, maximize)
        grid_var = grid_expectation(dist, lambda y, gain=gain: gain(y) ** 2) - grid_expectation(dist, gain) ** 2
        se = torch.maximum(grid_var.clamp_min(0).sqrt(), improvement.std(0)) / math.sqrt(N_MC)
        tol = MC_Z * se + 20 / N_MC * dist.stddev.double() + 1e-5 * spread(dist)
        assert ((emp - ei).abs() <= tol).all(), (best, maximize, emp, ei)


@PROPS
@given(dist=distributions(), us=st.lists(st.floats(-0.1, 1.1), min_size=1, max_size=5),
       maximize=st.booleans())
def test_probability_of_improvement_matches_monte_carlo(dist, us, maximize):
    y = mc_samples(dist)
    for best in _best_values(dist, us):
        emp = ((y > best.double()) if maximize else (y < best.double())).double().mean(0)
        pi = dist.probability_of_improvement(best, maximize=maximize).double()
        assert ((pi >= 0) & (pi <= 1)).all()
        se = (pi * (1 - pi) / N_MC).sqrt()
        tol = MC_Z * se + 1e-4 + local_density(dist, best) * ulp32(best)
        assert ((emp - pi).abs() <= tol).all(), (best, maximize, emp, pi)


@PROPS
@given(dist=distributions(CONTINUOUS, max_batch=1))
def test_expected_improvement_decreases_as_the_threshold_rises(dist):
    bests = _best_values(dist, list(np.linspace(-0.1, 1.1, 60)))
    ei_max = torch.stack([dist.expected_improvement(b, maximize=True) for b in bests])
    ei_min = torch.stack([dist.expected_improvement(b, maximize=False) for b in bests])
    tol = 1e-5 * spread(dist)
    assert (ei_max[1:] <= ei_max[:-1] + tol).all()
    assert (ei_min[1:] >= ei_min[:-1] - tol).all()


@PROPS
@given(dist=distributions(), beta=st.floats(0.0, 10.0))
def test_ucb_is_mean_plus_sqrt_beta_std(dist, beta):
    assert torch.allclose(dist.ucb(beta), dist.mean + math.sqrt(beta) * dist.stddev, rtol=1e-6, atol=1e-6)
    assert torch.allclose(dist.ucb(beta, maximize=False), -dist.mean + math.sqrt(beta) * dist.stddev,
                          rtol=1e-6, atol=1e-6)


# --- transforms --------------------------------------------------------------------------------

@PROPS
@given(dist=distributions(CONTINUOUS), loc=st.floats(-100.0, 100.0), scale=st.floats(0.01, 100.0),
       qs=st.lists(st.floats(0.01, 0.99), min_size=1, max_size=5))
def test_affine_transforms_mean_std_and_density(dist, loc, scale, qs):
    t = dist.affine(loc, scale)
    mag = abs(loc) + scale * spread(dist)
    assert torch.allclose(t.mean.double(), loc + scale * dist.mean.double(), rtol=1e-4, atol=1e-5 * mag)
    assert torch.allclose(t.stddev.double(), scale * dist.stddev.double(), rtol=1e-4, atol=1e-5 * mag)
    for q in qs:
        y = dist.icdf(q)
        lp = dist.log_prob(y).double()
        ty = loc + scale * y
        # Same point, transformed: density shifts by -log(scale), cdf is unchanged, up to the
        # float32 rounding of `loc + scale * y` (and of the borders), in units of y.
        err = 4 * ulp32(ty) / scale + 4 * ulp32(y)
        # Bucket widths are differences of rounded borders: relative error ulp / width.
        min_width = (dist.borders[..., 1:] - dist.borders[..., :-1]).double().min()
        tol_lp = 1e-4 + log_density_slope(dist, y) * err + err / min_width
        inside = ~near_border(dist, y, 2 * err)  # rounding must not carry y across a density jump
        assert ((t.log_prob(ty).double() - (lp - math.log(scale))).abs() <= tol_lp)[inside].all(), q
        tol_cdf = 1e-5 + local_density(dist, y) * err
        assert ((t.cdf(ty).double() - dist.cdf(y).double()).abs() <= tol_cdf).all(), q


def test_affine_accepts_per_element_loc_and_scale():
    dist = RiemannDistribution(torch.randn(3, 8, generator=torch.Generator().manual_seed(0)), torch.linspace(-1, 1, 9))
    loc, scale = torch.tensor([0.0, 10.0, -5.0]), torch.tensor([1.0, 2.0, 0.5])
    t = dist.affine(loc, scale)
    assert torch.allclose(t.mean, (loc + scale * dist.mean).double(), atol=1e-5)
    assert torch.allclose(t.stddev, (scale * dist.stddev).double(), atol=1e-5)
    assert torch.allclose(t[1].mean, 10.0 + 2.0 * dist[1].mean.double(), atol=1e-5)


def test_affine_rejects_non_positive_scale():
    dist = RiemannDistribution(torch.zeros(5), torch.linspace(0, 1, 6))
    for scale in (0.0, -1.0, math.nan, math.inf):
        with pytest.raises(ValueError, match="positive"):
            dist.affine(0.0, scale)


def test_affine_rejects_loc_and_scale_that_do_not_broadcast_to_the_batch():
    dist = RiemannDistribution(torch.zeros(3, 5), torch.linspace(0, 1, 6))
    with pytest.raises(ValueError, match="broadcast to the batch shape"):
        dist.affine(torch.zeros(4), 1.0)
    with pytest.raises(ValueError, match="broadcast to the batch shape"):
        dist.affine(0.0, torch.ones(2, 3))


def far_from_zero() -> tuple[RiemannDistribution, RiemannDistribution, torch.Tensor]:
    """A standardised batch of 6, the same affined by `loc=1e9, scale=2`, and a point of each piece kind."""
    logits = torch.randn(6, 50, generator=torch.Generator().manual_seed(0))
    dist = RiemannDistribution(logits, torch.linspace(-3, 3, 51))
    # Left tail (beyond b_0 and inside the bucket), inner buckets, right tail (inside and beyond b_K).
    points = torch.tensor([-4.0, -2.95, -0.61, 1.37, 2.97, 3.8])
    return dist, dist.affine(1e9, 2.0), points


def test_affine_far_from_zero_keeps_distinct_float64_values():
    dist, t, _ = far_from_zero()
    tol = 1e-6 * 2 * 6  # 1e-6 of the spread of the borders in value units
    assert t.mean.dtype == torch.float64
    torch.testing.assert_close(t.mean - 1e9, 2 * dist.mean.double(), rtol=0, atol=tol)
    torch.testing.assert_close(t.stddev, 2 * dist.stddev.double(), rtol=1e-6, atol=0)
    torch.testing.assert_close(t.ucb(2.0) - 1e9, 2 * dist.ucb(2.0).double(), rtol=0, atol=tol)
    quantiles = torch.stack([t.icdf(q) for q in np.linspace(0.01, 0.99, 40)])
    expected = torch.stack([dist.icdf(q) for q in np.linspace(0.01, 0.99, 40)]).double()
    torch.testing.assert_close(quantiles - 1e9, 2 * expected, rtol=0, atol=tol)
    assert quantiles.unique().numel() == quantiles.numel()
    samples = t.sample((2000,), generator=torch.Generator().manual_seed(0))
    # Distinct up to collisions of the standardised float32 draws.
    assert samples.dtype == torch.float64 and samples.unique().numel() >= 0.99 * samples.numel()
    assert ((samples.mean(0) - t.mean).abs() <= 5 * t.stddev / math.sqrt(2000)).all()


def test_affine_far_from_zero_has_the_standardised_density_minus_log_scale():
    dist, t, points = far_from_zero()
    y = 1e9 + 2 * points.double()
    lp = t.log_prob(y)
    assert torch.isfinite(lp).all()
    torch.testing.assert_close(lp, dist.log_prob(points).double() - math.log(2.0), rtol=0, atol=1e-5)
    torch.testing.assert_close(t.cdf(y), dist.cdf(points), rtol=0, atol=1e-6)
    for maximize in (True, False):
        ei = dist.expected_improvement(points, maximize=maximize).double()
        torch.testing.assert_close(t.expected_improvement(y, maximize=maximize), 2 * ei, rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(t.probability_of_improvement(y, maximize=maximize),
                                   dist.probability_of_improvement(points, maximize=maximize), rtol=0, atol=1e-6)


def test_chained_affines_compose_in_float64():
    dist, _, points = far_from_zero()
    chained, direct = dist.affine(3.0, 2.0).affine(1e9, 4.0), dist.affine(1e9 + 12.0, 8.0)
    assert chained.loc.dtype == torch.float64 and float(chained.loc) == 1e9 + 12.0 and float(chained.scale) == 8.0
    y = 1e9 + 12.0 + 8.0 * points.double()
    for stat in (lambda d: d.mean, lambda d: d.stddev, lambda d: d.icdf(0.3), lambda d: d.log_prob(y),
                 lambda d: d.expected_improvement(y)):
        torch.testing.assert_close(stat(chained), stat(direct))


def test_outputs_in_value_units_are_float64_only_with_an_affine():
    dist, t, points = far_from_zero()
    values = (lambda d, y: d.mean, lambda d, y: d.stddev, lambda d, y: d.variance, lambda d, y: d.icdf(0.5),
              lambda d, y: d.sample((2,)), lambda d, y: d.expected_improvement(y), lambda d, y: d.ucb(),
              lambda d, y: d.log_prob(y))
    probabilities = (lambda d, y: d.cdf(y), lambda d, y: d.probability_of_improvement(y), lambda d, y: d.probs)
    for stat in values + probabilities:
        assert stat(dist, points).dtype == torch.float32
    for stat in values:
        assert stat(t, 1e9 + 2 * points.double()).dtype == torch.float64
    for stat in probabilities:
        assert stat(t, 1e9 + 2 * points.double()).dtype == torch.float32
    in_float64 = RiemannDistribution(dist.log_probs.double(), dist.borders)
    for stat in values + probabilities:
        assert stat(in_float64, points).dtype == torch.float64


@PROPS
@given(dist=distributions(), qs=st.lists(st.floats(0.01, 0.99), min_size=1, max_size=5),
       us=st.lists(st.floats(-0.1, 1.1), min_size=1, max_size=3))
def test_negate_mirrors_the_distribution(dist, qs, us):
    neg = dist.negate()
    mag = spread(dist)
    assert torch.allclose(neg.mean.double(), -dist.mean.double(), atol=1e-5 * mag)
    assert torch.allclose(neg.variance.double(), dist.variance.double(), rtol=1e-4, atol=1e-9 * mag**2)
    for q in qs:
        y = dist.icdf(q)
        inside = ~near_border(dist, y)  # at a border the density jumps; mirrored, it takes the other side
        assert torch.allclose(neg.log_prob(-y)[inside], dist.log_prob(y)[inside], atol=1e-4), q
        tol = 1e-4 + 2 * local_density(dist, y) * ulp32(y)
        assert ((neg.cdf(-y).double() - (1 - dist.cdf(y).double())).abs() <= tol).all(), q
    for best in _best_values(dist, us):
        ei_min = dist.expected_improvement(best, maximize=False).double()
        assert torch.allclose(ei_min, neg.expected_improvement(-best, maximize=True).double(), atol=1e-6 * mag)
        pi_min = dist.probability_of_improvement(best, maximize=False).double()
        assert torch.allclose(pi_min, neg.probability_of_improvement(-best, maximize=True).double(), atol=1e-4)


# --- indexing and batch shapes -------------------------------------------------------------------

def test_indexing_selects_batch_elements():
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(2, 3, 6, generator=g)
    dist = RiemannDistribution(logits, torch.linspace(-1, 1, 7))
    assert dist.batch_shape == (2, 3)
    assert torch.allclose(dist[1].mean, dist.mean[1])
    assert torch.allclose(dist[1, 2].variance, dist.variance[1, 2])
    assert torch.allclose(dist[:, 0].cdf(0.3), dist.cdf(0.3)[:, 0])


def test_indexing_and_negation_keep_the_affine():
    g = torch.Generator().manual_seed(0)
    dist = RiemannDistribution(torch.randn(2, 3, 8, generator=g), torch.linspace(-1, 1, 9))
    loc, scale = torch.tensor([1e9, -5.0, 0.0], dtype=torch.float64), torch.tensor([2.0, 0.5, 3.0])
    t = dist.affine(loc, scale)  # per-column loc and scale, broadcast over the first batch dimension
    y = (loc + scale * torch.tensor([-1.5, 0.3, 1.7])).expand(2, 3)
    for index in ((1, 2), (0,), (slice(None), 0), (slice(None), slice(1, None))):
        part = t[index]
        assert part.batch_shape == t.mean[index].shape
        torch.testing.assert_close(part.mean, t.mean[index])
        torch.testing.assert_close(part.icdf(0.3), t.icdf(0.3)[index])
        torch.testing.assert_close(part.log_prob(y[index]), t.log_prob(y)[index])
    neg = t.negate()
    torch.testing.assert_close(neg.mean, -t.mean)
    torch.testing.assert_close(neg.stddev, t.stddev)
    torch.testing.assert_close(neg.icdf(0.3), -t.icdf(0.7), rtol=0, atol=1e-5)
    torch.testing.assert_close(neg.log_prob(-y), t.log_prob(y))
    # both are float32 sums over the buckets, in mirrored order: equal to float32 rounding (the values are float64)
    torch.testing.assert_close(neg.expected_improvement(-y), t.expected_improvement(y, maximize=False),
                               rtol=2e-6, atol=1e-6)
    torch.testing.assert_close(neg[1, 0].mean, -t.mean[1, 0])


def test_per_element_borders_match_shared_borders():
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(4, 6, generator=g)
    borders = torch.linspace(-2, 3, 7)
    shared = RiemannDistribution(logits, borders)
    each = RiemannDistribution(logits, borders.expand(4, 7).clone())
    y = torch.tensor([-5.0, 0.1, 2.9, 7.0])
    for method in ("log_prob", "cdf", "expected_improvement", "probability_of_improvement"):
        assert torch.allclose(getattr(each, method)(y), getattr(shared, method)(y), atol=1e-6), method
    assert torch.allclose(each.icdf(0.3), shared.icdf(0.3), atol=1e-6)
    assert torch.allclose(each.mean, shared.mean) and torch.allclose(each.variance, shared.variance)


# --- chunked evaluation, memory and gradients ------------------------------------------------------

def statistics(dist: RiemannDistribution, y: torch.Tensor, q: torch.Tensor) -> dict[str, torch.Tensor]:
    """Every statistic of `dist`, at value-unit points `y` and levels `q` where one is needed."""
    return {
        "mean": dist.mean, "variance": dist.variance, "stddev": dist.stddev, "log_prob": dist.log_prob(y),
        "cdf": dist.cdf(y), "icdf": dist.icdf(q), "ei_max": dist.expected_improvement(y),
        "ei_min": dist.expected_improvement(y, maximize=False), "pi_max": dist.probability_of_improvement(y),
        "pi_min": dist.probability_of_improvement(y, maximize=False), "ucb_max": dist.ucb(),
        "ucb_min": dist.ucb(maximize=False),
    }


def row_offset_distribution(per_row_borders: bool) -> RiemannDistribution:
    """A `4 x 5` batch, 12 buckets, each row far from the others (by its borders or its affine `loc`)."""
    g = torch.Generator().manual_seed(0)
    logits = 2 * torch.randn(4, 5, 12, generator=g)
    borders = torch.cumsum(torch.rand(4, 5, 13, generator=g) + 0.05, -1) - 3
    offsets = 100.0 * torch.arange(20.0).view(4, 5)
    scale = torch.tensor([1.0, 2.0, 0.5, 1.0, 3.0])
    if per_row_borders:
        return RiemannDistribution(logits, borders + offsets.unsqueeze(-1)).affine(0.0, scale)
    return RiemannDistribution(logits, borders[0, 0]).affine(offsets, scale)


@pytest.mark.parametrize("per_row_borders", [False, True], ids=["shared borders", "per-row borders"])
def test_statistics_in_chunks_of_rows_equal_the_whole_batch_at_once(monkeypatch, per_row_borders):
    dist = row_offset_distribution(per_row_borders)
    g = torch.Generator().manual_seed(1)
    y = dist.icdf(torch.rand(4, 5, generator=g)) + torch.randn(4, 5, generator=g, dtype=torch.float64)
    q = torch.rand(4, 5, generator=g)
    whole = statistics(dist, y, q)
    monkeypatch.setattr(riemann, "_CHUNK_ELEMENTS", 3 * 12)  # 3 rows per chunk, the last one partial
    chunked = statistics(dist, y, q)
    for name, value in whole.items():
        torch.testing.assert_close(chunked[name], value, msg=name)
    # Samples land in their own row (rows are 100 apart, far beyond their spread).
    samples = dist.sample((50,), generator=g)
    assert samples.shape == (50, 4, 5)
    assert ((samples - dist.mean).abs() <= 20 * dist.stddev).all()


MEMORY_SCRIPT = """
import sys, torch
from pfn.riemann import RiemannDistribution

def kib(field):
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith(field + ":"))

n, k = 25_000, 1000
table = torch.rand(n, k)  # normalised in place: no temporaries of the table's size
table /= table.sum(-1, keepdim=True)
dist = RiemannDistribution(table.log_(), torch.linspace(-3, 3, k + 1), normalized=True).affine(1e9, 2.0)
y = 1e9 + torch.randn(n, dtype=torch.float64)
baseline = kib("VmRSS")
stats = [dist.mean, dist.stddev, dist.log_prob(y), dist.cdf(y), dist.icdf(0.7), dist.expected_improvement(y),
         dist.expected_improvement(y, maximize=False), dist.sample()]
print((kib("VmHWM") - baseline) * 1024 / (table.numel() * table.element_size()))
"""


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads peak memory from /proc/self/status")
def test_statistics_of_a_large_batch_allocate_no_temporaries_of_the_tables_size():
    proc = subprocess.run([sys.executable, "-c", MEMORY_SCRIPT], capture_output=True, text=True, timeout=300,
                          cwd=Path(__file__).resolve().parents[1])
    assert proc.returncode == 0, proc.stderr
    added = float(proc.stdout.strip().splitlines()[-1])
    # Chunk-sized temporaries only (a few 4 MiB); the unchunked math added 2-5 tables.
    assert added < 1.0, f"the statistics added {added:.2f} times the log-probability table's memory"


GRADIENT_STATISTICS = ("mean", "variance", "stddev", "log_prob", "cdf", "icdf", "ei_max", "ei_min", "pi_max",
                       "pi_min", "ucb_max", "ucb_min")


@pytest.mark.parametrize("name", GRADIENT_STATISTICS)
def test_statistics_have_the_finite_difference_gradient_in_the_logits(monkeypatch, name):
    monkeypatch.setattr(riemann, "_CHUNK_ELEMENTS", 2 * 8)  # 2 rows per chunk: gradients cross chunks
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(5, 8, generator=g, dtype=torch.float64, requires_grad=True)
    borders = torch.tensor([-3.0, -1.5, -1.0, -0.2, 0.4, 0.9, 1.6, 2.0, 3.5], dtype=torch.float64)
    loc, scale = torch.tensor([0.5, -2.0, 0.0, 1.0, 3.0], dtype=torch.float64), 1.5
    y = loc + scale * torch.tensor([-4.0, -1.2, 0.1, 1.8, 3.0], dtype=torch.float64)  # tails and inner buckets
    q = torch.tensor([0.02, 0.3, 0.5, 0.77, 0.99], dtype=torch.float64)

    def statistic(logits: torch.Tensor) -> torch.Tensor:
        return statistics(RiemannDistribution(logits, borders).affine(loc, scale), y, q)[name]

    assert torch.autograd.gradcheck(statistic, (logits,))


# --- inputs outside a statistic's domain -----------------------------------------------------

def small_batch(affine: bool = False) -> RiemannDistribution:
    dist = RiemannDistribution(torch.randn(3, 4, 10, generator=torch.Generator().manual_seed(0)),
                               torch.linspace(0.0, 1.0, 11))
    return dist.affine(2.0, 3.0) if affine else dist


@pytest.mark.parametrize("q", [1.5, -0.1, math.nan, torch.tensor([0.2, 1.0 + 1e-6, 0.5, 0.5])])
def test_icdf_refuses_probabilities_outside_unit_interval(q):
    with pytest.raises(ValueError, match=r"q must be probabilities in \[0, 1\]"):
        small_batch().icdf(q)


def test_icdf_takes_the_ends_of_the_unit_interval_as_the_outermost_finite_quantiles():
    dist = small_batch()
    assert torch.equal(dist.icdf(0.0), dist.icdf(1e-7)) and torch.equal(dist.icdf(1.0), dist.icdf(1.0 - 1e-7))
    assert torch.isfinite(dist.icdf(1.0)).all()


@pytest.mark.parametrize("affine", [False, True])
@pytest.mark.parametrize("statistic", ["expected_improvement", "log_expected_improvement",
                                       "probability_of_improvement"])
def test_improvement_statistics_refuse_a_nan_best(statistic, affine):
    fn = getattr(small_batch(affine), statistic)
    for best in (math.nan, torch.tensor([0.5, math.nan, 0.5, 0.5])):
        for maximize in (True, False):
            with pytest.raises(ValueError, match="best contains NaN"):
                fn(best, maximize=maximize)


@pytest.mark.parametrize("affine", [False, True])
@pytest.mark.parametrize("method", ["log_prob", "cdf", "expected_improvement", "icdf"])
def test_inputs_that_do_not_broadcast_to_the_batch_shape_name_both_shapes(method, affine):
    dist = small_batch(affine)
    fn = getattr(dist, method)
    value = 0.5 * torch.ones(5)
    with pytest.raises(ValueError, match=r"of shape \(5,\) does not broadcast to the distribution's batch shape "
                                         r"\(3, 4\)"):
        fn(value)
    for shape in ((), (4,), (3, 1), (1, 4), (3, 4)):  # broadcastable shapes keep working
        assert fn(0.5 * torch.ones(shape)).shape == (3, 4)

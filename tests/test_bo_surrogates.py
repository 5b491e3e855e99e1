"""Surrogates: the Gaussian and bar predictives, the GP and PFN surrogates, their gradients and fantasies."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy import stats

import bo
from bo.surrogates import BarPredictive, GaussianPredictive, GPSurrogate, PFNSurrogate, make_surrogate
from bo.surrogates.outcome import OutcomeTransform, clip_bounds, inverse_yeo_johnson, most_normal_exponent, yeo_johnson
from pfn.riemann import RiemannDistribution


def _data(n: int = 8, d: int = 2, seed: int = 0, offset: float = 0.0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    X = torch.rand(n, d, generator=g, dtype=torch.float64)
    return X, offset + torch.sin(6 * X).sum(-1) + X[:, 0] ** 2


STATISTICS = {
    "mean": lambda p: p.mean,
    "variance": lambda p: p.variance,
    "quantile": lambda p: p.quantile(0.8),
    "log_ei": lambda p: p.log_expected_improvement(0.2),
    "pi": lambda p: p.probability_of_improvement(0.2),
    "ucb": lambda p: p.ucb(2.0),
}


# --- the Gaussian predictive -------------------------------------------------------------------

def test_gaussian_predictive_matches_the_normal_distribution():
    mean = torch.tensor([0.0, 1.0, -2.0, 5.0], dtype=torch.float64)
    std = torch.tensor([1.0, 0.5, 2.0, 0.1], dtype=torch.float64)
    pred, ref = GaussianPredictive(mean, std**2), stats.norm(mean.numpy(), std.numpy())
    best = 0.3
    z = (best - mean.numpy()) / std.numpy()
    ei = std.numpy() * (z * stats.norm.cdf(z) + stats.norm.pdf(z))
    np.testing.assert_allclose(pred.expected_improvement(best), ei, rtol=1e-10, atol=1e-300)
    np.testing.assert_allclose(pred.probability_of_improvement(best), ref.cdf(best), rtol=1e-12)
    np.testing.assert_allclose(pred.quantile(0.9), ref.ppf(0.9), rtol=1e-12)
    np.testing.assert_allclose(pred.ucb(4.0), -mean.numpy() + 2 * std.numpy(), rtol=1e-12)
    draws = pred.sample(20_000, generator=torch.Generator().manual_seed(0))
    assert draws.shape == (20_000, 4)
    np.testing.assert_allclose(draws.mean(0), mean, atol=0.05)


def test_log_ei_stays_finite_and_steep_where_ei_underflows():
    mean = torch.tensor([0.0, 40.0, 1e4], dtype=torch.float64, requires_grad=True)
    pred = GaussianPredictive(mean, torch.ones(3, dtype=torch.float64))
    log_ei = pred.log_expected_improvement(0.0)
    assert pred.expected_improvement(0.0)[2] == 0.0  # underflows
    assert torch.isfinite(log_ei).all() and log_ei[0] > log_ei[1] > log_ei[2]
    assert float(log_ei[1].detach()) == pytest.approx(-808.2985683566201, rel=1e-12)  # mpmath: log h(-40)
    log_ei.sum().backward()
    assert torch.isfinite(mean.grad).all() and (mean.grad < 0).all()


# --- GP surrogate ------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def gp() -> GPSurrogate:
    return GPSurrogate().fit(*_data())


def test_gp_predicts_any_batch_shape_in_y_units():
    X, y = _data(offset=1e3)
    gp = GPSurrogate().fit(X, y)
    pred = gp.predict(X)
    assert pred.batch_shape == (8,)
    assert float((pred.mean.detach() - y).abs().max()) < 0.05  # interpolates its (nearly noise-free) data
    assert gp.predict(torch.rand(4, 3, 2, dtype=torch.float64)).batch_shape == (4, 3)


@pytest.mark.parametrize("statistic", list(STATISTICS))
def test_gp_gradients_match_finite_differences(gp, statistic, central_difference):
    xq = torch.tensor([[0.3, 0.6], [0.8, 0.1]], dtype=torch.float64, requires_grad=True)
    STATISTICS[statistic](gp.predict(xq)).sum().backward()
    numeric = central_difference(lambda v: float(STATISTICS[statistic](gp.predict(v)).sum()), xq.detach(), 1e-6)
    torch.testing.assert_close(xq.grad, numeric, rtol=1e-4, atol=1e-6)


def test_gp_fantasy_keeps_the_mean_and_shrinks_the_variance_at_pending_points(gp):
    pending = torch.tensor([[0.5, 0.5], [0.9, 0.9]], dtype=torch.float64)
    before = gp.predict(pending)
    after = gp.condition(pending, before.mean.detach()).predict(pending)
    torch.testing.assert_close(after.mean, before.mean, rtol=1e-6, atol=1e-6)
    assert (after.variance < 0.5 * before.variance).all()
    assert gp.train_X.shape == (8, 2)  # the original is untouched


def test_gp_fit_depends_only_on_the_data():
    X, y = _data()
    torch.manual_seed(123)
    a = GPSurrogate().fit(X, y).predict(X).mean
    torch.manual_seed(456)
    b = GPSurrogate().fit(X, y).predict(X).mean
    assert torch.equal(a, b)


@pytest.mark.parametrize("extreme", [-1e200, 1e308, -1e308])
def test_gp_reads_a_huge_finite_value_as_an_extreme_one_and_keeps_predicting(extreme):
    X = torch.rand(12, 2, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    y = torch.sin(6 * X).sum(-1)
    y[3] = extreme
    gp = GPSurrogate().fit(X, y)
    pred = gp.predict(X)
    assert torch.isfinite(pred.mean).all() and torch.isfinite(pred.variance).all()
    others = torch.arange(12) != 3
    assert float((pred.mean[others] - y[others]).abs().max()) < 1.0  # the ordinary values are still modelled
    assert (pred.mean[3] < pred.mean[others].min()) == (extreme < 0)  # the extreme stays the extreme
    ei = pred.expected_improvement(float(y.min()))
    assert torch.isfinite(ei).all() and bool((ei >= 0).all())
    assert torch.isfinite(gp.condition(X[:2], pred.mean[:2].detach()).predict(X).mean).all()


# --- outcome transform -------------------------------------------------------------------------

@pytest.mark.parametrize("lam", [0.0, 0.3, 1.0, 1.7, 2.0])
def test_yeo_johnson_inverts_and_matches_scipy(lam):
    x = torch.linspace(-5, 5, 101, dtype=torch.float64)
    np.testing.assert_allclose(yeo_johnson(x, lam), stats.yeojohnson(x.numpy(), lmbda=lam), rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(inverse_yeo_johnson(yeo_johnson(x, lam), lam), x)
    assert torch.isfinite(inverse_yeo_johnson(torch.tensor([-50.0, 50.0], dtype=torch.float64), lam)).all()


def test_outcome_transform_unskews_standardises_and_keeps_order():
    y = torch.exp(torch.linspace(0, 6, 30, dtype=torch.float64)) + 1e6  # skewed, far from zero
    t = OutcomeTransform(y)
    z = t(y)
    assert 0.0 <= t.lam < 0.5
    assert float(z.mean()) == pytest.approx(0.0, abs=1e-12) and float(z.std()) == pytest.approx(1.0)
    assert (z[1:] > z[:-1]).all()
    assert abs(stats.skew(z.numpy())) < 0.6 * abs(stats.skew(y.numpy()))
    torch.testing.assert_close(t.loc + t.scale * t.untransform_standardised(z), y)
    assert OutcomeTransform(y, power=False).lam == 1.0
    assert OutcomeTransform(y[:2]).lam == 1.0  # too few to fit an exponent
    flat = OutcomeTransform(torch.full((5,), 3.0, dtype=torch.float64))
    assert flat.scale == 1.0 and torch.equal(flat(torch.tensor([3.0])), torch.zeros(1, dtype=torch.float64))


@pytest.mark.parametrize("draw", [lambda g: g.normal(size=50), lambda g: g.lognormal(size=40),
                                  lambda g: -g.lognormal(size=40), lambda g: g.standard_t(2, size=100)])
def test_most_normal_exponent_is_scipys_clipped_to_the_inverse_safe_range(draw):
    x = draw(np.random.default_rng(0))
    u = (x - x.mean()) / x.std(ddof=1)
    expected = min(max(float(stats.yeojohnson_normmax(u)), 0.0), 2.0)
    assert most_normal_exponent(torch.from_numpy(u)) == pytest.approx(expected, abs=1e-6)


# --- PFN surrogate -----------------------------------------------------------------------------

def test_pfn_surrogate_without_power_transform_is_the_network_on_standardised_y(tiny_pfn):
    X, y = _data(offset=1e6)
    sur = PFNSurrogate(tiny_pfn, power_transform=False).fit(X, y)
    xq = torch.rand(5, 2, dtype=torch.float64)
    mean, std = float(y.mean()), float(y.std())
    ref = tiny_pfn.predict(X, (y - mean) / std, xq).affine(mean, std)
    pred = sur.predict(xq)
    torch.testing.assert_close(pred.mean, ref.mean)
    torch.testing.assert_close(pred.quantile(0.3), ref.icdf(0.3))
    best = 1e6 + 0.5
    torch.testing.assert_close(pred.expected_improvement(best), ref.expected_improvement(best, maximize=False))
    assert float(pred.mean.min()) > 1e6 - 10  # values far from zero keep their precision


def test_pfn_surrogate_maps_the_bars_back_through_the_power_transform(tiny_pfn):
    X, y = _data(n=12)
    y = torch.exp(2 * y)  # skewed
    sur = PFNSurrogate(tiny_pfn).fit(X, y)
    assert sur.transform.lam < 1.0
    xq = torch.rand(6, 2, dtype=torch.float64)
    raw = tiny_pfn.predict(X, sur.transform(y), xq)
    pred = sur.predict(xq)
    t = sur.transform

    def to_y(z: torch.Tensor) -> torch.Tensor:
        return t.loc + t.scale * t.untransform_standardised(z)

    # Each bucket keeps the network's probability: the cdf at mapped borders is the network's at the borders.
    for b in tiny_pfn.head.borders[1:-1:7]:
        torch.testing.assert_close(pred.dist.cdf(to_y(b)), raw.cdf(b), rtol=1e-5, atol=1e-6)
    # Inside a bucket the density is uniform in y units: quantiles agree to within a bucket.
    width = float((to_y(tiny_pfn.head.borders[1:]) - to_y(tiny_pfn.head.borders[:-1])).max())
    for q in (0.05, 0.5, 0.95):
        torch.testing.assert_close(pred.quantile(q), to_y(raw.icdf(q)), rtol=0, atol=width)
    best = float(y.min())
    draws = pred.sample(20_000, generator=torch.Generator().manual_seed(0))
    assert draws.shape == (20_000, 6)
    ei_mc = (best - draws).clamp_min(0).mean(0)
    torch.testing.assert_close(pred.expected_improvement(best), ei_mc, rtol=0.1, atol=0.02 * float(y.std()))


@pytest.mark.parametrize("statistic", list(STATISTICS))
def test_pfn_gradients_reach_the_queries_and_match_finite_differences(tiny_pfn, statistic, central_difference):
    sur = PFNSurrogate(tiny_pfn).fit(*_data(n=10))
    xq = torch.tensor([[0.3, 0.6], [0.8, 0.1]], dtype=torch.float64, requires_grad=True)
    STATISTICS[statistic](sur.predict(xq)).sum().backward()
    assert xq.grad is not None and xq.grad.abs().sum() > 0
    numeric = central_difference(lambda v: float(STATISTICS[statistic](sur.predict(v)).sum()), xq.detach(), 1e-3)
    # float32 network: central differences with step 1e-3 are accurate to about 1e-3 relative.
    torch.testing.assert_close(xq.grad, numeric, rtol=3e-2, atol=3e-3)


def test_pfn_log_ei_is_the_log_of_ei_with_one_best_or_one_per_query(tiny_pfn):
    X, y = _data(n=10)
    sur = PFNSurrogate(tiny_pfn).fit(X, y)
    pred = sur.predict(torch.rand(6, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(3)))
    best = float(y.min())
    torch.testing.assert_close(pred.log_expected_improvement(best), pred.expected_improvement(best).log(),
                               rtol=0, atol=1e-5)
    per_query = pred.dist.log_expected_improvement(torch.full((6,), best, dtype=torch.float64), maximize=False)
    torch.testing.assert_close(pred.log_expected_improvement(best), per_query)


def test_bar_log_ei_stays_informative_where_float32_ei_underflows():
    borders = torch.linspace(-3.0, 3.0, 61)
    logits = torch.zeros(3, 60)
    logits[:, :30] = torch.tensor([-300.0, -200.0, -120.0]).unsqueeze(-1)  # a vanishing mass below 0
    best = 1.0 + 2.0 * -1.5  # -1.5 in standardised units
    pred = BarPredictive(RiemannDistribution(logits, borders).affine(1.0, 2.0))
    exact = BarPredictive(RiemannDistribution(logits.double(), borders.double()).affine(1.0, 2.0))
    assert (pred.expected_improvement(best) == 0).all()  # float32 underflow
    log_ei = pred.log_expected_improvement(best)
    torch.testing.assert_close(log_ei, exact.expected_improvement(best).log(), rtol=1e-6, atol=1e-3)
    assert log_ei[0] < log_ei[1] < log_ei[2] < -90


def test_pfn_predicts_botorch_shaped_batches(tiny_pfn):
    sur = PFNSurrogate(tiny_pfn).fit(*_data())
    xq = torch.rand(4, 3, 2, dtype=torch.float64)
    pred = sur.predict(xq)
    assert pred.batch_shape == (4, 3)
    torch.testing.assert_close(pred.mean, sur.predict(xq.reshape(12, 2)).mean.reshape(4, 3))


def test_pfn_fantasies_extend_the_context_and_keep_the_transform(tiny_pfn):
    X, y = _data(n=10)
    sur = PFNSurrogate(tiny_pfn).fit(X, y)
    pending = torch.rand(2, 2, dtype=torch.float64)
    believed = sur.predict(pending).mean.detach()
    fantasy = sur.condition(pending, believed)
    assert fantasy.transform is sur.transform and sur.train_X.shape == (10, 2)
    xq = torch.rand(5, 2, dtype=torch.float64)
    context = sur.transform(torch.cat([y, believed]))
    raw = tiny_pfn.predict(torch.cat([X, pending]), context, xq)
    torch.testing.assert_close(fantasy.predict(xq).dist.log_probs, raw.log_probs)


def test_surrogates_reject_bad_data_and_spaces_too_large_for_them(tiny_pfn):
    sur = PFNSurrogate(tiny_pfn)
    with pytest.raises(ValueError, match="at most 4"):
        sur.fit(torch.rand(5, 6), torch.rand(5))
    with pytest.raises(ValueError, match="failed trials"):
        sur.fit(torch.rand(5, 2), torch.tensor([1.0, math.nan, 0.0, 0.0, 0.0]))
    with pytest.raises(ValueError, match="shape"):
        sur.fit(torch.rand(5, 2), torch.rand(4))
    with pytest.raises(RuntimeError, match="not fitted"):
        sur.predict(torch.rand(2, 2))
    with pytest.raises(ValueError, match="unknown surrogate"):
        make_surrogate("forest")
    space = {f"x{i}": bo.Float(0, 1) for i in range(5)}
    with pytest.raises(ValueError, match="5 parameters but the surrogate takes at most 4"):
        bo.Optimizer(space, surrogate=sur)


def test_pfn_surrogate_needs_a_bar_head():
    from pfn.config import ModelConfig
    from pfn.model import PFN

    clf = PFN(ModelConfig(d_model=16, n_layers=1, n_heads=2, d_ff=32, max_features=2, head="classification",
                          max_classes=3))
    with pytest.raises(ValueError, match="bar"):
        PFNSurrogate(clf)


def test_bar_predictive_wraps_a_riemann_distribution_for_minimisation():
    logits = torch.randn(3, 10, generator=torch.Generator().manual_seed(0))
    dist = RiemannDistribution(logits, torch.linspace(-2, 2, 11))
    pred = bo.surrogates.BarPredictive(dist)
    torch.testing.assert_close(pred.expected_improvement(0.1), dist.expected_improvement(0.1, maximize=False))
    torch.testing.assert_close(pred.probability_of_improvement(0.1), dist.cdf(0.1))
    torch.testing.assert_close(pred.ucb(3.0), dist.ucb(3.0, maximize=False))
    torch.testing.assert_close(pred.log_expected_improvement(0.1), pred.expected_improvement(0.1).log())
    assert torch.isfinite(pred.log_expected_improvement(-1e3)).all()  # EI underflows to 0 there


# --- extreme values (clipped by a fixed rule) ------------------------------------------------------

@pytest.mark.parametrize("extreme", [-1e200, 1e308, -1e308])
def test_outcome_transform_clips_extreme_values_and_keeps_the_others_apart(extreme):
    y = torch.tensor([0.3, 0.1, 0.5, 0.7, 0.2, 0.4, extreme], dtype=torch.float64)
    transform = OutcomeTransform(y)
    z = transform(y)
    assert torch.isfinite(z).all() and z.abs().max() < 10
    assert torch.equal(torch.argsort(z[:6]), torch.argsort(y[:6]))  # the ordinary values stay distinct, in order
    assert (z[6] < z[:6]).all() if extreme < 0 else (z[6] > z[:6]).all()  # the extreme is still the best / worst
    median = np.median(y.numpy()[:6].tolist() + [extreme])  # 7 values: the 4th
    bound = median + np.sign(extreme) * 100 * 1.4826 * np.median(np.abs(y.numpy() - median))
    assert (transform.lo if extreme < 0 else transform.hi) == pytest.approx(bound)


def test_outcome_transform_leaves_ordinary_values_unclipped():
    y = torch.from_numpy(np.random.default_rng(0).lognormal(size=200))
    transform = OutcomeTransform(y)
    assert transform.lo < y.min() and y.max() < transform.hi


@pytest.mark.parametrize("extreme", [-1e200, 1e308, -1e308])
def test_pfn_surrogate_predicts_finitely_next_to_an_extreme_observation(tiny_pfn, extreme):
    X, y = _data(7)
    y[0] = extreme
    predictive = PFNSurrogate(tiny_pfn).fit(X, y).predict(torch.rand(5, 2, dtype=torch.float64))
    assert torch.isfinite(predictive.mean).all()
    assert torch.isfinite(predictive.log_expected_improvement(y.min())).all()


# --- past the trained context -------------------------------------------------------------------

def _limited(tiny_pfn, max_context: int) -> PFNSurrogate:
    tiny_pfn.info["train"] = {"max_context": max_context}
    return PFNSurrogate(tiny_pfn)


def test_pfn_surrogate_reads_its_context_limit_from_the_checkpoint():
    assert PFNSurrogate("bo").max_context == bo.surrogates.pfn.pfn.load("bo").info["train"]["max_context"]


def test_past_its_trained_context_the_pfn_sees_the_best_half_and_a_random_half(tiny_pfn):
    surrogate = _limited(tiny_pfn, 10)
    X, y = _data(30)
    seen = []
    encode = tiny_pfn.fit
    tiny_pfn.fit = lambda x, z, *args, **kwargs: seen.append((x, z)) or encode(x, z, *args, **kwargs)
    surrogate.fit(X, y)
    (x_seen, z_seen), = seen
    assert len(x_seen) == 10 and len(surrogate.train_y) == 30  # the transform is fitted to all 30
    rows = [int(torch.where((X == x).all(1))[0]) for x in x_seen]
    assert len(set(rows)) == 10
    assert set(rows[:5]) == set(torch.argsort(y)[:5].tolist())  # the 5 best
    torch.testing.assert_close(z_seen, surrogate.transform(y[rows]))
    again = _limited(tiny_pfn, 10).fit(X, y)
    torch.testing.assert_close(again.context_X, surrogate.context_X)  # a fit depends only on the data


def test_past_its_trained_context_the_fantasies_are_kept(tiny_pfn):
    surrogate = _limited(tiny_pfn, 10).fit(*_data(30))
    X_new = torch.rand(3, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(5))
    conditioned = surrogate.condition(X_new, torch.zeros(3, dtype=torch.float64))
    assert len(conditioned.context_X) == 10 and len(conditioned.train_X) == 33
    torch.testing.assert_close(conditioned.context_X[-3:], X_new)
    many = surrogate.condition(torch.rand(12, 2, dtype=torch.float64), torch.zeros(12, dtype=torch.float64))
    assert len(many.context_X) == 10


def test_within_its_trained_context_the_pfn_sees_every_observation(tiny_pfn):
    X, y = _data(10)
    surrogate = _limited(tiny_pfn, 10).fit(X, y)
    torch.testing.assert_close(surrogate.context_X, X)


def test_a_surrogate_reports_how_long_its_last_fit_took(tiny_pfn):
    for surrogate in (GPSurrogate(), PFNSurrogate(tiny_pfn)):
        assert surrogate.fit_seconds is None
        surrogate.fit(*_data())
        assert surrogate.fit_seconds is not None and surrogate.fit_seconds > 0


def test_clipping_leaves_exploratory_values_alone_when_trials_crowd_around_the_incumbent():
    # Branin at 20 random points and 300 within 0.05 of an optimum (unit cube): the robust spread
    # collapses, yet no ordinary value may be clipped (a plain 100-spread rule clipped 11 of the 20)
    from botorch.test_functions import Branin

    branin, g = Branin(), torch.Generator().manual_seed(0)
    low, high = branin.bounds
    optimum = (torch.tensor([-math.pi, 12.275]) - low) / (high - low)
    crowd = (optimum + 0.05 * (torch.rand(300, 2, generator=g, dtype=torch.float64) - 0.5)).clamp(0, 1)
    X = torch.cat([torch.rand(20, 2, generator=g, dtype=torch.float64), crowd])
    y = branin(low + X * (high - low))
    lo, hi = clip_bounds(y)
    assert lo <= float(y.min()) and hi >= float(y.max())
    z = OutcomeTransform(y)(y)
    assert torch.equal(torch.argsort(z), torch.argsort(y))


def test_clipping_brings_absurd_values_in_beyond_every_ordinary_one_keeping_the_order():
    y = torch.tensor([-1e200, 0.3, -0.2, 1.5, 2.0, 900.0, 1e308], dtype=torch.float64)
    lo, hi = clip_bounds(y)
    assert lo <= -0.2 and hi >= 900.0 and math.isfinite(lo) and math.isfinite(hi)
    assert lo > -1e6 and hi < 1e6  # the absurd values come in to within 100 spreads or the ordinary extremes
    clipped = y.clamp(lo, hi)
    assert torch.equal(torch.argsort(clipped), torch.argsort(y))
    assert float(clipped[0]) == lo and float(clipped[-1]) == hi

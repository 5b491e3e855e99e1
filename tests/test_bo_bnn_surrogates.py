"""The BNN surrogates of issue 21: the mixture predictive, the deep ensemble ("ensemble") and the NUTS BNN ("hmc")."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy import integrate

import bo
from bo.surrogates import SURROGATES, make_surrogate
from bo.surrogates.ensemble import EnsembleSurrogate
from bo.surrogates.hmc import HMCSurrogate
from bo.surrogates.mixture import MixturePredictive

DATA_BOX = 0.6  # training and held-out points lie in [0, 0.6]^d; the far corner (1, ..., 1) is away from them


def _objective(X: torch.Tensor) -> torch.Tensor:
    """A smooth known function on the unit cube, `n x d` -> `n`."""
    return torch.sin(6 * X).sum(-1) + X[:, 0] ** 2


def _split(n: int, d: int, seed: int = 0) -> tuple[torch.Tensor, ...]:
    g = torch.Generator().manual_seed(seed)
    X = DATA_BOX * torch.rand(n, d, generator=g, dtype=torch.float64)
    X_test = DATA_BOX * torch.rand(200, d, generator=g, dtype=torch.float64)
    return X, _objective(X), X_test, _objective(X_test)


def _best_constant_nll(y_test: torch.Tensor) -> float:
    """The held-out NLL of the best constant Gaussian predictor (the test set's own mean and variance)."""
    return 0.5 * math.log(2 * math.pi * math.e * float(y_test.var(unbiased=False)))


# --- the mixture predictive --------------------------------------------------------------------

@pytest.fixture(scope="module")
def mixture() -> MixturePredictive:
    means = torch.tensor([[0.0, 1.0, -3.0], [2.0, 1.5, 40.0], [-1.0, 0.5, 41.0]], dtype=torch.float64)
    variances = torch.tensor([[1.0, 0.04, 2.0], [0.25, 0.09, 1.0], [4.0, 0.01, 0.5]], dtype=torch.float64)
    return MixturePredictive(means, variances)


def _member_density(mixture: MixturePredictive, j: int):
    mu, sd = mixture.means[:, j].numpy(), mixture.variances[:, j].sqrt().numpy()
    return lambda t: float(np.mean(np.exp(-0.5 * ((t - mu) / sd) ** 2) / (sd * math.sqrt(2 * math.pi))))


@pytest.mark.parametrize("j", range(3))
def test_mixture_statistics_match_numerical_integrals_of_its_density(mixture, j):
    best, lo, hi = 0.7, -60.0, 80.0
    density = _member_density(mixture, j)
    mean = integrate.quad(lambda t: t * density(t), lo, hi, limit=400, points=[0, 40])[0]
    second = integrate.quad(lambda t: (t - mean) ** 2 * density(t), lo, hi, limit=400, points=[0, 40])[0]
    ei = integrate.quad(lambda t: (best - t) * density(t), lo, best, limit=400)[0]
    pi = integrate.quad(density, lo, best, limit=400)[0]
    assert float(mixture.mean[j]) == pytest.approx(mean, abs=1e-8)
    assert float(mixture.variance[j]) == pytest.approx(second, rel=1e-7)
    assert float(mixture.expected_improvement(best)[j]) == pytest.approx(ei, rel=1e-7, abs=1e-300)
    assert float(mixture.probability_of_improvement(best)[j]) == pytest.approx(pi, rel=1e-7, abs=1e-300)
    assert float(mixture.log_prob(best)[j].exp()) == pytest.approx(density(best), rel=1e-10)


def test_mixture_quantile_inverts_its_cdf_and_draws_follow_it(mixture):
    for q in (0.01, 0.3, 0.5, 0.9, 0.999):
        np.testing.assert_allclose(mixture.cdf(mixture.quantile(q)), q, atol=1e-10)
    draws = mixture.sample(100_000, generator=torch.Generator().manual_seed(0))
    assert draws.shape == (100_000, 3)
    assert ((draws.mean(0) - mixture.mean).abs() < 4 * mixture.stddev / math.sqrt(100_000)).all()
    np.testing.assert_allclose((draws < 0.7).double().mean(0), mixture.probability_of_improvement(0.7), atol=0.01)


def test_mixture_log_ei_stays_finite_where_every_member_s_ei_underflows():
    means = torch.tensor([[50.0, 0.0], [60.0, 0.0]], dtype=torch.float64, requires_grad=True)
    pred = MixturePredictive(means, torch.ones(2, 2, dtype=torch.float64))
    log_ei = pred.log_expected_improvement(0.0)
    assert pred.expected_improvement(0.0)[0] == 0.0 and torch.isfinite(log_ei).all()
    log_ei.sum().backward()
    assert torch.isfinite(means.grad).all() and (means.grad < 0).all()


def test_mixture_quantile_gradient_matches_finite_differences(central_difference):
    means = torch.tensor([[0.0, 1.0], [2.0, -1.0], [0.5, 3.0]], dtype=torch.float64)
    variances = torch.tensor([[1.0, 0.3], [0.5, 2.0], [0.2, 0.7]], dtype=torch.float64)

    def quantile(m: torch.Tensor) -> torch.Tensor:
        return MixturePredictive(m, variances).quantile(0.8).sum()

    m = means.clone().requires_grad_()
    quantile(m).backward()
    np.testing.assert_allclose(m.grad, central_difference(quantile, means, 1e-6), rtol=1e-5, atol=1e-8)


# --- both surrogates ---------------------------------------------------------------------------

def _tiny_hmc() -> HMCSurrogate:
    """A tiny NUTS run; its data padded to 16 rows in 1-d, every HMC test here reuses one JAX compilation."""
    return HMCSurrogate(hidden=32, warmup=50, draws=50, thinning=1, max_tree_depth=5)


def _fit(name: str, X: torch.Tensor, y: torch.Tensor):
    """Each surrogate at test-sized settings: a shorter ensemble training, a tiny NUTS run."""
    return (EnsembleSurrogate(steps=300) if name == "ensemble" else _tiny_hmc()).fit(X, y)


@pytest.fixture(scope="module", params=["ensemble", "hmc"])
def fitted(request) -> tuple:
    X, y, X_test, y_test = _split(14, 1)
    return request.param, _fit(request.param, X, y), (X, y, X_test, y_test)


def test_bnn_surrogates_are_registered_by_name():
    assert SURROGATES["ensemble"] is EnsembleSurrogate and SURROGATES["hmc"] is HMCSurrogate
    assert isinstance(make_surrogate("hmc"), HMCSurrogate)


def test_held_out_nll_beats_every_constant_predictor(fitted):
    name, surrogate, (_, _, X_test, y_test) = fitted
    pred = surrogate.predict(X_test)
    nll = -float(pred.log_prob(y_test).mean())
    assert nll < _best_constant_nll(y_test) - 0.1, (name, nll, _best_constant_nll(y_test))
    assert pred.mean.dtype == torch.float64 and pred.batch_shape == (200,)


def test_uncertainty_grows_away_from_the_data(fitted):
    name, surrogate, (X, *_) = fitted
    at_data = surrogate.predict(X).stddev.mean()
    far = surrogate.predict(torch.ones(1, 1, dtype=torch.float64)).stddev
    assert float(far) > 1.25 * float(at_data), (name, float(far), float(at_data))


def test_log_ei_gradient_reaches_the_queries(fitted, central_difference):
    name, surrogate, (X, y, *_) = fitted
    best = float(y.min())
    x = torch.tensor([[[0.31]], [[0.75]]], dtype=torch.float64)  # batch_shape 2 x 1 (BoTorch's b x q)

    def log_ei(z: torch.Tensor) -> torch.Tensor:
        return surrogate.predict(z).log_expected_improvement(best).sum()

    z = x.clone().requires_grad_()
    log_ei(z).backward()
    assert surrogate.predict(x).batch_shape == (2, 1)
    np.testing.assert_allclose(z.grad, central_difference(log_ei, x, 1e-6), rtol=1e-4, atol=1e-7)


def test_fit_depends_only_on_the_data(fitted):
    name, surrogate, (X, y, X_test, _) = fitted
    again = _fit(name, X.clone(), y.clone())
    torch.testing.assert_close(again.predict(X_test).mean, surrogate.predict(X_test).mean, rtol=0, atol=0)
    assert surrogate.fit_seconds > 0


def test_extreme_observation_keeps_predictions_finite():
    X, y, X_test, _ = _split(10, 2)
    y[3] = -1e200
    pred = EnsembleSurrogate(steps=50).fit(X, y).predict(X_test)
    assert torch.isfinite(pred.mean).all() and torch.isfinite(pred.variance).all()
    assert torch.isfinite(pred.log_expected_improvement(-1e200)).all()


def _forrester(params: dict) -> float:
    x = params["x"]
    return float((6 * x - 2) ** 2 * math.sin(12 * x - 4))


@pytest.mark.parametrize("surrogate", ["ensemble", "hmc"])
def test_bo_optimize_runs_with_each_bnn_surrogate(surrogate):
    """By name for the ensemble (its default settings); a tiny NUTS run for "hmc" (its defaults take seconds)."""
    surrogate = _tiny_hmc() if surrogate == "hmc" else surrogate
    space = {"x": bo.Float(0.0, 1.0)}
    result = bo.optimize(_forrester, space, n_trials=6, surrogate=surrogate, n_initial=3, seed=0, progress=False)
    assert len(result.history) == 6 and math.isfinite(result.best_value)
    assert result.optimizer.surrogate.fit_seconds > 0

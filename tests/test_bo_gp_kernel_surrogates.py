"""The GP-kernel surrogates of issue 21: the infinite-width BNN ("ibnn") and deep kernel learning ("dkl")."""

from __future__ import annotations

import math

import pytest
import torch

import bo
from bo.surrogates import SURROGATES, make_surrogate
from bo.surrogates.base import Surrogate
from bo.surrogates.dkl import DKLSurrogate
from bo.surrogates.ibnn import IBNNSurrogate

FAST = {"ibnn": lambda: IBNNSurrogate(depth=3), "dkl": lambda: DKLSurrogate(steps=100)}  # tiny settings for tests


def _objective(X: torch.Tensor) -> torch.Tensor:
    """A smooth known function on the unit cube, `n x d` -> `n`."""
    return torch.sin(6 * X).sum(-1) + X[:, 0] ** 2


def _points(n: int, d: int, seed: int, lo: float = 0.0, hi: float = 1.0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return lo + (hi - lo) * torch.rand(n, d, generator=g, dtype=torch.float64)


def _observation_variance(surrogate: Surrogate) -> float:
    """The fitted noise variance in the units of `y` (the models' likelihoods see standardised outcomes)."""
    model = surrogate.model
    return float(model.likelihood.noise) * float(model.outcome_transform.stdvs) ** 2


@pytest.fixture(scope="module", params=sorted(FAST))
def fitted_1d(request) -> tuple[str, Surrogate]:
    X = _points(12, 1, seed=0)
    return request.param, FAST[request.param]().fit(X, _objective(X))


def test_both_are_registered_by_name():
    assert SURROGATES["ibnn"] is IBNNSurrogate and SURROGATES["dkl"] is DKLSurrogate
    assert isinstance(make_surrogate("ibnn"), IBNNSurrogate) and make_surrogate("ibnn").depth == 3
    assert isinstance(make_surrogate("dkl"), DKLSurrogate) and make_surrogate("dkl").steps == 300


def test_held_out_nll_beats_every_constant_predictor(fitted_1d):
    name, surrogate = fitted_1d
    X_test = _points(200, 1, seed=1)
    y_test = _objective(X_test)
    with torch.no_grad():
        pred = surrogate.predict(X_test)
        var = pred.variance + _observation_variance(surrogate)
        nll = float((0.5 * torch.log(2 * math.pi * var) + 0.5 * (y_test - pred.mean) ** 2 / var).mean())
    best_constant = 0.5 * math.log(2 * math.pi * math.e * float(y_test.var(unbiased=False)))  # about 0.76
    assert surrogate.fit_seconds is not None and surrogate.fit_seconds > 0
    assert nll < best_constant - 1.0, (name, nll, best_constant)


@pytest.mark.parametrize("name", sorted(FAST))
def test_uncertainty_grows_away_from_the_data(name):
    X = _points(15, 2, seed=2, lo=0.35, hi=0.65)
    surrogate = FAST[name]().fit(X, _objective(X))
    corners = torch.tensor([[0.0, 0.0], [0.0, 1.0], [1.0, 0.0], [1.0, 1.0]], dtype=torch.float64)
    with torch.no_grad():
        at_data, far = surrogate.predict(X).stddev.mean(), surrogate.predict(corners).stddev
    # measured: ibnn 0.018 at the data, 0.07-0.76 at the corners; dkl (100 steps) 0.036 and 0.10-0.45
    assert far.min() > at_data and far.mean() > 3 * at_data, (name, far, float(at_data))


def test_log_ei_gradient_reaches_the_queries(fitted_1d):
    name, surrogate = fitted_1d
    X = torch.tensor([[0.13], [0.47], [0.86]], dtype=torch.float64, requires_grad=True)
    best = float(surrogate.train_y.min())
    surrogate.predict(X).log_expected_improvement(best).sum().backward()
    eps = 1e-6
    with torch.no_grad():
        def f(Z: torch.Tensor) -> torch.Tensor:
            return surrogate.predict(Z).log_expected_improvement(best).sum()
        numeric = torch.stack([(f(X + eps * e) - f(X - eps * e)) / (2 * eps) for e in torch.eye(3).unsqueeze(-1)])
    torch.testing.assert_close(X.grad, numeric.view_as(X), rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("name", sorted(FAST))
def test_fit_depends_only_on_the_data(name):
    X = _points(8, 2, seed=3)
    queries = _points(5, 2, seed=4)
    means = []
    for global_seed in (1, 2):
        torch.manual_seed(global_seed)
        with torch.no_grad():
            means.append(FAST[name]().fit(X, _objective(X)).predict(queries).mean)
    torch.testing.assert_close(means[0], means[1], rtol=0, atol=0)


def test_condition_keeps_hyperparameters_and_sees_the_new_point(fitted_1d):
    name, surrogate = fitted_1d
    x_new = torch.tensor([[0.99]], dtype=torch.float64)
    y_new = torch.tensor([-3.0], dtype=torch.float64)
    conditioned = surrogate.condition(x_new, y_new)
    assert conditioned.train_X.shape == (13, 1) and surrogate.train_X.shape == (12, 1)
    with torch.no_grad():
        before, after = surrogate.predict(x_new), conditioned.predict(x_new)
    assert abs(float(after.mean) + 3.0) < abs(float(before.mean) + 3.0) and after.stddev < before.stddev
    kept = dict(conditioned.model.named_parameters())
    assert kept.keys() == dict(surrogate.model.named_parameters()).keys()
    for key, value in surrogate.model.named_parameters():  # network weights and kernel hyperparameters alike
        torch.testing.assert_close(value, kept[key], rtol=0, atol=0)


def test_extreme_observations_are_clipped_and_predictions_stay_finite(fitted_1d):
    name, surrogate = fitted_1d
    X = _points(8, 1, seed=5)
    y = _objective(X)
    y[0] = -1e200
    fitted = type(surrogate)(**({"steps": 30} if name == "dkl" else {})).fit(X, y)
    with torch.no_grad():
        pred = fitted.predict(_points(4, 1, seed=6))
    assert torch.isfinite(pred.mean).all() and torch.isfinite(pred.log_expected_improvement(-1e200)).all()


@pytest.mark.parametrize("name", ["ibnn", "dkl"])
def test_bo_optimize_runs_with_the_surrogate_by_name(name):
    space = {"a": bo.Float(0.0, 1.0), "b": bo.Float(0.0, 1.0)}
    result = bo.optimize(lambda p: (p["a"] - 0.3) ** 2 + (p["b"] - 0.7) ** 2, space, 6, surrogate=name, n_initial=3,
                         seed=0, progress=False)
    assert len(result.history) == 6 and result.best_value is not None and math.isfinite(result.best_value)
    assert result.optimizer.surrogate.fit_seconds is not None

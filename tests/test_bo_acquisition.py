"""Acquisition functions and their optimisation over continuous and mixed spaces."""

from __future__ import annotations

import pytest
import torch

import bo
from bo.acquisition import make_acquisition
from bo.acquisition_optimizer import AcquisitionOptimizer
from bo.space import Space
from bo.surrogates import GaussianPredictive, Surrogate


class Bowl(Surrogate):
    """A known predictive: mean `10 * |x - centre|^2` plus `bumps * sin` ripples, constant variance."""

    def __init__(self, centre: list[float], bumps: float = 0.0) -> None:
        super().__init__()
        self.centre, self.bumps = torch.tensor(centre, dtype=torch.float64), bumps

    def _fit(self, X: torch.Tensor, y: torch.Tensor) -> None:
        pass

    def predict(self, X: torch.Tensor) -> GaussianPredictive:
        mean = 10 * ((X - self.centre) ** 2).sum(-1) + self.bumps * torch.sin(25 * X).sum(-1)
        return GaussianPredictive(mean, torch.full_like(mean, 0.01))


def _acquisition(surrogate: Surrogate, kind: str = "ei", best: float = 0.0):
    acq = make_acquisition(kind)
    return lambda X: acq(surrogate.predict(X), best)


@pytest.mark.parametrize("kind", ["ei", "pi", "ucb"])
def test_the_optimiser_finds_the_acquisition_maximum_of_a_known_function(kind):
    space = Space({"a": bo.Float(0, 1), "b": bo.Float(0, 1)})
    f = _acquisition(Bowl([0.3141, 0.7182]), kind)
    x, value = AcquisitionOptimizer(n_candidates=16, n_around_best=0, n_starts=2).optimize(f, space, seed=0)
    torch.testing.assert_close(x, torch.tensor([0.3141, 0.7182], dtype=torch.float64), rtol=0, atol=2e-3)
    random = torch.rand(4096, 2, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    assert value >= float(f(random).max())
    assert value == pytest.approx(float(f(x.unsqueeze(0))[0]))


@pytest.mark.parametrize("refiner", ["lbfgsb", "ascent"])
def test_both_refiners_converge_on_a_known_maximum_from_few_candidates(refiner):
    space = Space({"a": bo.Float(0, 1), "b": bo.Float(0, 1), "c": bo.Float(0, 1)})
    f = _acquisition(Bowl([0.3141, 0.7182, 0.05]))
    settings = AcquisitionOptimizer(n_candidates=8, n_around_best=0, n_starts=4,
                                    maxiter=8 if refiner == "ascent" else 100, refiner=refiner)
    x, value = settings.optimize(f, space, seed=0)
    torch.testing.assert_close(x, torch.tensor([0.3141, 0.7182, 0.05], dtype=torch.float64), rtol=0, atol=3e-3)
    with torch.no_grad():
        starts = f(space.snap(bo.space.sobol(8, 3, 0)))
    assert value > float(starts.max())


def test_the_pfn_takes_a_cheaper_acquisition_budget_and_the_gp_the_thorough_defaults(tiny_pfn):
    space = {"a": bo.Float(0, 1), "b": bo.Float(0, 1)}
    pfn_settings = bo.Optimizer(space, surrogate=bo.PFNSurrogate(tiny_pfn), seed=0).acquisition_optimizer
    assert pfn_settings == AcquisitionOptimizer(**bo.PFNSurrogate.acquisition_budget) != AcquisitionOptimizer()
    assert pfn_settings.refiner == "ascent" and pfn_settings.n_starts > AcquisitionOptimizer().n_starts
    assert bo.Optimizer(space, surrogate="gp", seed=0).acquisition_optimizer == AcquisitionOptimizer()
    with pytest.raises(ValueError, match="refiner"):
        AcquisitionOptimizer(refiner="adam")


def test_the_optimiser_beats_random_candidates_on_a_rippled_1d_acquisition():
    space = Space({"a": bo.Float(0, 1)})
    f = _acquisition(Bowl([0.62], bumps=0.5))
    random = torch.rand(64, 1, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    x, value = AcquisitionOptimizer(n_candidates=64, n_around_best=0).optimize(f, space, seed=1)
    grid = torch.linspace(0, 1, 100_001, dtype=torch.float64).unsqueeze(-1)
    assert value > float(f(random).max())
    assert value == pytest.approx(float(f(grid).max()), abs=1e-6)


def test_local_search_reaches_the_discrete_optimum_from_few_candidates():
    space = Space({"x": bo.Float(0, 1), "n": bo.Int(1, 20), "c": bo.Categorical(["a", "b", "c", "d", "e"])})
    target = space.encode([{"x": 0.25, "n": 13, "c": "d"}])[0]
    f = _acquisition(Bowl(target.tolist()))
    x, _ = AcquisitionOptimizer(n_candidates=4, n_around_best=0, n_starts=2).optimize(f, space, seed=0)
    best = space.decode(x.unsqueeze(0))[0]
    assert (best["n"], best["c"]) == (13, "d") and best["x"] == pytest.approx(0.25, abs=2e-3)


def test_candidates_around_the_incumbents_find_a_narrow_peak():
    space = Space({"a": bo.Float(0, 1), "b": bo.Float(0, 1)})
    narrow = Bowl([0.9, 0.1])
    centre = narrow.centre.clone()
    f = _acquisition(narrow, best=-1.0)  # EI only near the centre
    x, _ = AcquisitionOptimizer(n_candidates=4, n_around_best=32, maxiter=1).optimize(
        f, space, seed=0, incumbents=(centre + 0.03).unsqueeze(0))
    assert float((x - centre).norm()) < 0.05


def test_excluded_points_are_not_suggested_while_others_exist():
    space = Space({"n": bo.Int(1, 4), "c": bo.Categorical(["a", "b"])})
    f = _acquisition(Bowl(space.encode([{"n": 2, "c": "b"}])[0].tolist()))
    optimizer = AcquisitionOptimizer(n_candidates=8, n_around_best=0)
    first, _ = optimizer.optimize(f, space, seed=0)
    second, _ = optimizer.optimize(f, space, seed=0, exclude=first.unsqueeze(0))
    assert space.decode(first.unsqueeze(0))[0] == {"n": 2, "c": "b"}
    assert space.decode(second.unsqueeze(0))[0] in ({"n": 1, "c": "b"}, {"n": 3, "c": "b"}, {"n": 2, "c": "a"})
    everything = space.encode([{"n": n, "c": c} for n in range(1, 5) for c in "ab"])  # nothing else is left
    again, _ = optimizer.optimize(f, space, seed=0, exclude=everything)
    torch.testing.assert_close(again, first)


def test_acquisition_functions_are_the_predictives_statistics():
    pred = GaussianPredictive(torch.tensor([0.0, 1.0], dtype=torch.float64), torch.tensor([1.0, 4.0],
                                                                                           dtype=torch.float64))
    torch.testing.assert_close(bo.EI()(pred, 0.5), pred.log_expected_improvement(0.5))
    torch.testing.assert_close(bo.PI()(pred, 0.5), pred.probability_of_improvement(0.5))
    torch.testing.assert_close(bo.UCB(beta=9.0)(pred, 0.5), -pred.mean + 3 * pred.stddev)
    assert make_acquisition("ucb") == bo.UCB() and make_acquisition(bo.UCB(3.0).to_dict()) == bo.UCB(3.0)
    with pytest.raises(ValueError, match="unknown acquisition"):
        make_acquisition("kg")
    with pytest.raises(ValueError, match="beta >= 0"):
        bo.UCB(-1.0)
    with pytest.raises(ValueError, match="n_starts"):
        AcquisitionOptimizer(n_starts=0)


def test_default_condition_refits_on_the_union():
    class Average(Surrogate):
        def _fit(self, X, y):
            self.level = float(y.mean())

        def predict(self, X):
            mean = torch.full(X.shape[:-1], self.level, dtype=torch.float64)
            return GaussianPredictive(mean, torch.ones_like(mean))

    sur = Average().fit(torch.rand(2, 1), torch.tensor([1.0, 3.0]))
    fantasy = sur.condition(torch.rand(2, 1), torch.tensor([5.0, 7.0]))
    assert sur.level == 2.0 and fantasy.level == 4.0 and fantasy.train_X.shape == (4, 1)

"""`bo.botorch.PFNModel`: BoTorch's acquisition functions on a PFN, with joint q-batch posteriors."""

from __future__ import annotations

import pytest
import torch
from botorch.acquisition.logei import qLogExpectedImprovement, qLogNoisyExpectedImprovement
from botorch.optim import optimize_acqf
from botorch.sampling.get_sampler import get_sampler

from bo.botorch import PFNModel, PFNPosterior
from pfn.riemann import RiemannDistribution


def data(n: int = 10, d: int = 2, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(n, d, generator=g, dtype=torch.float64)
    return x, (torch.sin(5 * x).sum(-1, keepdim=True) + 0.1 * torch.randn(n, 1, generator=g, dtype=torch.float64))


@pytest.fixture
def model(tiny_pfn) -> PFNModel:
    return PFNModel(*data(), model=tiny_pfn)


def test_posterior_shapes_and_marginals(model):
    X = torch.rand(5, 3, 2, dtype=torch.float64)
    post = model.posterior(X)
    assert isinstance(post, PFNPosterior)
    assert post.mean.shape == post.variance.shape == (5, 3, 1)
    assert post.rsample(torch.Size([4])).shape == (4, 5, 3, 1)
    assert model.posterior(X[0]).rsample(torch.Size([2, 3])).shape == (2, 3, 3, 1)
    # the marginal of the first point is the surrogate's predictive: its sample quantiles match
    one = model.posterior(X[:1, :1])
    draws = one.rsample(torch.Size([4000])).flatten()
    predictive = model.surrogate.predict(X[:1, :1])
    for q in (0.1, 0.5, 0.9):
        assert draws.quantile(q).item() == pytest.approx(predictive.quantile(q).item(), abs=0.1)


def test_q_batch_draws_are_joint_by_sequential_conditioning(model, tiny_pfn):
    """Draw j is the u_j-quantile of the PFN conditioned on the data and the earlier draws, exactly."""
    X = torch.rand(3, 2, dtype=torch.float64)
    base = torch.randn(2, 3, 1, dtype=torch.float64, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        y = model.posterior(X).rsample_from_base_samples(torch.Size([2]), base)  # 2 x 3 x 1
        u = torch.special.ndtr(base[..., 0])
        transform = model.surrogate.transform
        for s in range(2):
            xc, zc = model.train_X, transform(model.surrogate.train_y)
            for j in range(3):
                dist = tiny_pfn.fit(xc, zc).predict(X[j:j + 1])
                z = RiemannDistribution(dist.log_probs, dist.borders, normalized=True).icdf(u[s, j:j + 1])
                expected = model.to_y(z)
                torch.testing.assert_close(y[s, j, 0], expected[0], rtol=1e-4, atol=1e-4)
                xc, zc = torch.cat([xc, X[j:j + 1]]), torch.cat([zc, z.double()])
    # the second draw depends on the first: other first draws give other second draws at the same u_2
    other = base.clone()
    other[:, 0] += 1.5
    with torch.no_grad():
        y_other = model.posterior(X).rsample_from_base_samples(torch.Size([2]), other)
    assert not torch.allclose(y_other[:, 1], y[:, 1])


@pytest.mark.parametrize("acquisition", ["qLogEI", "qLogNEI"])
def test_botorch_acquisitions_run_with_gradients_and_optimize_acqf(model, acquisition):
    train_X = model.train_X
    sampler = get_sampler(model.posterior(train_X[:1].unsqueeze(0)), torch.Size([16]), seed=0)
    if acquisition == "qLogEI":
        acqf = qLogExpectedImprovement(model, best_f=model.surrogate.train_y.max(), sampler=sampler)
    else:
        acqf = qLogNoisyExpectedImprovement(model, X_baseline=train_X, sampler=sampler, cache_root=False)
    X = torch.rand(4, 2, 2, dtype=torch.float64, requires_grad=True)
    value = acqf(X)
    assert value.shape == (4,) and torch.isfinite(value).all()
    value.sum().backward()
    assert torch.isfinite(X.grad).all() and X.grad.abs().sum() > 0
    bounds = torch.tensor([[0.0, 0.0], [1.0, 1.0]], dtype=torch.float64)
    candidate, _ = optimize_acqf(acqf, bounds=bounds, q=2, num_restarts=2, raw_samples=16,
                                 options={"maxiter": 5})
    assert candidate.shape == (2, 2) and ((candidate >= 0) & (candidate <= 1)).all()


def test_bad_inputs_get_clear_errors(tiny_pfn):
    x, y = data()
    with pytest.raises(ValueError, match="one output"):
        PFNModel(x, torch.cat([y, y], dim=1), model=tiny_pfn)
    with pytest.raises(ValueError, match="n x 1"):
        PFNModel(x, y[:-1], model=tiny_pfn)
    with pytest.raises(ValueError, match="n x d"):
        PFNModel(x[0], y, model=tiny_pfn)
    model = PFNModel(x, y, model=tiny_pfn)
    with pytest.raises(ValueError, match="d = 2"):
        model.posterior(torch.rand(3, 1, 5, dtype=torch.float64))
    with pytest.raises(NotImplementedError, match="noise-free"):
        model.posterior(torch.rand(3, 1, 2, dtype=torch.float64), observation_noise=True)
    with pytest.raises(NotImplementedError, match="condition_on_observations"):
        model.condition_on_observations(x, y)

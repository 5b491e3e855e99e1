"""`priors.LinearRegressionPrior` and its exact posterior predictive; the linreg config and example."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import pfn
from pfn.cli import load_run_config
from priors import Fixed, Gamma, LinearRegressionPrior, LogNormal, Uniform, prior_from_dict
from priors.linreg import linreg_posterior_predictive, noise_grid, noise_marginal_predictive

ROOT = Path(__file__).resolve().parent.parent


def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def split(batch, n: int):
    return batch.x[:, :n], batch.y[:, :n], batch.x[:, n:], batch.y[:, n:]


def test_shapes_meta_reproducibility_and_serialisation():
    prior = LinearRegressionPrior()
    a = prior.sample(5, 30, 3, generator=gen(0), n_context=12)
    b = prior.sample(5, 30, 3, generator=gen(0), n_context=12)
    assert a.x.shape == (5, 30, 3) and a.y.shape == a.target_y.shape == (5, 30) and a.n_context == 12
    assert a.meta["w"].shape == (5, 3) and a.meta["noise"].shape == (5,) and (a.meta["noise"] > 0).all()
    assert torch.equal(a.x, b.x) and torch.equal(a.y, b.y) and torch.equal(a.meta["w"], b.meta["w"])
    assert not torch.equal(a.y, prior.sample(5, 30, 3, generator=gen(1)).y)
    assert torch.equal(a.target_y, a.y)  # noisy targets by default
    assert prior.sample(2, 10, 1).n_context == 5
    assert prior_from_dict(prior.to_dict()) == prior
    custom = LinearRegressionPrior(noise=Uniform(0.1, 0.4), noisy_targets=False)
    assert prior_from_dict(json.loads(json.dumps(custom.to_dict()))) == custom
    with pytest.raises(ValueError, match="noise"):
        LinearRegressionPrior(noise=Fixed(0.0))


def test_targets_follow_the_linear_model_with_the_drawn_noise():
    prior = LinearRegressionPrior(noise=Uniform(0.05, 0.5), noisy_targets=False)
    batch = prior.sample(4000, 20, 4, generator=gen(2))
    signal = torch.einsum("bnf,bf->bn", batch.x, batch.meta["w"])
    torch.testing.assert_close(batch.target_y, signal)
    resid_var = (batch.y - signal).pow(2).mean(1)
    assert (resid_var / batch.meta["noise"]).mean().item() == pytest.approx(1.0, abs=0.03)
    assert batch.meta["noise"].mean().item() == pytest.approx(0.275, abs=0.01)
    assert batch.meta["w"].std().item() == pytest.approx(1.0, abs=0.02)
    assert batch.x.std().item() == pytest.approx(1.0, abs=0.01)


def test_known_noise_predictive_matches_monte_carlo_over_the_posterior_of_w():
    prior = LinearRegressionPrior(noise=Fixed(0.3))
    batch = prior.sample(3, 12, 4, generator=gen(3), n_context=6)  # n > F and n < F below
    for n in (2, 6):
        xc, yc, xq, _ = split(batch, n)
        mean, var = linreg_posterior_predictive(xc, yc, xq, 0.3)
        xd, yd, s2 = xc.double(), yc.double(), 0.3
        prec = torch.eye(4, dtype=torch.float64) + xd.transpose(1, 2) @ xd / s2
        cov = torch.linalg.inv(prec)
        mu = (cov @ (xd.transpose(1, 2) @ yd.unsqueeze(-1))).squeeze(-1) / s2
        g = gen(4)
        w = mu.unsqueeze(1) + torch.randn(3, 200_000, 4, generator=g, dtype=torch.float64) @ torch.linalg.cholesky(
            cov).transpose(1, 2)
        ystar = torch.einsum("bmf,bsf->bsm", xq.double(), w)
        ystar = ystar + s2**0.5 * torch.randn(ystar.shape, generator=g, dtype=torch.float64)
        torch.testing.assert_close(mean, ystar.mean(1), atol=0.02, rtol=0)
        torch.testing.assert_close(var, ystar.var(1), atol=0.0, rtol=0.02)


def test_predictive_without_context_is_the_prior_predictive():
    batch = LinearRegressionPrior().sample(2, 5, 3, generator=gen(5), n_context=0)
    mean, var = linreg_posterior_predictive(batch.x[:, :0], batch.y[:, :0], batch.x, torch.tensor([0.2, 0.5]))
    assert mean.abs().max() == 0
    torch.testing.assert_close(var, batch.x.double().pow(2).sum(-1) + torch.tensor([[0.2], [0.5]], dtype=torch.float64))


def test_noise_marginal_with_fixed_noise_equals_the_known_noise_predictive():
    batch = LinearRegressionPrior(noise=Fixed(0.4)).sample(6, 25, 3, generator=gen(6), n_context=10)
    xc, yc, xq, yq = split(batch, 10)
    mean, var = linreg_posterior_predictive(xc, yc, xq, 0.4)
    mix = noise_marginal_predictive(xc, yc, xq, Fixed(0.4))
    torch.testing.assert_close(mix.mean, mean)
    torch.testing.assert_close(mix.variance, var)
    expected = torch.distributions.Normal(mean, var.sqrt()).log_prob(yq.double())
    torch.testing.assert_close(mix.log_prob(yq), expected)


@pytest.mark.parametrize("noise", [LogNormal(-1.5, 1.0), Uniform(0.05, 1.0), Gamma(2.0, 4.0)])
def test_noise_marginal_matches_importance_sampling_over_the_hyperprior(noise):
    prior = LinearRegressionPrior(noise=noise)
    batch = prior.sample(3, 14, 2, generator=gen(7), n_context=6)
    xc, yc, xq, yq = split(batch, 6)
    mix = noise_marginal_predictive(xc, yc, xq, noise)
    s2 = noise.sample((20_000,), gen(8), "cpu").double().clamp_min(1e-8)
    from priors.linreg import _gaussian_posterior

    mean, var, log_ml = _gaussian_posterior(xc, yc, xq, s2.expand(3, -1))
    log_w = log_ml - torch.logsumexp(log_ml, 1, keepdim=True)
    comp = torch.distributions.Normal(mean, var.sqrt()).log_prob(yq.double().unsqueeze(1))
    torch.testing.assert_close(mix.log_prob(yq), torch.logsumexp(log_w.unsqueeze(-1) + comp, 1), atol=0.01, rtol=0)
    torch.testing.assert_close(mix.mean, (log_w.exp().unsqueeze(-1) * mean).sum(1), atol=0.01, rtol=0)
    assert noise_grid(noise)[0].shape == (200,)


def test_linreg_config_builds_and_the_prior_fits_its_model():
    _, config = load_run_config("linreg")
    prior = prior_from_dict(config["prior"])
    model_cfg = pfn.ModelConfig.from_dict(config["model"])
    train_cfg = pfn.TrainConfig.from_dict(config["train"])
    assert isinstance(prior, LinearRegressionPrior)
    assert model_cfg.max_features == train_cfg.max_features == 8 and model_cfg.feature_encoding == "pad"
    assert train_cfg.max_context == 40 and model_cfg.head == "bar"


def test_a_few_training_steps_of_a_tiny_model_reduce_the_loss():
    prior = LinearRegressionPrior()
    model_cfg = pfn.ModelConfig(max_features=4, d_model=32, n_layers=2, n_heads=2, d_ff=64, n_buckets=100)
    train_cfg = pfn.TrainConfig(steps=200, batch_size=16, lr=3e-3, warmup_steps=5, n_points=30, min_context=1,
                                max_context=20, min_features=1, max_features=4, val_every=200, val_batches=2,
                                checkpoint_every=200, border_samples=20_000, device="cpu")
    untrained = pfn.train(prior, model_cfg, train_cfg, None, progress=False, stop_after=0)
    held_out = [prior.sample(64, 30, f, generator=gen(100 + f), n_context=15) for f in (1, 4)]
    before = [untrained.loss(b).item() for b in held_out]
    trained = pfn.train(prior, model_cfg, train_cfg, None, progress=False)
    after = [trained.loss(b).item() for b in held_out]
    assert all(a < b - 0.2 for a, b in zip(after, before, strict=True)), (before, after)


def test_linear_regression_example_runs_in_quick_mode(tmp_path):
    script = ROOT / "examples" / "linear_regression.py"
    out = subprocess.run([sys.executable, str(script), "--quick", "--out", str(tmp_path)],
                         capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "exact predictive" in out.stdout

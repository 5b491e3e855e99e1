"""The Distribution Transformer: the Gaussian-mixture type, the exact posterior, the task prior, the model
through the engine's training loop and checkpoints, and its example."""

from __future__ import annotations

import json
import math
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import pfn
from pfn.architectures import build_model
from pfn.checkpoint import load_folder, save_checkpoint
from pfn.config import ModelConfig, TrainConfig
from pfn.distribution_transformer import GMM, DistributionTransformer, LinearGaussian, exact_posterior
from pfn.distribution_transformer.evaluation import kl_monte_carlo
from pfn.distribution_transformer.observations import problem, stages
from priors import GMMTaskPrior, prior_from_dict
from priors.gmm import batch_posterior, mixture_posterior, split_component_rows, token_width

ROOT = Path(__file__).resolve().parent.parent
PRIOR = GMMTaskPrior()
TINY = ModelConfig(architecture="dist", head="gmm", max_features=6, d_model=32, n_layers=2, n_heads=2, d_ff=64)
TRAIN = TrainConfig(steps=120, batch_size=32, lr=3e-3, warmup_steps=5, n_points=34, min_context=1, max_context=30,
                    mixed_context=True, min_features=6, max_features=6, checkpoint_every=60, val_every=60,
                    val_batches=2, device="cpu", seed=0)


def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def bimodal_prior() -> GMM:
    covs = torch.tensor([[[1.0, 0.3], [0.3, 0.5]], [[0.4, -0.1], [-0.1, 0.8]], [[0.2, 0.0], [0.0, 0.2]]])
    return GMM(torch.tensor([0.5, 0.3, 0.2]), torch.tensor([[-1.5, 0.0], [1.5, 0.5], [0.0, 2.0]]), covs)


def randomised(config: ModelConfig = TINY) -> DistributionTransformer:
    """An untrained model whose every parameter is perturbed, so that it actually changes its prior."""
    torch.manual_seed(0)
    model = build_model(config)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.1 * torch.randn(p.shape, generator=gen(1)))
    return model.eval()


# --- the GMM type ----------------------------------------------------------------------------------

def test_gmm_log_prob_matches_torch_mixture_and_samples_match_its_moments():
    gmm = bimodal_prior()
    reference = torch.distributions.MixtureSameFamily(
        torch.distributions.Categorical(gmm.weights), torch.distributions.MultivariateNormal(gmm.means, gmm.covs))
    z = torch.randn(50, 2, dtype=torch.float64)
    torch.testing.assert_close(gmm.log_prob(z), reference.log_prob(z))
    draws = gmm.sample(200_000, generator=gen(0))
    torch.testing.assert_close(draws.mean(0), gmm.mean, atol=0.02, rtol=0)
    torch.testing.assert_close(torch.cov(draws.T), gmm.cov, atol=0.03, rtol=0)
    torch.testing.assert_close(gmm.mean, reference.mean)
    # The empirical mean log-density of its own samples is the entropy's negative: compare to a fresh draw.
    assert abs(float(gmm.log_prob(draws).mean() - reference.log_prob(gmm.sample(200_000, gen(1))).mean())) < 0.02


def test_gmm_linear_step_is_the_distribution_of_f_z_plus_noise():
    gmm, f, q = bimodal_prior(), torch.tensor([[0.9, 0.2], [-0.1, 1.1]]), 0.05 * torch.eye(2)
    moved = gmm.linear_step(f, q)
    draws = gmm.sample(200_000, gen(2)) @ f.double().T + 0.05**0.5 * torch.randn(200_000, 2, generator=gen(3))
    torch.testing.assert_close(moved.mean, draws.mean(0), atol=0.02, rtol=0)
    torch.testing.assert_close(moved.cov, torch.cov(draws.T), atol=0.03, rtol=0)
    torch.testing.assert_close(moved.weights, gmm.weights)



def test_gmm_describe_writes_one_line_and_refuses_a_batch():
    gmm = GMM(torch.tensor([0.25, 0.75]), torch.tensor([[0.0, 1.0], [-2.0, 0.5]]),
              torch.tensor([[[4.0, 0.0], [0.0, 1.0]], [[1.0, 0.0], [0.0, 0.25]]]))
    assert gmm.describe() == "0.25 x N([+0.00, +1.00], sd [2.00, 1.00]) + 0.75 x N([-2.00, +0.50], sd [1.00, 0.50])"
    with pytest.raises(ValueError, match="unbatched"):
        GMM(gmm.weights[None], gmm.means[None], gmm.covs[None]).describe()


def test_monte_carlo_kl_matches_the_closed_form_between_gaussians_and_their_marginals():
    mean, cov = torch.tensor([0.5, -1.0], dtype=torch.float64), torch.tensor([[1.0, 0.3], [0.3, 0.5]])
    q = GMM(torch.ones(1), mean[None], cov[None])
    p = GMM(torch.ones(1), torch.zeros(1, 2), torch.eye(2)[None])
    mvn = torch.distributions.MultivariateNormal
    exact = torch.distributions.kl_divergence(mvn(mean, cov.double()), mvn(torch.zeros(2), torch.eye(2)))
    assert abs(float(kl_monte_carlo(q, p, 200_000, gen(0))) - float(exact)) < 0.01
    # The marginal of the first dimension: N(0.5, 1) against N(0, 1), KL = 0.5^2 / 2.
    first = torch.tensor([True, False])
    assert abs(float(kl_monte_carlo(q, p, 200_000, gen(1), first)) - 0.125) < 0.01

# --- the exact posterior --------------------------------------------------------------------------

def test_exact_posterior_matches_a_fine_grid_in_one_dimension():
    prior = GMM(torch.tensor([0.2, 0.5, 0.3]), torch.tensor([[-2.0], [0.5], [3.0]]),
                torch.tensor([[[0.5]], [[1.0]], [[0.3]]]))
    obs = LinearGaussian(torch.tensor([[1.5]]), 2.0, offset=torch.tensor([0.5]))
    y = torch.tensor([2.1, 3.5, 1.0])
    post = exact_posterior(prior, y, obs)
    grid = torch.linspace(-10, 10, 40_001, dtype=torch.float64).unsqueeze(-1)
    normal = torch.distributions.Normal(1.5 * grid + 0.5, 2.0**0.5)
    log_joint = prior.log_prob(grid) + normal.log_prob(y.double()).sum(-1)
    step = float(grid[1] - grid[0])
    log_evidence = torch.logsumexp(log_joint, 0) + math.log(step)
    torch.testing.assert_close(post.log_prob(grid), log_joint - log_evidence, atol=1e-6, rtol=0)
    _, _, _, evidence = mixture_posterior(prior.weights[None], prior.means[None], prior.covs[None],
                                          torch.full((1, 3, 1), 1.5), torch.full((1, 3), 2.0), (y - 0.5)[None])
    torch.testing.assert_close(evidence[0], log_evidence, atol=1e-6, rtol=0)


def test_exact_posterior_matches_importance_sampling_in_two_dimensions():
    prior = bimodal_prior()
    obs = LinearGaussian(torch.tensor([[1.0, -0.5], [0.3, 0.8]]), torch.tensor([0.5, 1.0]))
    y = torch.tensor([[0.8, 0.1], [1.2, -0.4]])
    post = exact_posterior(prior, y, obs)
    z = prior.sample(400_000, gen(4))
    log_w = torch.distributions.Normal(z @ obs.matrix.T, obs.noise_var.sqrt()).log_prob(y.double()[:, None]).sum((0, 2))
    w = torch.softmax(log_w, 0)
    mean = (w[:, None] * z).sum(0)
    cov = (w[:, None, None] * (z - mean)[:, :, None] * (z - mean)[:, None, :]).sum(0)
    torch.testing.assert_close(post.mean, mean, atol=0.01, rtol=0)
    torch.testing.assert_close(post.cov, cov, atol=0.01, rtol=0)


def test_exact_posteriors_chain_one_observation_at_a_time():
    prior, obs = bimodal_prior(), LinearGaussian(torch.tensor([[1.0, 0.5]]), 0.3)
    y = torch.tensor([[0.4], [1.1], [-0.2]])
    chained = prior
    for i in range(3):
        chained = exact_posterior(chained, y[i:i + 1], obs)
    at_once = exact_posterior(prior, y, obs)
    for name in ("weights", "means", "covs"):
        torch.testing.assert_close(getattr(chained, name), getattr(at_once, name))


# --- the task prior -------------------------------------------------------------------------------

def test_task_prior_layout_matches_its_meta_and_the_exact_posterior_api():
    batch = PRIOR.sample(6, 30, token_width(2), generator=gen(5), n_context=9)
    meta = batch.meta
    weights, means, chol = split_component_rows(batch.x[:, 9:13], 2)
    torch.testing.assert_close(weights, meta["weights"])
    torch.testing.assert_close(chol @ chol.transpose(-1, -2), meta["covs"])
    assert (batch.x[:, 13:] == 0).all() and (batch.y[:, 9:] == 0).all()
    w, m, s = batch_posterior(batch)
    for i in range(6):
        d, k, o = (int(meta[key][i]) for key in ("latent_dim", "n_components", "obs_dim"))
        assert (meta["latent"][i, d:] == 0).all() and (weights[i, k:] == 0).all()
        prior = GMM(meta["weights"][i, :k].double() / meta["weights"][i, :k].double().sum(),
                    meta["means"][i, :k, :d], chol[i, :k, :d, :d].double() @ chol[i, :k, :d, :d].double().mT)
        obs = LinearGaussian(meta["obs_matrix"][i, :o, :d], meta["noise_std"][i, :o].double() ** 2)
        n_full = 9 // o  # whole observations; a partial last one is checked through the batch rows below
        post = exact_posterior(prior, batch.y[i, :n_full * o].reshape(n_full, o), obs)
        rows = batch.x[i, :9]
        torch.testing.assert_close(rows[:, :2], meta["obs_matrix"][i, torch.arange(9) % o])
        if n_full * o == 9:
            torch.testing.assert_close(post.means, m[i, :k, :d], atol=1e-4, rtol=1e-4)
            torch.testing.assert_close(post.weights, w[i, :k], atol=1e-4, rtol=1e-4)


def test_task_prior_round_trips_and_refuses_a_layout_it_cannot_write():
    prior = GMMTaskPrior(max_components=3, noise_std=0.5)
    assert prior_from_dict(prior.to_dict()) == prior
    a = prior.sample(4, 20, token_width(2), generator=gen(6))
    b = prior_from_dict(prior.to_dict()).sample(4, 20, token_width(2), generator=gen(6))
    assert torch.equal(a.x, b.x) and torch.equal(a.y, b.y) and a.n_context == 17
    with pytest.raises(ValueError, match="n_features=3"):
        prior.sample(4, 20, 3)
    with pytest.raises(ValueError, match="max_components=3 query rows"):
        prior.sample(4, 20, token_width(2), n_context=18)
    with pytest.raises(ValueError, match="wishart_df"):
        GMMTaskPrior(wishart_df=1)


# --- the model ------------------------------------------------------------------------------------

def test_untrained_model_returns_its_prior_exactly():
    model = build_model(TINY).eval()
    prior = bimodal_prior()
    post = model.posterior(prior, torch.tensor([[0.3], [0.9]]), LinearGaussian(torch.tensor([[1.0, 2.0]]), 0.1))
    for name in ("weights", "means", "covs"):
        torch.testing.assert_close(getattr(post, name), getattr(prior, name), atol=1e-12, rtol=1e-12)
    one_dim = GMM(torch.tensor([1.0]), torch.tensor([[4.0]]), torch.tensor([[[9.0]]]))
    post = model.posterior(one_dim, torch.tensor([1.0]), LinearGaussian([[1.0]], 1.0))
    assert post.dim == 1 and post.n_components == 1
    torch.testing.assert_close(post.covs, one_dim.covs)


def test_head_loss_is_the_nll_of_the_true_latent_under_the_predicted_marginal():
    model = randomised()
    batch = PRIOR.sample(8, 24, token_width(2), generator=gen(7), n_context=20)
    with torch.no_grad():
        outputs = model(batch.x, batch.y[:, :20])
        loss = model.head.loss(outputs, batch)
    post = GMM.from_scale_tril(*split_component_rows(model.head.parameters_of(outputs), 2))
    torch.testing.assert_close(model.head.distribution(outputs).log_prob(batch.meta["latent"].double()),
                               post.log_prob(batch.meta["latent"]))
    assert loss.shape == (8, 1)
    for i in range(8):
        d = int(batch.meta["latent_dim"][i])
        task = GMM.from_scale_tril(post.log_weights[i], post.means[i], post.scale_tril[i]).marginal(d)
        torch.testing.assert_close(loss[i, 0], -task.log_prob(batch.meta["latent"][i, :d]))
    assert not torch.allclose(post.means, split_component_rows(batch.x[:, 20:24].double(), 2)[1])


def test_model_posterior_equals_its_forward_on_the_prior_layout():
    model = randomised()
    prior = bimodal_prior()
    obs = LinearGaussian(torch.tensor([[1.0, 0.5], [0.0, 1.0]]), torch.tensor([0.2, 0.4]), offset=torch.tensor([1, 0]))
    y = torch.tensor([[0.5, 0.2], [1.5, -0.3], [0.9, 0.0]])
    batched = model.posterior(GMM(prior.weights[None].repeat(2, 1), prior.means[None].repeat(2, 1, 1),
                                  prior.covs[None].repeat(2, 1, 1, 1)), y[None].repeat(2, 1, 1), obs)
    single = model.posterior(prior, y, obs)
    assert batched.batch_shape == (2,) and single.batch_shape == ()
    torch.testing.assert_close(batched.means[1], single.means)
    chained = model.posterior(single, y[:1], obs)  # a posterior is the next prior
    assert chained.n_components == 3 and torch.isfinite(chained.covs).all()



def test_stages_of_a_long_series_fit_the_trained_count_and_keep_the_exact_posterior():
    prior = bimodal_prior()
    obs = LinearGaussian(torch.tensor([[1.0, 0.5], [0.0, 1.0]]), torch.tensor([0.2, 0.4]), offset=torch.tensor([1, 0]))
    y = torch.randn(2345, 2, generator=gen(3), dtype=torch.float64) + torch.tensor([2.0, 0.5], dtype=torch.float64)
    p = problem(prior, y, obs)
    parts = stages(p, obs_dim=2, max_measurements=101)
    assert [part.span for part in parts] == [(0, 50), (50, 500), (500, 2345)]
    assert all(part.values.shape[1] <= 100 for part in parts)
    weights, means, covs = p.prior.weights, p.prior.means, p.prior.covs
    for part in parts:  # each stage's exact posterior is the next stage's prior
        weights, means, covs, _ = mixture_posterior(weights, means, covs, part.a, part.noise_var, part.values)
    exact = exact_posterior(prior, y, obs)
    torch.testing.assert_close(weights[0], exact.weights, atol=1e-9, rtol=1e-6)
    torch.testing.assert_close(means[0], exact.means, atol=1e-9, rtol=1e-6)
    torch.testing.assert_close(covs[0], exact.covs, atol=1e-12, rtol=1e-6)


def test_posterior_leaves_a_component_of_weight_zero_unchanged():
    """A chained posterior can carry a weight that underflowed to 0: refining it anyway made it grow each update
    until it overflowed (NaN after about 90 chained updates)."""
    model = randomised()
    prior = GMM(torch.tensor([1.0, 0.0]), torch.tensor([[0.0, 0.0], [40.0, -30.0]]), 2.0 * torch.eye(2).repeat(2, 1, 1))
    post = model.posterior(prior, torch.tensor([[0.3], [0.1]]), LinearGaussian([[1.0, 0.5]], 0.5))
    assert post.weights[1] == 0
    torch.testing.assert_close(post.means[1], prior.means[1])
    torch.testing.assert_close(post.covs[1], prior.covs[1])

def test_padding_and_measurement_order_never_change_a_prediction():
    model = randomised()
    batch = PRIOR.sample(3, 24, token_width(2), generator=gen(8), n_context=20)
    padded = batch.with_context_sizes(torch.tensor([20, 7, 1]))
    with torch.no_grad():
        out = model(padded.x, padded.y[:, :20], padded.context_mask)
        for i, n in enumerate((20, 7, 1)):
            rows = torch.cat([batch.x[i:i + 1, :n], batch.x[i:i + 1, 20:24]], dim=1)
            alone = model(rows, batch.y[i:i + 1, :n])
            torch.testing.assert_close(out[i:i + 1], alone, atol=1e-5, rtol=1e-5)
        order = torch.randperm(20, generator=gen(9))
        shuffled = model(torch.cat([batch.x[:, order], batch.x[:, 20:]], dim=1), batch.y[:, order])
        torch.testing.assert_close(shuffled, model(batch.x, batch.y[:, :20]), atol=1e-5, rtol=1e-5)
    exact = batch_posterior(padded)
    truncated = mixture_posterior(batch.meta["weights"][1:2], batch.meta["means"][1:2], batch.meta["covs"][1:2],
                                  batch.x[1:2, :7, :2], batch.x[1:2, :7, 2] ** 2, batch.y[1:2, :7])
    torch.testing.assert_close(exact[1][1], truncated[1][0], atol=1e-6, rtol=1e-6)


@pytest.mark.parametrize("make, match", [
    (lambda: GMM(torch.tensor([0.5, 0.6]), torch.zeros(2, 1), torch.ones(2, 1, 1)), "sum to 1"),
    (lambda: GMM(torch.ones(1), torch.zeros(1, 2), torch.tensor([[[1.0, 2.0], [2.0, 1.0]]])), "positive definite"),
    (lambda: GMM(torch.tensor([1.0]), torch.zeros(1, 2), torch.ones(1, 3, 3)), "covs"),
    (lambda: GMM(torch.tensor([1.0]), torch.zeros(1, 2), torch.tensor([[[1.0, 0.5], [0.0, 1.0]]])), "symmetric"),
    (lambda: LinearGaussian(torch.ones(2, 2), torch.tensor([1.0, -1.0])), "noise_var must be > 0"),
    (lambda: exact_posterior(bimodal_prior(), torch.ones(3, 1), LinearGaussian(torch.ones(1, 3), 1.0)), "3 columns"),
    (lambda: exact_posterior(bimodal_prior(), torch.ones(3, 2), LinearGaussian(torch.ones(1, 2), 1.0)), r"\(n, 1\)"),
    (lambda: build_model(TINY).posterior(GMM(torch.full((5,), 0.2), torch.zeros(5, 1), torch.ones(5, 1, 1)),
                                         torch.ones(2), LinearGaussian([[1.0]], 1.0)), "at most 4 components"),
    (lambda: build_model(TINY).posterior(GMM(torch.ones(1), torch.zeros(1, 3), torch.eye(3)[None]),
                                         torch.ones(2), LinearGaussian([[1.0, 0, 0]], 1.0)), "at most 2 dimensions"),
    (lambda: build_model(ModelConfig(architecture="dist", head="gmm", max_features=4)), "max_features=6"),
    (lambda: build_model(ModelConfig(head="gmm")), "architecture='dist'"),
    (lambda: ModelConfig(architecture="nope"), "architecture 'nope' is not supported"),
])
def test_bad_inputs_raise_a_clear_value_error(make, match):
    with pytest.raises(ValueError, match=match):
        make()


def test_training_through_the_engine_lowers_the_loss_and_round_trips_a_checkpoint(tmp_path):
    batches = [PRIOR.sample(64, 34, token_width(2), generator=gen(10 + i), n_context=30) for i in range(2)]
    untrained = build_model(TINY)  # returns the prior: its loss is the prior's NLL
    model = pfn.train(PRIOR, TINY, TRAIN, tmp_path / "run", progress=False)
    with torch.no_grad():
        before, after = (sum(float(m.loss(b)) for b in batches) / 2 for m in (untrained, model))
    assert isinstance(model, DistributionTransformer)
    assert after < before - 0.3, (before, after)
    loaded = pfn.load(tmp_path / "run")
    copy = load_folder(save_checkpoint(model, tmp_path / "copy"))
    assert isinstance(loaded, DistributionTransformer) and loaded.info["record"]["steps"] == TRAIN.steps
    prior, obs = bimodal_prior(), LinearGaussian(torch.tensor([[1.0, -1.0]]), 0.5)
    expected = model.posterior(prior, torch.tensor([[0.7]]), obs)
    for other in (loaded, copy):
        got = other.posterior(prior, torch.tensor([[0.7]]), obs)
        torch.testing.assert_close(got.means, expected.means, atol=0, rtol=0)
        torch.testing.assert_close(got.covs, expected.covs, atol=0, rtol=0)


def test_example_runs_in_quick_mode(tmp_path):
    script = ROOT / "examples" / "distribution_transformer.py"
    out = subprocess.run([sys.executable, str(script), "--quick", "--out", str(tmp_path)], capture_output=True,
                         text=True, cwd=ROOT, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "KL(predicted || exact)" in out.stdout


def test_readme_states_the_measurement_count_the_shipped_model_was_trained_on():
    trained = json.loads((ROOT / "pfn" / "configs" / "dist-gmm.json").read_text())["train"]["max_context"]
    readme = (ROOT / "README.md").read_text()
    stated = re.findall(r"up to (\d+) (?:scalar )?linear-Gaussian measurements", readme)
    stated += re.findall(r"\| `dist-gmm` \|.* 1 to (\d+) measurements", readme)
    assert len(stated) == 2 and {int(n) for n in stated} == {trained}, stated


def test_dist_demo_figure_labels_every_axis():
    from pfn.distribution_transformer.demo import demo_task, dist_demo_figure

    task = demo_task()
    name, sensor, readings = task["stages"][0]
    exact = exact_posterior(task["prior"], readings, sensor)
    fig = dist_demo_figure([(name, task["prior"], exact, exact)] * 2, task["truth"])
    assert all(ax.get_xlabel() and ax.get_ylabel() for ax in fig.axes) and len(fig.axes) == 2

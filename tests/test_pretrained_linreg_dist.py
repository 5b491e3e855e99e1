"""Quality floors of the shipped linear-regression PFN and Distribution Transformer on held-out tasks of their priors.

Both have an exact answer to be measured against: the conjugate posterior predictive
(`priors.linreg`) and the closed-form posterior mixture (`pfn.distribution_transformer.exact_posterior`). Each floor
lies between the value measured on the shipped model (in the comments) and what ignoring the data
gives (the prior); an untrained model of the same config gets the prior's value or worse, and the
`untrained` tests check that it fails the floors. Fixed seeds, none used in training; the
benchmarks (`benchmarks/linreg.py`, `benchmarks/dist.py`) run the same scores on more tasks.
"""

from __future__ import annotations

from typing import Any

import pytest
import torch

from pfn.architectures import build_model
from pfn.checkpoint import load, read_manifest
from pfn.distribution_transformer import GMM, LinearGaussian, exact_posterior
from pfn.distribution_transformer.evaluation import draw_tasks, kl_monte_carlo, score_tasks, tracking
from pfn.linreg import evaluate_linreg
from priors import prior_from_dict

SHIPPED = read_manifest()["models"]
needs_linreg = pytest.mark.skipif("linreg" not in SHIPPED, reason="pretrained/linreg is not shipped")
needs_dist = pytest.mark.skipif("dist-gmm" not in SHIPPED, reason="pretrained/dist-gmm is not shipped")

# --- linear regression ------------------------------------------------------------------------------
# 512 tasks x 16 noisy queries per (d, n), seed 2025 + 100 d + n. Measured on the shipped linreg:
#
#   d  n | PFN/ridge MSE | PFN/prior MSE | NLL gap PFN - exact | prior's NLL gap | untrained: MSE ratios, NLL gap
#   2  5 |     1.13      |     0.28      |        0.044        |      0.72       |  4.0, 1.00, 1.04
#   2 30 |     1.01      |     0.18      |        0.011        |      0.94       |  5.6, 1.00, 1.25
#   5  5 |     1.28      |     0.33      |        0.092        |      0.69       |  3.9, 1.00, 0.95
#   5 30 |     1.34      |     0.11      |        0.029        |      1.39       | 12.2, 1.00, 1.65
#
# (ridge: the exact posterior mean given the task's true noise; prior: predicting 0.) On 4096 tasks the
# MSE ratios are 1.17, 1.02, 1.20, 1.23: short of the 2% target; at d = 5, n = 30 the tenth of
# the tasks with the largest targets (max |y| > 8) carries about 80% of the excess.
LINREG_TASKS, LINREG_QUERIES = 512, 16
MAX_MSE_OVER_RIDGE = 1.6  # measured <= 1.34; untrained >= 3.9
MAX_MSE_OVER_PRIOR = 0.5  # measured <= 0.33; untrained 1.00
LINREG_CASES = [  # d, n, largest NLL gap to the exact predictive (nats per query)
    (2, 5, 0.2),  # measured 0.044
    (2, 30, 0.1),  # measured 0.011
    (5, 5, 0.2),  # measured 0.092
    (5, 30, 0.1),  # measured 0.029
]


def untrained_copy(model: torch.nn.Module) -> torch.nn.Module:
    """A freshly initialised model of `model`'s config (and head state: the bar head's borders)."""
    torch.manual_seed(0)
    return build_model(model.config, model.head.saved_state(), model.info).eval()


def linreg_failures(model: torch.nn.Module, d: int, n: int, max_nll_gap: float) -> list[str]:
    """The linear-regression floors `model` misses on the `(d, n)` held-out tasks (empty: all met)."""
    prior = prior_from_dict(model.info["prior"])
    r = evaluate_linreg(model, prior, n, d, LINREG_TASKS, LINREG_QUERIES, seed=2025 + 100 * d + n)
    checks = {
        f"NLL gap {r['nll_pfn'] - r['nll_exact']:.3f} >= {max_nll_gap}": r["nll_pfn"] - r["nll_exact"] < max_nll_gap,
        f"MSE {r['mse_pfn']:.3f} >= {MAX_MSE_OVER_RIDGE} x ridge {r['mse_ridge']:.3f}":
            r["mse_pfn"] < MAX_MSE_OVER_RIDGE * r["mse_ridge"],
        f"MSE {r['mse_pfn']:.3f} >= {MAX_MSE_OVER_PRIOR} x prior {r['mse_prior']:.3f}":
            r["mse_pfn"] < MAX_MSE_OVER_PRIOR * r["mse_prior"],
    }
    return [name for name, ok in checks.items() if not ok]


@pytest.fixture(scope="module")
def linreg_model() -> torch.nn.Module:
    return load("linreg")


@needs_linreg
@pytest.mark.parametrize("d, n, max_nll_gap", LINREG_CASES)
def test_shipped_linreg_pfn_is_near_the_exact_posterior_predictive(linreg_model, d, n, max_nll_gap):
    assert linreg_failures(linreg_model, d, n, max_nll_gap) == []


@needs_linreg
@pytest.mark.parametrize("d, n, max_nll_gap", LINREG_CASES)
def test_untrained_linreg_model_misses_every_floor(linreg_model, d, n, max_nll_gap):
    assert len(linreg_failures(untrained_copy(linreg_model), d, n, max_nll_gap)) == 3


# --- Distribution Transformer ------------------------------------------------------------------------
# 256 tasks of the model's GMMTaskPrior with 1..50 measurements, seed 7; KL by 500 Monte Carlo draws.
# Measured on the shipped dist-gmm (an untrained model returns its prior exactly):
#   median KL(predicted || exact) 0.021 nats (mean 0.36: a heavy tail); median KL(prior || exact) 24.5;
#   mean NLL of the true latent: predicted 0.592, exact 0.493, prior 2.300: share of the gain 0.945.
# Tracking (64 trajectories x 20 steps, seed 5), NLL of the true state per step, model / exact / no update:
#   Gaussian start 1.096 / 0.866 / 2.603 (share 0.868), mixture start 0.983 / 0.701 / 2.555 (share 0.848);
#   27% and 40% above the exact filter, short of the 5% target.
MAX_MEDIAN_KL = 0.1  # measured 0.021; prior and untrained about 25
MIN_NLL_SHARE = 0.8  # share of the prior -> exact gain in NLL of the true latent; measured 0.945, untrained 0
MIN_TRACKING_SHARE = 0.7  # the same over the tracking steps; measured 0.868 and 0.848, untrained 0


def share_of_gain(value: float, baseline: float, best: float) -> float:
    """How much of the way from `baseline` (no update) to `best` (exact) a loss `value` goes: 1 at best, 0 at it."""
    return (baseline - value) / (baseline - best)


def dist_failures(model: torch.nn.Module) -> list[str]:
    """The one-shot posterior floors `model` misses on the held-out tasks (empty: all met)."""
    prior = prior_from_dict(model.info["prior"])
    scores = score_tasks(model, draw_tasks(prior, 256, 50, seed=7), n_mc=500, seed=7)
    kl = float(scores["kl_predicted"].median())
    share = share_of_gain(*(float(scores[f"nll_{key}"].mean()) for key in ("predicted", "prior", "exact")))
    checks = {f"median KL {kl:.3f} >= {MAX_MEDIAN_KL} (prior's {float(scores['kl_prior'].median()):.1f})":
              kl < MAX_MEDIAN_KL,
              f"share of the NLL gain {share:.3f} <= {MIN_NLL_SHARE}": share > MIN_NLL_SHARE}
    return [name for name, ok in checks.items() if not ok]


def tracking_share(model: torch.nn.Module, mixture_start: bool) -> float:
    nll = tracking(model, n_traj=64, n_steps=20, mixture_start=mixture_start, seed=5)
    return share_of_gain(nll["model"], nll["no update"], nll["exact"])


@pytest.fixture(scope="module")
def dist_model() -> Any:
    return load("dist-gmm")


@needs_dist
def test_shipped_distribution_transformer_is_near_the_exact_posterior(dist_model):
    assert dist_failures(dist_model) == []


@needs_dist
@pytest.mark.parametrize("mixture_start", [False, True], ids=["gaussian-start", "mixture-start"])
def test_shipped_distribution_transformer_tracks_with_chained_posteriors(dist_model, mixture_start):
    """Each posterior, moved by the dynamics, is the next prior: 20 chained updates against the exact filter."""
    assert tracking_share(dist_model, mixture_start) > MIN_TRACKING_SHARE


@needs_dist
def test_untrained_distribution_transformer_misses_every_floor(dist_model):
    untrained = untrained_copy(dist_model)
    assert len(dist_failures(untrained)) == 2
    assert tracking_share(untrained, mixture_start=True) < MIN_TRACKING_SHARE


def readme_task() -> tuple[GMM, LinearGaussian]:
    """The prior and sensor of the README's Distribution Transformer example."""
    prior = GMM(weights=torch.tensor([0.6, 0.4]), means=torch.tensor([[0.0, 0.0], [3.0, 1.0]]),
                covs=torch.tensor([[[0.5, 0.1], [0.1, 0.3]], [[0.4, -0.1], [-0.1, 0.6]]]))
    return prior, LinearGaussian(matrix=torch.tensor([[0.8, 0.6]]), noise_var=0.3)


@needs_dist
@pytest.mark.parametrize("n", [1000, 10_000])
def test_shipped_distribution_transformer_reads_more_measurements_than_trained_in_stages(dist_model, n):
    """Trained on at most 100 measurements: one pass over 1000 (10,000) readings was 31 (1550) nats from the exact
    posterior; read in stages it is 0.07 (0.15)."""
    prior, sensor = readme_task()
    noise = 0.3**0.5 * torch.randn(n, 1, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    readings = torch.tensor([2.6, 1.3], dtype=torch.float64) @ sensor.matrix.T + noise
    predicted, exact = dist_model.posterior(prior, readings, sensor), exact_posterior(prior, readings, sensor)
    assert float(kl_monte_carlo(predicted, exact, 20_000, torch.Generator().manual_seed(0))) < 0.5


@needs_dist
def test_shipped_distribution_transformer_refuses_a_reading_far_outside_its_trained_range(dist_model):
    """A reading of 1e6 gave a posterior mean of [2.87, 1.40] where the exact one is [5.6e5, 3.2e5]."""
    prior, sensor = readme_task()
    with pytest.raises(ValueError, match=r"observation 0, output 0 .* 5.85e\+05 standard deviations .* within 6"):
        dist_model.posterior(prior, torch.tensor([[1e6]]), sensor)
    predicted_sd = float((sensor.matrix[0] @ prior.cov @ sensor.matrix[0] + 0.3).sqrt())
    inside = float(sensor.matrix[0] @ prior.mean) + 5.5 * predicted_sd
    assert dist_model.posterior(prior, torch.tensor([[inside]]), sensor).n_components == 2

"""Scoring a linear-regression PFN against exact Bayesian inference and classic in-context learners.

Held-out tasks come from the model's own prior (`priors.LinearRegressionPrior`). Baselines, all
predicting noisy targets `y*` at query points from a task's context:

- Bayes ridge: the exact posterior mean with the task's true noise variance as penalty
  (`lambda = sigma^2`, `priors.linreg.linreg_posterior_predictive`);
- the exact predictive with the noise integrated over its hyperprior
  (`priors.linreg.noise_marginal_predictive`), for the NLL;
- OLS (`ols_predict`), one step of gradient descent (`gd_direction`, `tune_gd_step`), k-NN
  (`knn_predict`);
- no context: the prior predictive (mean 0), what a model that ignores its data can reach.

Shared by `benchmarks/linreg.py`, `pfn demo` (`pfn.linreg.demo`) and the quality tests.
"""

from __future__ import annotations

from typing import Any

import torch

from priors.linreg import linreg_posterior_predictive, noise_marginal_predictive

EXACT_CHUNK = 256  # tasks per call of the exact predictive (bounds its `tasks x grid x F x M` memory)


def ols_predict(xc: torch.Tensor, yc: torch.Tensor, xq: torch.Tensor) -> torch.Tensor:
    """Minimum-norm least squares: `x* . pinv(X) y`. Shapes `B x n x d`, `B x n`, `B x M x d` -> `B x M`."""
    w = torch.linalg.pinv(xc.double()) @ yc.double().unsqueeze(-1)
    return (xq.double() @ w).squeeze(-1)


def gd_direction(xc: torch.Tensor, yc: torch.Tensor, xq: torch.Tensor) -> torch.Tensor:
    """The one-step-GD prediction for step size 1: `x* . X^T y / n` (`B x M`)."""
    return torch.einsum("bmd,bnd,bn->bm", xq.double(), xc.double(), yc.double()) / xc.shape[1]


def knn_predict(xc: torch.Tensor, yc: torch.Tensor, xq: torch.Tensor, k: int = 3) -> torch.Tensor:
    """Mean of the `k` nearest context targets (Euclidean), `B x M`."""
    k = min(k, xc.shape[1])
    idx = torch.cdist(xq.double(), xc.double()).topk(k, dim=-1, largest=False).indices  # B x M x k
    return yc.double().unsqueeze(1).expand(-1, xq.shape[1], -1).gather(-1, idx).mean(-1)


def tune_gd_step(prior: Any, n: int, d: int, n_query: int, seed: int) -> float:
    """The step size minimising the MSE of one-step GD on 2048 tasks drawn with `seed` (closed form)."""
    batch = prior.sample(2048, n + n_query, d, generator=torch.Generator().manual_seed(seed), n_context=n)
    g = gd_direction(batch.x[:, :n], batch.y[:, :n], batch.x[:, n:])
    y = batch.y[:, n:].double()
    return float((g * y).sum() / (g * g).sum())


@torch.no_grad()
def evaluate_linreg(model: torch.nn.Module, prior: Any, n: int, d: int, tasks: int, n_query: int, seed: int,
                    gd_step: float | None = None) -> dict[str, float]:
    """Scores of the PFN and the baselines on `tasks` held-out tasks with `n` context points and `n_query` queries.

    Args:
        model: A PFN with a regression head (`model.predict(...)` has `mean` and `log_prob`).
        prior: The `LinearRegressionPrior` the tasks are drawn from (its `noise` hyperprior is
            integrated out by the exact predictive).
        n: Context points per task (`>= 1`). d: Input dimension.
        tasks: Number of tasks. n_query: Queries per task.
        seed: Seed of the tasks (use one the model was not trained on).
        gd_step: The step size of the one-step-GD baseline (`tune_gd_step`); None leaves GD out.

    Returns:
        `n`, `d`; `mse_<method>` (mean squared error against the noisy `y*`) for `pfn`, `ridge`,
        `ols`, `knn`, `exact_marginal` and `prior` (predicting 0); `diff_<baseline>` (mean squared
        difference between the PFN's mean and the baseline's prediction, as in Akyuerek et al.,
        2022) for `ridge`, `ols`, `knn`; `nll_pfn`, `nll_exact` and `nll_prior` (nats per query:
        the PFN's predictive, the exact one, and the exact one without context); with `gd_step`
        also `mse_gd`, `diff_gd` and `gd_step`.
    """
    batch = prior.sample(tasks, n + n_query, d, generator=torch.Generator().manual_seed(seed), n_context=n)
    xc, yc, xq, yq = batch.x[:, :n], batch.y[:, :n], batch.x[:, n:], batch.y[:, n:].double()
    predictive = model.predict(xc, yc, xq)
    pfn_mean = predictive.mean.double()
    preds = {"ridge": linreg_posterior_predictive(xc, yc, xq, batch.meta["noise"])[0],
             "ols": ols_predict(xc, yc, xq), "knn": knn_predict(xc, yc, xq)}
    if gd_step is not None:
        preds["gd"] = gd_step * gd_direction(xc, yc, xq)
    exact_mean, exact_lp, prior_lp = [], [], []
    for i in range(0, tasks, EXACT_CHUNK):
        part = slice(i, i + EXACT_CHUNK)
        exact = noise_marginal_predictive(xc[part], yc[part], xq[part], prior.noise)
        exact_mean.append(exact.mean)
        exact_lp.append(exact.log_prob(yq[part]))
        no_context = noise_marginal_predictive(xc[part, :0], yc[part, :0], xq[part], prior.noise)
        prior_lp.append(no_context.log_prob(yq[part]))
    row: dict[str, float] = {"n": n, "d": d, "mse_pfn": (pfn_mean - yq).pow(2).mean().item()}
    for name, pred in preds.items():
        row[f"mse_{name}"] = (pred - yq).pow(2).mean().item()
        row[f"diff_{name}"] = (pfn_mean - pred).pow(2).mean().item()
    row["mse_exact_marginal"] = (torch.cat(exact_mean) - yq).pow(2).mean().item()
    row["mse_prior"] = yq.pow(2).mean().item()
    row["nll_pfn"] = -predictive.log_prob(yq.float()).double().mean().item()
    row["nll_exact"] = -torch.cat(exact_lp).mean().item()
    row["nll_prior"] = -torch.cat(prior_lp).mean().item()
    if gd_step is not None:
        row["gd_step"] = gd_step
    return row


__all__ = ["evaluate_linreg", "gd_direction", "knn_predict", "ols_predict", "tune_gd_step"]

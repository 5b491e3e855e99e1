"""Scoring a Distribution Transformer against the exact posterior: held-out tasks, Monte Carlo KL, tracking.

Shared by `benchmarks/dist.py`, `pfn demo` (`pfn.distribution_transformer.demo`) and the quality tests.

- `draw_tasks`: held-out tasks of a `priors.GMMTaskPrior` with varying measurement counts.
- `score_tasks`: per task, KL(predicted || exact) by Monte Carlo beside KL(prior || exact), and
  the log-density of the true latent under the predicted posterior, the exact one and the prior.
- `tracking`: sequential inference in a linear-Gaussian state-space model, each posterior
  (pushed through the dynamics) the next prior, against the exact (Kalman / Gaussian-sum) filter.
"""

from __future__ import annotations

import torch

from pfn.distribution_transformer.exact import exact_posterior
from pfn.distribution_transformer.gmm import GMM, mixture_log_prob
from pfn.distribution_transformer.model import DistributionTransformer
from pfn.distribution_transformer.observations import LinearGaussian
from priors.batch import Batch
from priors.gmm import GMMTaskPrior, batch_posterior, split_component_rows

CHUNK = 256  # tasks per forward pass


def draw_tasks(prior: GMMTaskPrior, n_tasks: int, max_context: int, seed: int) -> Batch:
    """`n_tasks` tasks with measurement counts uniform in `1..max_context` (padded: `Batch.context_mask`)."""
    gen = torch.Generator().manual_seed(seed)
    batch = prior.sample(n_tasks, max_context + prior.max_components, prior.token_width, generator=gen,
                         n_context=max_context)
    return batch.with_context_sizes(torch.randint(1, max_context + 1, (n_tasks,), generator=gen))


def predict_rows(model: DistributionTransformer, batch: Batch) -> torch.Tensor:
    """The model's posterior rows (`B x K x P`, see `GMMHead` in `head.py`) of every task, `CHUNK` tasks per pass."""
    c = batch.n_context
    with torch.no_grad():
        return torch.cat([model(batch.x[i:i + CHUNK], batch.y[i:i + CHUNK, :c], batch.context_mask[i:i + CHUNK])
                          for i in range(0, batch.batch_size, CHUNK)])


def mixture_of_rows(rows: torch.Tensor, dim: int, log_weights: bool) -> GMM:
    """The mixtures (batch shape `B`) of component rows (`B x K x P`) with weights (`log_weights=False`: a batch's
    prior rows, 0 for an absent slot) or normalised log-weights (`True`: a model's output) in column 0."""
    w, m, tril = split_component_rows(rows.double(), dim)
    return GMM.from_scale_tril(w if log_weights else w.log(), m, tril)


def kl_monte_carlo(q: GMM, p: GMM, n: int, generator: torch.Generator | None = None,
                   dim_mask: torch.Tensor | None = None) -> torch.Tensor:
    """KL(q || p) by `n` draws from `q`, per mixture (shape: the batch shape).

    `dim_mask` (None, or `batch x D` bool) restricts both densities to the marginal of the marked
    leading dimensions (a task's own latent dimensions when the batch is padded to `D`).
    """
    z = q.sample(n, generator)
    log_q = mixture_log_prob(z, q.log_weights, q.means, q.scale_tril, dim_mask)
    log_p = mixture_log_prob(z, p.log_weights, p.means, p.scale_tril, dim_mask)
    return (log_q - log_p).mean(0)


def score_tasks(model: DistributionTransformer, batch: Batch, n_mc: int, seed: int) -> dict[str, torch.Tensor]:
    """Per-task scores (`B` each, over each task's own latent dimensions) on a `GMMTaskPrior` batch.

    Returns:
        `n_measurements`, `latent_dim`; `kl_predicted` = KL(predicted || exact), `kl_prior` = KL(prior ||
        exact) (what "no update" costs) and `kl_exact_predicted` = KL(exact || predicted) (whose mean the
        training loss minimises, up to a constant), each by `n_mc` Monte Carlo draws; `nll_predicted`,
        `nll_exact`, `nll_prior`: negative log-density of the true latent.
    """
    c, k = batch.n_context, batch.meta["means"].shape[-2]
    dm = batch.meta["means"].shape[-1]
    dims = torch.arange(dm) < batch.meta["latent_dim"].unsqueeze(-1)
    w, m, s = batch_posterior(batch)
    exact = GMM.from_scale_tril(w.log(), m, torch.linalg.cholesky(s))
    predicted = mixture_of_rows(predict_rows(model, batch), dm, log_weights=True)
    prior = mixture_of_rows(batch.x[:, c:c + k], dm, log_weights=False)
    gen = torch.Generator().manual_seed(seed)
    z = batch.meta["latent"].double()

    def nll(gmm: GMM) -> torch.Tensor:
        return -mixture_log_prob(z, gmm.log_weights, gmm.means, gmm.scale_tril, dims)

    return {
        "n_measurements": batch.context_sizes,
        "latent_dim": batch.meta["latent_dim"],
        "kl_predicted": kl_monte_carlo(predicted, exact, n_mc, gen, dims),
        "kl_prior": kl_monte_carlo(prior, exact, n_mc, gen, dims),
        "kl_exact_predicted": kl_monte_carlo(exact, predicted, n_mc, gen, dims),
        "nll_predicted": nll(predicted),
        "nll_exact": nll(exact),
        "nll_prior": nll(prior),
    }


def tracking(model: DistributionTransformer, n_traj: int, n_steps: int, mixture_start: bool,
             seed: int) -> dict[str, float]:
    """Filters `n_traj` 2-D trajectories of a linear-Gaussian state-space model for `n_steps` steps.

    `z_0` from the initial belief (N(0, I), or with `mixture_start` an equal mixture of N((+-2, 0),
    0.3 I)); `z_t = F z_{t-1} + w_t`, `F = 0.98 R(0.2)` (a damped rotation), `w ~ N(0, 0.02 I)`;
    `y_t = H z_t + v_t`, `H` (1 x 2) drawn per trajectory, `v ~ N(0, 0.25)`. Each belief is updated
    with `y_t` (the model: `model.posterior`), scored, and moved by the dynamics (`GMM.linear_step`)
    to be the next step's prior.

    Returns:
        NLL of the true state per step (after its update) for the model (`"model"`), the exact filter
        (`"exact"`: the Kalman filter; the Gaussian-sum filter from a mixture) and no update at all
        (`"no update"`: predict steps only).
    """
    gen = torch.Generator().manual_seed(seed)
    angle = torch.tensor(0.2, dtype=torch.float64)
    f = 0.98 * torch.stack([torch.stack([angle.cos(), -angle.sin()]), torch.stack([angle.sin(), angle.cos()])])
    q, r = 0.02 * torch.eye(2, dtype=torch.float64), 0.25
    obs = LinearGaussian(torch.randn(n_traj, 1, 2, generator=gen, dtype=torch.float64), r)
    if mixture_start:
        start = GMM(torch.full((n_traj, 2), 0.5), torch.tensor([[-2.0, 0.0], [2.0, 0.0]]).repeat(n_traj, 1, 1),
                    0.3 * torch.eye(2).repeat(n_traj, 2, 1, 1))
    else:
        start = GMM(torch.ones(n_traj, 1), torch.zeros(n_traj, 1, 2), torch.eye(2).repeat(n_traj, 1, 1, 1))
    z = start.sample(1, gen)[0]
    beliefs = {"model": start, "exact": start, "no update": start}
    nll = dict.fromkeys(beliefs, 0.0)
    for t in range(n_steps):
        if t > 0:
            z = z @ f.T + torch.randn(n_traj, 2, generator=gen, dtype=torch.float64) @ q.sqrt().T
        y = (obs.matrix @ z.unsqueeze(-1)).squeeze(-1) + r**0.5 * torch.randn(n_traj, 1, generator=gen,
                                                                              dtype=torch.float64)
        y = y.unsqueeze(1)  # B x n=1 x o=1
        beliefs["model"] = model.posterior(beliefs["model"], y, obs)
        beliefs["exact"] = exact_posterior(beliefs["exact"], y, obs)
        for name, belief in beliefs.items():
            nll[name] -= float(belief.log_prob(z).mean()) / n_steps
        beliefs = {name: belief.linear_step(f, q) for name, belief in beliefs.items()}
    return nll


__all__ = ["CHUNK", "draw_tasks", "kl_monte_carlo", "mixture_of_rows", "predict_rows", "score_tasks", "tracking"]

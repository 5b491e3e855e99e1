"""The exact posterior of a Gaussian-mixture prior under linear-Gaussian observations (closed form, float64)."""

from __future__ import annotations

from typing import Any

import torch

from pfn.distribution_transformer.gmm import GMM
from pfn.distribution_transformer.observations import LinearGaussian, problem, unbatched
from priors.gmm import mixture_posterior


def exact_posterior(prior: GMM, observations: Any, obs_model: LinearGaussian) -> GMM:
    """`p(z | y_1..n)` for `z ~ prior` and `y_i = A z + b + e_i`: again a Gaussian mixture.

    Each component gets the Kalman update and its weight is multiplied by its marginal likelihood
    of the data (`priors.gmm.mixture_posterior`). The result can be the prior of the next call.

    Args:
        prior: A `GMM` with batch shape `()` or `(B,)`.
        observations: `n x o` (`n` when `o == 1`) or `B x n x o`.
        obs_model: The `LinearGaussian` observation model (`A`: `o x D` or `B x o x D`).

    Returns:
        The posterior `GMM`, with the prior's components (batched if any input was).
    """
    p = problem(prior, observations, obs_model)
    w, m, s, _ = mixture_posterior(p.prior.weights, p.prior.means, p.prior.covs, p.a, p.noise_var, p.values)
    return unbatched(GMM.from_scale_tril(w.log(), m, torch.linalg.cholesky(s)), p.batched)

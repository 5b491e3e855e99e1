"""The type-II maximum-likelihood GP (BoTorch `SingleTaskGP`) that PFNs are compared with."""

from __future__ import annotations

import warnings

import torch


def fit_type2_ml_gp(x: torch.Tensor, y: torch.Tensor, kernel: str = "matern52"):
    """Fits a `SingleTaskGP` by maximising the marginal likelihood (float64).

    Args:
        x: An `n x d` tensor of inputs (best in the unit cube).
        y: An `n` tensor of observations.
        kernel: "rbf" or "matern52" (ARD, with an outputscale).

    Returns:
        The fitted BoTorch model (outcomes standardised internally, predictions in y units).
    """
    from botorch.fit import fit_gpytorch_mll
    from botorch.models import SingleTaskGP
    from botorch.models.transforms.outcome import Standardize
    from gpytorch.kernels import MaternKernel, RBFKernel, ScaleKernel
    from gpytorch.mlls import ExactMarginalLogLikelihood

    x, y = x.double(), y.double().reshape(-1, 1)
    d = x.shape[-1]
    base = RBFKernel(ard_num_dims=d) if kernel == "rbf" else MaternKernel(nu=2.5, ard_num_dims=d)
    model = SingleTaskGP(x, y, covar_module=ScaleKernel(base), outcome_transform=Standardize(m=1))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fit_gpytorch_mll(ExactMarginalLogLikelihood(model.likelihood, model))
    return model


@torch.no_grad()
def latent_predictive(model, x_query: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean and variance (each `m`) of the latent function at `x_query` (`m x d`)."""
    post = model.posterior(x_query.double(), observation_noise=False)
    return post.mean.squeeze(-1), post.variance.squeeze(-1).clamp_min(1e-12)

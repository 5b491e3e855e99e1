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


def exact_latent_predictive(
    x_context: torch.Tensor, y_context: torch.Tensor, x_query: torch.Tensor,
    hyperparameters: dict[str, torch.Tensor], jitter: float = 1e-8,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Exact zero-mean GP posterior of the latent function with known hyperparameters (float64).

    Args:
        x_context: A `B x N x F` tensor; y_context: `B x N`; x_query: `B x M x F`.
        hyperparameters: As in `GPPrior`'s `Batch.meta`: `lengthscale` (`B x F`),
            `outputscale`, `noise` (variance) and `kernel` (index into `KERNELS`), each `B`.

    Returns:
        Means and variances of `f` at the queries, each `B x M`.
    """
    from priors.gp import batched_cholesky
    from priors.kernels import correlation, scaled_sq_dist

    n = x_context.shape[1]
    x = torch.cat([x_context, x_query], dim=1).double()
    outputscale = hyperparameters["outputscale"].double().view(-1, 1, 1)
    k = correlation(scaled_sq_dist(x, hyperparameters["lengthscale"].double()), hyperparameters["kernel"]) * outputscale
    eye = torch.eye(n, dtype=torch.float64, device=x.device)
    chol = batched_cholesky(k[:, :n, :n] + (hyperparameters["noise"].double().view(-1, 1, 1) + jitter) * eye)
    k_cq = k[:, :n, n:]
    alpha = torch.cholesky_solve(y_context.double().unsqueeze(-1), chol)
    v = torch.linalg.solve_triangular(chol, k_cq, upper=False)
    mean = (k_cq.transpose(-1, -2) @ alpha).squeeze(-1)
    return mean, (outputscale.view(-1, 1) - (v * v).sum(-2)).clamp_min(1e-12)

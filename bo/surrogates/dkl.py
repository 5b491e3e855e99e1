"""`DKLSurrogate`: deep kernel learning, an MLP feature extractor under a GP kernel (`"dkl"`)."""

from __future__ import annotations

import warnings
from functools import partial

import torch
from botorch.models import SingleTaskGP
from botorch.models.transforms.outcome import Standardize
from botorch.models.utils.gpytorch_modules import get_covar_module_with_dim_scaled_prior
from botorch.optim.fit import fit_gpytorch_mll_torch
from gpytorch.kernels import Kernel, ScaleKernel
from gpytorch.mlls import ExactMarginalLogLikelihood
from torch import nn

from bo.surrogates.gp import ExactGPSurrogate, centre_cube


class FeatureKernel(Kernel):
    """A kernel on learned features: `k(x, x') = base(g(x), g(x'))` for a network `g`.

    Args:
        extractor: Maps `... x d` inputs to `... x k` features (any leading shape).
        base: A kernel on `k`-dimensional features.
    """

    def __init__(self, extractor: nn.Module, base: Kernel) -> None:
        super().__init__()
        self.extractor = extractor
        self.base = base

    def forward(self, x1: torch.Tensor, x2: torch.Tensor, diag: bool = False, **params) -> torch.Tensor:
        """The `... x n x m` covariance (`... x n` with `diag`) of `x1` (`... x n x d`) and `x2` (`... x m x d`)."""
        return self.base.forward(self.extractor(x1), self.extractor(x2), diag=diag, **params)


def feature_extractor(d: int, width: int, n_layers: int, n_features: int) -> nn.Sequential:
    """An MLP `d -> width (x n_layers, tanh) -> n_features` (linear output), float64."""
    layers: list[nn.Module] = []
    fan_in = d
    for _ in range(n_layers):
        layers += [nn.Linear(fan_in, width), nn.Tanh()]
        fan_in = width
    layers.append(nn.Linear(fan_in, n_features))
    return nn.Sequential(*layers).double()


class DKLSurrogate(ExactGPSurrogate):
    """Deep kernel learning (Wilson et al. 2016): a GP on the features of an MLP, all trained by marginal likelihood.

    The unit cube is mapped to `[-1, 1]^d` and through an MLP `d -> width -> width -> n_features`
    (tanh hidden layers, linear output; defaults 32, 32, 4), under a `ScaleKernel` of a
    Matern-5/2 ARD kernel on the features (BoTorch's dimension-scaled lengthscale prior), in a
    BoTorch `SingleTaskGP` (constant mean, BoTorch's default noise prior, outcomes standardised by
    `Standardize`). The network's weights and the GP's hyperparameters are trained jointly by
    maximising the exact marginal likelihood (with the priors) with Adam (`steps` steps, learning
    rate `lr`, full batch), from an initialisation under a fixed torch seed, so that a fit depends
    only on the data. The study of Li, Rudner and Wilson (ICLR 2024) found DKL competitive as a BO
    surrogate (theirs: a 3 x 128 extractor under a Matern kernel).

    As in `GPSurrogate`, extreme observations are clipped first (`bo.surrogates.outcome.clip_bounds`),
    the predictive is the latent function's (gradients reach the queries through the network),
    its acquisition values measure improvement on `best` clipped alike, and `condition` keeps the
    network and the hyperparameters (`condition_on_observations`, a rank update of the posterior).

    Args:
        width: Units of each hidden layer.
        n_layers: Hidden layers.
        n_features: Features the GP kernel sees.
        steps: Adam steps on the negative marginal log likelihood.
        lr: Adam's learning rate.
    """

    def __init__(self, width: int = 32, n_layers: int = 2, n_features: int = 4, steps: int = 300,
                 lr: float = 0.01) -> None:
        super().__init__()
        if min(width, n_layers, n_features, steps) < 1 or lr <= 0:
            raise ValueError("width, n_layers, n_features and steps must be positive integers and lr positive")
        self.width, self.n_layers, self.n_features, self.steps, self.lr = width, n_layers, n_features, steps, lr

    def _inputs(self, X: torch.Tensor) -> torch.Tensor:
        return centre_cube(X)

    def _fit_model(self, X: torch.Tensor, y: torch.Tensor) -> SingleTaskGP:
        with torch.random.fork_rng(), torch.enable_grad():  # fits inside no_grad too
            torch.manual_seed(0)
            kernel = FeatureKernel(feature_extractor(X.shape[-1], self.width, self.n_layers, self.n_features),
                                   ScaleKernel(get_covar_module_with_dim_scaled_prior(self.n_features,
                                                                                      use_rbf_kernel=False)))
            model = SingleTaskGP(X, y, covar_module=kernel, outcome_transform=Standardize(m=1))
            _train(model, self.steps, self.lr)
        return model


def _train(model: SingleTaskGP, steps: int, lr: float) -> None:
    """Maximises `model`'s exact marginal log likelihood (with its priors) by `steps` full-batch Adam steps, in place.

    BoTorch's `fit_gpytorch_mll_torch`, which clamps the parameters whose constraints have no
    transform (the noise's and lengthscales' lower bounds) to their bounds after every step.
    """
    mll = ExactMarginalLogLikelihood(model.likelihood, model)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # GPyTorch's notes on added jitter
        fit_gpytorch_mll_torch(mll, step_limit=steps, stopping_criterion=None,
                               optimizer=partial(torch.optim.Adam, lr=lr))
    mll.eval()

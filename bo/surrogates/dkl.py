"""`DKLSurrogate`: deep kernel learning, an MLP feature extractor under a GP kernel (`"dkl"`)."""

from __future__ import annotations

import copy
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

from bo.surrogates.base import Surrogate
from bo.surrogates.outcome import clip_bounds
from bo.surrogates.predictive import GaussianPredictive


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


class DKLSurrogate(Surrogate):
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

    def _fit(self, X: torch.Tensor, y: torch.Tensor) -> None:
        self.clip = clip_bounds(y.double())
        with torch.random.fork_rng(), torch.enable_grad():  # fits inside no_grad too
            torch.manual_seed(0)
            kernel = FeatureKernel(feature_extractor(X.shape[-1], self.width, self.n_layers, self.n_features),
                                   ScaleKernel(get_covar_module_with_dim_scaled_prior(self.n_features,
                                                                                      use_rbf_kernel=False)))
            model = SingleTaskGP(2.0 * X - 1.0, y.double().clamp(*self.clip).unsqueeze(-1), covar_module=kernel,
                                 outcome_transform=Standardize(m=1))
            _train(model, self.steps, self.lr)
        model.eval()
        with torch.no_grad():  # builds the prediction caches that `condition_on_observations` extends
            model.posterior(2.0 * X[:1] - 1.0)
        self.model = model

    def predict(self, X: torch.Tensor) -> GaussianPredictive:
        """The latent predictive at `X`, a `batch_shape x d` tensor in the unit cube (`batch_shape` non-empty)."""
        self._check_fitted()
        posterior = self.model.posterior(2.0 * X.double() - 1.0)
        return GaussianPredictive(posterior.mean.squeeze(-1), posterior.variance.squeeze(-1), clip=self.clip)

    def condition(self, X: torch.Tensor, y: torch.Tensor) -> DKLSurrogate:
        """A copy that also sees `(X, y)` (`m x d`, `m`), with the network and hyperparameters kept."""
        self._check_fitted()
        X, y = torch.as_tensor(X, dtype=torch.float64), torch.as_tensor(y, dtype=torch.float64)
        out = copy.copy(self)
        out.train_X, out.train_y = torch.cat([self.train_X, X]), torch.cat([self.train_y, y])
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            out.model = self.model.condition_on_observations(2.0 * X - 1.0, y.clamp(*self.clip).unsqueeze(-1))
        return out


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

"""`GPSurrogate`: BoTorch's `SingleTaskGP` (Matern-5/2, ARD), refitted on every `fit`."""

from __future__ import annotations

import copy
import warnings

import torch
from botorch.fit import fit_gpytorch_mll
from botorch.models import SingleTaskGP
from botorch.models.transforms.outcome import Standardize
from botorch.models.utils.gpytorch_modules import get_covar_module_with_dim_scaled_prior
from gpytorch.mlls import ExactMarginalLogLikelihood

from bo.surrogates.base import Surrogate
from bo.surrogates.outcome import clip_bounds
from bo.surrogates.predictive import GaussianPredictive


class GPSurrogate(Surrogate):
    """A Gaussian process fitted by maximising the marginal likelihood with BoTorch's priors.

    `SingleTaskGP` with a Matern-5/2 ARD kernel and BoTorch's default (dimension-scaled
    log-normal) lengthscale prior, its default log-normal noise prior, outcomes standardised
    (`Standardize`), hyperparameters by `fit_gpytorch_mll` (L-BFGS-B on the MAP objective,
    with BoTorch's retries), under a fixed torch seed so that a fit depends only on the data.
    The predictive is the latent function's (no observation noise). Extreme observations are
    clipped first by the rule of `bo.surrogates.outcome.clip_bounds` (values beyond 1e4 robust
    spreads of the median come in to 100 spreads), as the PFN's are: a trial that returns `-1e200`
    or `1e308` is read as the best or worst value by far, and the acquisition measures improvement
    on `best` clipped alike.

    `condition` (fantasies at pending points) keeps the hyperparameters and adds the points
    by `condition_on_observations` (a rank update of the posterior).
    """

    def _fit(self, X: torch.Tensor, y: torch.Tensor) -> None:
        self.clip = clip_bounds(y.double())
        model = SingleTaskGP(X, y.double().clamp(*self.clip).unsqueeze(-1), outcome_transform=Standardize(m=1),
                             covar_module=get_covar_module_with_dim_scaled_prior(X.shape[-1], use_rbf_kernel=False))
        with torch.random.fork_rng(), warnings.catch_warnings():
            torch.manual_seed(0)
            warnings.simplefilter("ignore")  # BoTorch's notes on retries and standardisation
            fit_gpytorch_mll(ExactMarginalLogLikelihood(model.likelihood, model))
        model.eval()
        with torch.no_grad():  # builds the prediction caches that `condition_on_observations` extends
            model.posterior(X[:1])
        self.model = model

    def predict(self, X: torch.Tensor) -> GaussianPredictive:
        """The latent predictive at `X`, a `batch_shape x d` tensor in the unit cube (`batch_shape` non-empty)."""
        self._check_fitted()
        posterior = self.model.posterior(X.double())
        return GaussianPredictive(posterior.mean.squeeze(-1), posterior.variance.squeeze(-1), clip=self.clip)

    def condition(self, X: torch.Tensor, y: torch.Tensor) -> GPSurrogate:
        """A copy that also sees `(X, y)` (`m x d`, `m`), with the hyperparameters kept."""
        self._check_fitted()
        X, y = torch.as_tensor(X, dtype=torch.float64), torch.as_tensor(y, dtype=torch.float64)
        out = copy.copy(self)
        out.train_X, out.train_y = torch.cat([self.train_X, X]), torch.cat([self.train_y, y])
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            out.model = self.model.condition_on_observations(X, y.clamp(*self.clip).unsqueeze(-1))
        return out

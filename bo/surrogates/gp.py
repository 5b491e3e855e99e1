"""`GPSurrogate`: BoTorch's `SingleTaskGP` (Matern-5/2, ARD), refitted on every `fit`; `ExactGPSurrogate`, the
base it shares with the other exact-GP surrogates (`ibnn`, `dkl`)."""

from __future__ import annotations

import copy
import warnings
from abc import abstractmethod

import torch
from botorch.fit import fit_gpytorch_mll
from botorch.models import SingleTaskGP
from botorch.models.transforms.outcome import Standardize
from botorch.models.utils.gpytorch_modules import get_covar_module_with_dim_scaled_prior
from gpytorch.mlls import ExactMarginalLogLikelihood

from bo.surrogates.base import Surrogate
from bo.surrogates.outcome import clip_bounds
from bo.surrogates.predictive import GaussianPredictive


def centre_cube(X: torch.Tensor) -> torch.Tensor:
    """Unit-cube points (`... x d`) mapped to `[-1, 1]^d`, float64: inputs for kernels that see the origin."""
    return 2.0 * X.double() - 1.0


class ExactGPSurrogate(Surrogate):
    """An exact GP (a BoTorch `SingleTaskGP`) as a surrogate: what the GP-based surrogates share.

    Subclasses build and fit the model (`_fit_model`) and may map the unit cube to the inputs
    the model sees (`_inputs`). Extreme observations are clipped first by the rule of
    `bo.surrogates.outcome.clip_bounds` (values beyond 1e4 robust spreads of the median come in to
    100 spreads), as the PFN's are: a trial that returns `-1e200` or `1e308` is read as the best or
    worst value by far, and the acquisition measures improvement on `best` clipped alike. The
    predictive is the latent function's (no observation noise). `condition` (fantasies at pending
    points) keeps the fitted parameters and adds the points by `condition_on_observations` (a rank
    update of the posterior).
    """

    @abstractmethod
    def _fit_model(self, X: torch.Tensor, y: torch.Tensor) -> SingleTaskGP:
        """A fitted model of `y` (`n x 1`, clipped, float64) at the model's inputs `X` (`n x d`, from `_inputs`)."""

    def _inputs(self, X: torch.Tensor) -> torch.Tensor:
        """The model's inputs (`... x d`, float64) of unit-cube points `X`: the points themselves by default."""
        return X.double()

    def _fit(self, X: torch.Tensor, y: torch.Tensor) -> None:
        self.clip = clip_bounds(y.double())
        model = self._fit_model(self._inputs(X), y.double().clamp(*self.clip).unsqueeze(-1))
        model.eval()
        with torch.no_grad():  # builds the prediction caches that `condition_on_observations` extends
            model.posterior(self._inputs(X[:1]))
        self.model = model

    def predict(self, X: torch.Tensor) -> GaussianPredictive:
        """The latent predictive at `X`, a `batch_shape x d` tensor in the unit cube (`batch_shape` non-empty)."""
        self._check_fitted()
        posterior = self.model.posterior(self._inputs(X))
        return GaussianPredictive(posterior.mean.squeeze(-1), posterior.variance.squeeze(-1), clip=self.clip)

    def condition(self, X: torch.Tensor, y: torch.Tensor) -> ExactGPSurrogate:
        """A copy that also sees `(X, y)` (`m x d`, `m`), with the fitted parameters kept."""
        self._check_fitted()
        X, y = torch.as_tensor(X, dtype=torch.float64), torch.as_tensor(y, dtype=torch.float64)
        out = copy.copy(self)
        out.train_X, out.train_y = torch.cat([self.train_X, X]), torch.cat([self.train_y, y])
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            out.model = self.model.condition_on_observations(self._inputs(X), y.clamp(*self.clip).unsqueeze(-1))
        return out


class GPSurrogate(ExactGPSurrogate):
    """A Gaussian process fitted by maximising the marginal likelihood with BoTorch's priors.

    `SingleTaskGP` with a Matern-5/2 ARD kernel and BoTorch's default (dimension-scaled
    log-normal) lengthscale prior, its default log-normal noise prior, outcomes standardised
    (`Standardize`), hyperparameters by `fit_gpytorch_mll` (L-BFGS-B on the MAP objective,
    with BoTorch's retries), under a fixed torch seed so that a fit depends only on the data.
    Clipping, predictive and `condition` as in `ExactGPSurrogate`.
    """

    def _fit_model(self, X: torch.Tensor, y: torch.Tensor) -> SingleTaskGP:
        model = SingleTaskGP(X, y, outcome_transform=Standardize(m=1),
                             covar_module=get_covar_module_with_dim_scaled_prior(X.shape[-1], use_rbf_kernel=False))
        with torch.random.fork_rng(), warnings.catch_warnings():
            torch.manual_seed(0)
            warnings.simplefilter("ignore")  # BoTorch's notes on retries and standardisation
            fit_gpytorch_mll(ExactMarginalLogLikelihood(model.likelihood, model))
        return model

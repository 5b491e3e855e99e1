"""The surrogate interface: `fit(X, y)` on unit-cube inputs, `predict(X)` a `Predictive`.

Every surrogate (GP, PFN, and the Bayesian neural networks to come) models an objective to be
*minimised* from points `X` of the unit cube (see `bo.space` for the encoding) and returns, at
query points, a predictive distribution with the statistics and acquisition values the
optimiser needs. Everything the predictive returns is differentiable with respect to the
query points, so acquisition functions can be optimised by gradients.
"""

from __future__ import annotations

import copy
import time
from abc import ABC, abstractmethod
from typing import Any, ClassVar

import torch


class Predictive(ABC):
    """The predictive distribution of the objective `Y` at a batch of query points.

    Values are in the units of the `y` the surrogate was fitted on; the objective is minimised,
    so an improvement on `best` is a value below it. Every output has the predictive's
    `batch_shape` (the query's shape without its last dimension) and is differentiable with
    respect to the queries.
    """

    @property
    @abstractmethod
    def batch_shape(self) -> torch.Size:
        """The shape of the batch of query points."""

    @property
    @abstractmethod
    def mean(self) -> torch.Tensor:
        """E[Y], `batch_shape`."""

    @property
    @abstractmethod
    def variance(self) -> torch.Tensor:
        """Var[Y], `batch_shape`."""

    @property
    def stddev(self) -> torch.Tensor:
        return self.variance.clamp_min(0.0).sqrt()

    @abstractmethod
    def quantile(self, q: float | torch.Tensor) -> torch.Tensor:
        """The `q`-quantile, `batch_shape` (`q` in (0, 1), broadcast to `batch_shape`)."""

    @abstractmethod
    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """`n x batch_shape` draws of `Y`."""

    @abstractmethod
    def expected_improvement(self, best: float | torch.Tensor) -> torch.Tensor:
        """E[max(best - Y, 0)], `batch_shape`."""

    def log_expected_improvement(self, best: float | torch.Tensor) -> torch.Tensor:
        """log E[max(best - Y, 0)], `batch_shape`: kept finite where EI underflows when possible."""
        ei = self.expected_improvement(best)
        return ei.clamp_min(torch.finfo(ei.dtype).tiny).log()

    @abstractmethod
    def probability_of_improvement(self, best: float | torch.Tensor) -> torch.Tensor:
        """P(Y < best), `batch_shape`."""

    def ucb(self, beta: float = 2.0) -> torch.Tensor:
        """`-mean + sqrt(beta) * stddev`, `batch_shape`: the upper confidence bound of `-Y`, larger is better."""
        return -self.mean + beta**0.5 * self.stddev


class Surrogate(ABC):
    """A probabilistic model of an objective to minimise, on inputs in the unit cube.

    Subclasses implement `_fit` and `predict`; `condition` (appending observations without
    refitting hyperparameters) defaults to refitting on the union, and a surrogate with
    hyperparameters overrides it to keep them.

    Attributes:
        max_dims: The most input dimensions the surrogate takes (None: any), checked when an
            optimiser is built so that a space too large for it fails before any evaluation.
        acquisition_budget: `AcquisitionOptimizer` settings that suit the surrogate's cost per
            evaluation, over that class's defaults (used when an optimiser is given none).
        train_X, train_y: The data of the last `fit` (`n x d` and `n`, float64).
        fit_seconds: Wall-clock seconds the last `fit` took (None before the first), for
            reporting a surrogate's cost per BO step.
    """

    max_dims: int | None = None
    acquisition_budget: ClassVar[dict[str, Any]] = {}

    def __init__(self) -> None:
        self.train_X: torch.Tensor | None = None
        self.train_y: torch.Tensor | None = None
        self.fit_seconds: float | None = None

    def fit(self, X: torch.Tensor, y: torch.Tensor) -> Surrogate:
        """Fits the surrogate to observations; returns `self`.

        Args:
            X: An `n x d` tensor of points in the unit cube, `n >= 1`.
            y: An `n` tensor of finite objective values (to be minimised).
        """
        X, y = _check_data(X, y, self.max_dims)
        self.train_X, self.train_y = X, y
        start = time.perf_counter()
        self._fit(X, y)
        self.fit_seconds = time.perf_counter() - start
        return self

    @abstractmethod
    def _fit(self, X: torch.Tensor, y: torch.Tensor) -> None:
        """Fits to checked data: `X` (`n x d` float64) and `y` (`n` float64)."""

    @abstractmethod
    def predict(self, X: torch.Tensor) -> Predictive:
        """The predictive at `X`: any `batch_shape x d` tensor in the unit cube (e.g. BoTorch's `b x q x d`).

        Gradients of every statistic of the predictive reach `X` when it requires grad.
        """

    def condition(self, X: torch.Tensor, y: torch.Tensor) -> Surrogate:
        """A copy of the fitted surrogate that also sees the observations `(X, y)` (`m x d`, `m`).

        Used for fantasised observations at pending points; the default refits on the union.
        """
        if self.train_X is None:
            raise RuntimeError("condition() needs a fitted surrogate; call fit(X, y) first")
        X, y = _check_data(X, y, self.max_dims)
        return copy.deepcopy(self).fit(torch.cat([self.train_X, X]), torch.cat([self.train_y, y]))

    def _check_fitted(self) -> None:
        if self.train_X is None:
            raise RuntimeError(f"{type(self).__name__} is not fitted; call fit(X, y) before predict")


def _check_data(X: Any, y: Any, max_dims: int | None) -> tuple[torch.Tensor, torch.Tensor]:
    X = torch.as_tensor(X, dtype=torch.float64)
    y = torch.as_tensor(y, dtype=torch.float64)
    if X.dim() != 2 or y.shape != X.shape[:1] or X.shape[0] == 0:
        raise ValueError(f"expected X of shape (n, d) and y of shape (n,) with n >= 1, got {tuple(X.shape)} and "
                         f"{tuple(y.shape)}")
    if max_dims is not None and X.shape[1] > max_dims:
        raise ValueError(f"X has {X.shape[1]} dimensions but this surrogate takes at most {max_dims}")
    if not torch.isfinite(X).all() or not torch.isfinite(y).all():
        raise ValueError("X and y must be finite; record failed evaluations as failed trials (the optimiser "
                         "imputes them) instead of passing NaN or inf")
    return X, y

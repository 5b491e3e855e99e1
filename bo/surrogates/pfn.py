"""`PFNSurrogate`: a bar-head PFN conditioned on the observations in one forward pass."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any, ClassVar

import torch

import pfn
from bo.surrogates.base import Surrogate
from bo.surrogates.outcome import OutcomeTransform
from bo.surrogates.predictive import BarPredictive
from pfn.model import PFN
from pfn.riemann import RiemannDistribution


class PFNSurrogate(Surrogate):
    """A prior-data fitted network with a bar (Riemann) head as the surrogate.

    `fit` transforms `y` to the units the network was trained on (zero mean, unit variance:
    `OutcomeTransform`, by default with a Yeo-Johnson power transform, which PFNs4BO found
    essential) and encodes the context once (KV cache); `predict` decodes the queries against
    it. The predictive is mapped back to `y` units exactly as a bar distribution: the bucket
    probabilities are the network's, the bucket borders are pushed through the inverse of the
    (monotone) transform, and the final affine step is `RiemannDistribution.affine` in float64.
    Within a mapped bucket the density is uniform in `y` units (the power transform bends it
    slightly; with a standardisation alone the map is exact).

    There are no hyperparameters to fit: `condition` (fantasised observations at pending
    points) appends them to the context and keeps the transform of the real observations.

    Acquisition budget (`acquisition_budget`): an evaluation decodes only the queries against
    the cached context, but a forward-backward pass over a few points still costs as much as
    scoring ~100 candidates (the network's fixed per-call overhead), so the acquisition
    optimiser scores 384 candidates (256 Sobol, 128 near the incumbents) and refines 16 starts
    by 8 batched gradient steps. On PFN states of Hartmann-6 and Branin this reached the
    log-EI of the thorough defaults (1280 candidates, 4 starts, L-BFGS-B to convergence) to
    within 0.03 (0.006 higher on average) in under half of their time.

    Args:
        model: A `PFN` with a bar head, or a shipped model's name or a checkpoint folder for
            `pfn.load` (default "bo", the BO prior's model).
        power_transform: Yeo-Johnson-transform `y` before standardising it; False only standardises.
    """

    acquisition_budget: ClassVar[dict[str, Any]] = {"n_candidates": 256, "n_around_best": 128, "n_starts": 16,
                                                    "maxiter": 8, "refiner": "ascent"}

    def __init__(self, model: PFN | str | Path = "bo", power_transform: bool = True) -> None:
        super().__init__()
        self.model = model if isinstance(model, PFN) else pfn.load(model)
        if self.model.config.head != "bar":
            raise ValueError(f"a PFN surrogate needs a bar (regression) head, got head={self.model.config.head!r}")
        self.max_dims = self.model.config.max_features
        self.power_transform = power_transform

    def _fit(self, X: torch.Tensor, y: torch.Tensor) -> None:
        self.transform = OutcomeTransform(y, self.power_transform)
        self._borders = self.transform.untransform_standardised(self.model.head.borders)
        self._fitted = self.model.fit(X, self.transform(y))

    def predict(self, X: torch.Tensor) -> BarPredictive:
        """The predictive at `X`, a `batch_shape x d` tensor in the unit cube (`batch_shape` non-empty)."""
        self._check_fitted()
        dist = self._fitted.predict(X, grad=X.requires_grad)
        mapped = RiemannDistribution(dist.log_probs, self._borders, normalized=True)
        return BarPredictive(mapped.affine(self.transform.loc, self.transform.scale))

    def condition(self, X: torch.Tensor, y: torch.Tensor) -> PFNSurrogate:
        """A copy whose context also holds `(X, y)` (`m x d`, `m`), with the transform kept."""
        self._check_fitted()
        out = copy.copy(self)
        out.train_X = torch.cat([self.train_X, torch.as_tensor(X, dtype=torch.float64)])
        out.train_y = torch.cat([self.train_y, torch.as_tensor(y, dtype=torch.float64)])
        out._fitted = self.model.fit(out.train_X, self.transform(out.train_y))
        return out

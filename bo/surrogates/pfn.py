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

_SUBSET_SEED = 0  # the random half of `context_subset` is fixed, so a fit depends only on its data


def context_subset(y: torch.Tensor, k: int) -> torch.Tensor:
    """Indices of the `k` of `n = len(y) > k` observations that the network is conditioned on.

    The `k // 2` best (lowest `y`; the earlier of ties) and `k - k // 2` drawn at random (a
    fixed seed) from the others: the region an acquisition function searches stays as densely
    observed as it is, the rest of the space is covered as the observations cover it.
    `benchmarks/bo_context_limit.py` chose it (see `PFNSurrogate`).

    Returns:
        A `k` int64 tensor of distinct indices into `y` (`n`).
    """
    order = torch.argsort(y, stable=True)
    n_best = k // 2
    others = torch.randperm(len(y) - n_best, generator=torch.Generator().manual_seed(_SUBSET_SEED))
    return torch.cat([order[:n_best], order[n_best:][others[:k - n_best]]])


def trained_max_context(model: PFN) -> int | None:
    """The most observations `model` was trained with as context (`train.max_context` of its checkpoint's
    config), None when its config does not say (a model built in code)."""
    value = model.info.get("train", {}).get("max_context")
    return None if value is None else int(value)


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

    Past its training: the network was trained on at most `max_context` observations
    (`train.max_context` in its checkpoint's config; 200 for `pretrained/bo`). With more, it is
    conditioned on `max_context` of them: the fantasies (all, up to `max_context`), and for the
    places left, half the best-valued observations and half a random draw (fixed seed) of the
    others (`context_subset`). The transform is still fitted to every observation.
    `benchmarks/bo_context_limit.py` measured the choice on functions of the BO prior with 300
    to 800 observations (`benchmarks/results/bo_context_limit.md`): near the optimum (the best
    quarter of the queries) this subset's NLL is the lowest of the rules tried (0.175 nats
    against 0.235 with every observation and 0.345 with a random subset), with the rank
    correlation there of every observation (0.682 against 0.675); over all queries it costs
    0.22 nats against every observation (0.300 against 0.080), which the shipped model reads
    without a loss up to 800 though it never saw more than 200 in training.

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
        self.max_context = trained_max_context(self.model)
        self.power_transform = power_transform

    def _fit(self, X: torch.Tensor, y: torch.Tensor) -> None:
        self.transform = OutcomeTransform(y, self.power_transform)
        self._borders = self.transform.untransform_standardised(self.model.head.borders)
        self._encode(X, y, n_fantasies=0)

    def _encode(self, X: torch.Tensor, y: torch.Tensor, n_fantasies: int) -> None:
        """Encodes the context: every observation, or past `max_context` the fantasies (the last
        `n_fantasies` rows, up to `max_context`) and `context_subset` of the others."""
        n, k = len(y), self.max_context
        if k is not None and n > k:
            n_real = n - n_fantasies
            fantasies = torch.arange(max(n_real, n - k), n)
            idx = torch.cat([context_subset(y[:n_real], k - len(fantasies)), fantasies])
            X, y = X[idx], y[idx]
        self.context_X, self.context_z = X, self.transform(y)
        self._fitted = self.model.fit(self.context_X, self.context_z)

    def predict(self, X: torch.Tensor) -> BarPredictive:
        """The predictive at `X`, a `batch_shape x d` tensor in the unit cube (`batch_shape` non-empty)."""
        self._check_fitted()
        dist = self._fitted.predict(X, grad=X.requires_grad)
        mapped = RiemannDistribution(dist.log_probs, self._borders, normalized=True)
        return BarPredictive(mapped.affine(self.transform.loc, self.transform.scale),
                             clip=(self.transform.lo, self.transform.hi))

    def condition(self, X: torch.Tensor, y: torch.Tensor) -> PFNSurrogate:
        """A copy whose context also holds `(X, y)` (`m x d`, `m`), with the transform kept."""
        self._check_fitted()
        out = copy.copy(self)
        out.train_X = torch.cat([self.train_X, torch.as_tensor(X, dtype=torch.float64)])
        out.train_y = torch.cat([self.train_y, torch.as_tensor(y, dtype=torch.float64)])
        out._encode(out.train_X, out.train_y, n_fantasies=len(out.train_y) - len(self.train_y))
        return out

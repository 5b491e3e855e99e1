"""Maximising an acquisition function over a mixed space's unit cube.

Sobol candidates (plus perturbations of the best observed points), snapped to the discrete
cells, are scored in one batch; the best few start L-BFGS-B on the continuous coordinates
(gradients through the surrogate's differentiable predict, all starts in one call since their
values are independent), then a local search over the discrete coordinates (one `Int` step or
any other `Categorical` choice at a time, best move first), alternating until no move helps.
The result is the best refined point that is not one of the excluded points (those already
evaluated or pending), else the best candidate that is not, so a suggestion repeats a point
only when the scored points hold no other (a small discrete space); at the bounds of the cube,
where maximisers of acquisitions often lie, exact repeats would otherwise be common.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch
from scipy.optimize import minimize

from bo.space import Space, sobol

AcquisitionFunction = Callable[[torch.Tensor], torch.Tensor]


@dataclass(frozen=True)
class AcquisitionOptimizer:
    """Settings of the acquisition optimisation.

    Args:
        n_candidates: Scrambled Sobol points scored first.
        n_around_best: Further candidates: Gaussian perturbations (`sigma` in cube units) of the
            best observed points, which find the narrow peak of a converging search.
        sigma: Standard deviation of those perturbations.
        n_starts: Best candidates refined by L-BFGS-B and local search.
        maxiter: L-BFGS-B iterations per refinement.
        max_rounds: Alternations of L-BFGS-B and discrete local search.
    """

    n_candidates: int = 1024
    n_around_best: int = 256
    sigma: float = 0.05
    n_starts: int = 4
    maxiter: int = 100
    max_rounds: int = 5

    def __post_init__(self) -> None:
        for name in ("n_candidates", "n_starts", "maxiter", "max_rounds"):
            if not getattr(self, name) >= 1:
                raise ValueError(f"AcquisitionOptimizer.{name} must be >= 1, got {getattr(self, name)}")
        if not (self.n_around_best >= 0 and self.sigma > 0):
            raise ValueError("AcquisitionOptimizer needs n_around_best >= 0 and sigma > 0")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def optimize(self, acquisition: AcquisitionFunction, space: Space, seed: int,
                 incumbents: torch.Tensor | None = None,
                 exclude: torch.Tensor | None = None) -> tuple[torch.Tensor, float]:
        """The best point found and its acquisition value.

        Args:
            acquisition: Maps a `b x d` float64 tensor in the unit cube to `b` values (larger is
                better), differentiable with respect to its input.
            space: The space whose cube is searched (its discrete coordinates stay on their cells).
            seed: Seeds the candidates.
            incumbents: A `k x d` tensor of the best observed points (perturbed into candidates), or None.
            exclude: An `e x d` tensor of points not to return (matched to 1e-9) unless nothing else was found.

        Returns:
            A `d` float64 tensor in the unit cube and its acquisition value.
        """
        candidates = sobol(self.n_candidates, space.dim, seed)
        if incumbents is not None and len(incumbents) and self.n_around_best:
            gen = torch.Generator().manual_seed(seed)
            centres = incumbents[torch.randint(len(incumbents), (self.n_around_best,), generator=gen)]
            noise = self.sigma * torch.randn(self.n_around_best, space.dim, generator=gen, dtype=torch.float64)
            candidates = torch.cat([candidates, (centres + noise).clamp(0.0, 1.0)])
        candidates = space.snap(candidates)
        with torch.no_grad():
            values = acquisition(candidates)
        starts = candidates[_top_distinct(values, candidates, self.n_starts)]
        refined, refined_values = self._refine(acquisition, space, starts)
        for X, v in ((refined, refined_values), (candidates, values)):
            for i in torch.argsort(torch.nan_to_num(v, nan=-torch.inf), descending=True).tolist():
                if exclude is None or not _matches(X[i], exclude):
                    return X[i], float(v[i])
        best = int(refined_values.argmax())
        return refined[best], float(refined_values[best])

    def _refine(self, acquisition: AcquisitionFunction, space: Space,
                X: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Alternates L-BFGS-B and discrete moves from the starts `X` (`s x d`); returns them and their values."""
        continuous = [i for i in range(space.dim) if i not in space.discrete]
        values = None
        for _ in range(self.max_rounds):
            X = _lbfgsb(acquisition, X, continuous, self.maxiter) if continuous else X
            with torch.no_grad():
                values = acquisition(X)
            moved = False
            for i in range(len(X)):
                neighbours = space.neighbours(X[i])
                if not len(neighbours):
                    continue
                with torch.no_grad():
                    scores = acquisition(neighbours)
                j = int(scores.argmax())
                if scores[j] > values[i]:
                    X[i], values[i], moved = neighbours[j], scores[j], True
            if not moved:
                break
        return X, values


def _matches(x: torch.Tensor, points: torch.Tensor, tol: float = 1e-9) -> bool:
    """Whether `x` (`d`) is one of `points` (`e x d`) to within `tol` in every coordinate."""
    return bool(((points - x).abs() <= tol).all(-1).any())


def _top_distinct(values: torch.Tensor, X: torch.Tensor, k: int) -> torch.Tensor:
    """Indices of the `k` best rows of `X` by `values`, skipping duplicate rows (snapping makes some)."""
    order = torch.argsort(torch.nan_to_num(values, nan=-torch.inf), descending=True)
    picked: list[int] = []
    for i in order.tolist():
        if all(not torch.equal(X[i], X[j]) for j in picked):
            picked.append(i)
            if len(picked) == k:
                break
    return torch.tensor(picked)


def _lbfgsb(acquisition: AcquisitionFunction, X: torch.Tensor, dims: list[int], maxiter: int) -> torch.Tensor:
    """Maximises the sum of the acquisition over the rows of `X` (`s x d`) in the coordinates `dims`, within [0, 1]."""
    base = X.detach().clone()
    shape = base[:, dims].shape

    def negative(z: np.ndarray) -> tuple[float, np.ndarray]:
        Z = torch.from_numpy(z).reshape(shape).requires_grad_(True)
        Xz = base.clone()
        Xz[:, dims] = Z
        total = torch.nan_to_num(acquisition(Xz), nan=-1e6, neginf=-1e6).sum()
        (grad,) = torch.autograd.grad(total, Z)
        return -float(total.detach()), -np.nan_to_num(grad.numpy().ravel())

    z0 = base[:, dims].numpy().ravel()
    result = minimize(negative, z0, jac=True, method="L-BFGS-B", bounds=[(0.0, 1.0)] * z0.size,
                      options={"maxiter": maxiter})
    # L-BFGS-B may end on a worse point than it started from (a failed line search); keep the better.
    out = base.clone()
    out[:, dims] = torch.from_numpy(np.clip(result.x, 0.0, 1.0)).reshape(shape)
    with torch.no_grad():
        better = acquisition(out) >= acquisition(base)
    return torch.where(better.unsqueeze(-1), out, base)

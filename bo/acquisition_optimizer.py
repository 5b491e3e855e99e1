"""Maximising an acquisition function over a mixed space's unit cube.

Sobol candidates (plus perturbations of the best observed points), snapped to the discrete
cells, are scored in one batch. The best few distinct ones are refined together on the
continuous coordinates through the surrogate's differentiable predict, every start in each
forward-backward pass (the sum of their values, which are independent, so one backward pass
gives every start's gradient): by L-BFGS-B on the stacked coordinates, or by a fixed number
of gradient steps with a step length per start (`refiner`). Then a local search over the
discrete coordinates (one `Int` step or any other `Categorical` choice at a time, best move
first, every start's moves scored in one batch), alternating until no move helps. A start
keeps the best point it reached, so a refinement never ends worse than it began.

The result is the best refined point that is not one of the excluded points (those already
evaluated or pending), else the best candidate that is not, so a suggestion repeats a point
only when the scored points hold no other (a small discrete space); at the bounds of the cube,
where maximisers of acquisitions often lie, exact repeats would otherwise be common.

Cost: one batched evaluation of the candidates and, per round, at most `maxiter` passes
(L-BFGS-B: iterations, each one or more passes) plus one batch of discrete moves. The
defaults are thorough (L-BFGS-B to convergence), which suits a GP, whose evaluations are
cheap beside its fit; a surrogate may carry a budget of its own (`Surrogate.acquisition_budget`,
used when an optimiser is given no settings), as the PFN does: fewer candidates, more starts
and a few gradient steps (see `PFNSurrogate`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from scipy.optimize import minimize

from bo.checks import check_integer
from bo.space import Space, sobol

AcquisitionFunction = Callable[[torch.Tensor], torch.Tensor]
_FIRST_STEP = 0.05  # the first gradient step of a refinement, in cube units


@dataclass(frozen=True)
class AcquisitionOptimizer:
    """Settings of the acquisition optimisation.

    Args:
        n_candidates: Scrambled Sobol points scored first.
        n_around_best: Further candidates: Gaussian perturbations (`sigma` in cube units) of the
            best observed points, which find the narrow peak of a converging search.
        sigma: Standard deviation of those perturbations.
        n_starts: Best distinct candidates refined together (`refiner`, then local search).
        maxiter: Per refinement round, L-BFGS-B's most iterations, or the ascent's gradient steps
            (each one forward-backward pass of all starts).
        max_rounds: Alternations of continuous refinement and discrete local search.
        refiner: "lbfgsb": L-BFGS-B on the starts' stacked coordinates, run to convergence (or
            `maxiter`); "ascent": per-start gradient ascent of exactly `maxiter` steps (`_ascend`),
            for a fixed small budget where line searches would waste evaluations.
    """

    n_candidates: int = 1024
    n_around_best: int = 256
    sigma: float = 0.05
    n_starts: int = 4
    maxiter: int = 100
    max_rounds: int = 5
    refiner: str = "lbfgsb"

    def __post_init__(self) -> None:
        for name, minimum in (("n_candidates", 1), ("n_around_best", 0), ("n_starts", 1), ("maxiter", 1),
                              ("max_rounds", 1)):
            object.__setattr__(self, name, check_integer(f"AcquisitionOptimizer.{name}", getattr(self, name), minimum))
        if not self.sigma > 0:
            raise ValueError(f"AcquisitionOptimizer.sigma must be > 0, got {self.sigma!r}")
        if self.refiner not in _REFINERS:
            raise ValueError(f"AcquisitionOptimizer.refiner must be one of {sorted(_REFINERS)}, got {self.refiner!r}")

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
        candidates = self._candidates(space, seed, incumbents)
        with torch.no_grad():
            values = _finite(acquisition(candidates))
        starts = _top_distinct(values, candidates, self.n_starts)
        refined, refined_values = self._refine(acquisition, space, candidates[starts], values[starts])
        for X, v in ((refined, refined_values), (candidates, values)):
            i = _best_allowed(X, v, exclude)
            if i is not None:
                return X[i], float(v[i])
        best = int(refined_values.argmax())
        return refined[best], float(refined_values[best])

    def _candidates(self, space: Space, seed: int, incumbents: torch.Tensor | None) -> torch.Tensor:
        """Sobol points and perturbed incumbents, snapped to the discrete cells (`n x d` float64)."""
        candidates = sobol(self.n_candidates, space.dim, seed)
        if incumbents is not None and len(incumbents) and self.n_around_best:
            gen = torch.Generator().manual_seed(seed)
            centres = incumbents[torch.randint(len(incumbents), (self.n_around_best,), generator=gen)]
            noise = self.sigma * torch.randn(self.n_around_best, space.dim, generator=gen, dtype=torch.float64)
            candidates = torch.cat([candidates, (centres + noise).clamp(0.0, 1.0)])
        return space.snap(candidates)

    def _refine(self, acquisition: AcquisitionFunction, space: Space, X: torch.Tensor,
                values: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Alternates continuous refinement and discrete moves from the starts `X` (`s x d`, values `values`).

        Returns the refined points and their values, each no worse than its start.
        """
        continuous = [i for i in range(space.dim) if i not in space.discrete]
        for _ in range(self.max_rounds):
            if continuous:
                X, values = _REFINERS[self.refiner](acquisition, X, continuous, self.maxiter)
            X, values, moved = _discrete_moves(acquisition, space, X, values)
            if not moved:
                break
        return X, values


def _finite(values: torch.Tensor) -> torch.Tensor:
    """`values` with NaN as -inf, so that comparisons and sorting rank a NaN last."""
    return torch.nan_to_num(values, nan=-torch.inf, posinf=torch.inf, neginf=-torch.inf)


def _best_allowed(X: torch.Tensor, values: torch.Tensor, exclude: torch.Tensor | None,
                  tol: float = 1e-9) -> int | None:
    """The index of the best row of `X` (`n x d`) by `values` that is none of `exclude` (to `tol`), or None."""
    allowed = torch.arange(len(X))
    if exclude is not None and len(exclude):
        allowed = allowed[torch.cdist(X, exclude.to(X), p=float("inf")).min(-1).values > tol]
    return int(allowed[values[allowed].argmax()]) if len(allowed) else None


def _top_distinct(values: torch.Tensor, X: torch.Tensor, k: int) -> torch.Tensor:
    """Indices of the `k` best rows of `X` by `values`, one per set of equal rows (snapping makes some)."""
    order = torch.argsort(values, descending=True, stable=True)
    _, group = torch.unique(X[order], dim=0, return_inverse=True)
    positions = torch.arange(len(order))
    first = torch.full((int(group.max()) + 1,), len(order)).scatter_reduce(0, group, positions, "amin")
    return order[first.sort().values[:k]]


def _ascend(acquisition: AcquisitionFunction, X: torch.Tensor, dims: list[int],
            steps: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Projected, normalised gradient ascent of every row of `X` (`s x d`) in the coordinates `dims`, all rows at once.

    Each step is one forward-backward pass at every row's trial point: a row moves there only
    if its value improves, and its step length (cube units, from `_FIRST_STEP`) doubles after
    a success and shrinks after a failure to where a quadratic fitted along the step peaks
    (`_shorter_step`), so each row finds its own scale without line searches, and the cost is
    exactly `steps` passes (the first at `X` itself).

    Returns:
        The rows and their acquisition values (`s`), each no worse than at its start.
    """
    values, grad = _value_and_grad(acquisition, X, dims)
    step = torch.full_like(values, _FIRST_STEP, dtype=X.dtype)
    for _ in range(steps - 1):
        direction = _ascent_direction(X[:, dims], grad)
        trial = _with_columns(X, dims, (X[:, dims] + step.unsqueeze(-1) * direction).clamp(0.0, 1.0))
        trial_values, trial_grad = _value_and_grad(acquisition, trial, dims)
        better = trial_values > values
        step = torch.where(better, 2 * step, _shorter_step(step, values, trial_values, (grad * direction).sum(-1)))
        X = torch.where(better.unsqueeze(-1), trial, X)
        grad = torch.where(better.unsqueeze(-1), trial_grad, grad)
        values = torch.where(better, trial_values, values)
    return X, values


def _lbfgsb(acquisition: AcquisitionFunction, X: torch.Tensor, dims: list[int],
            maxiter: int) -> tuple[torch.Tensor, torch.Tensor]:
    """L-BFGS-B (scipy) on the sum of the acquisition over the rows of `X` (`s x d`) in the coordinates `dims`,
    within the cube, all rows in one run (their values are independent), for at most `maxiter` iterations.

    Returns:
        Per row, the best point that any evaluation reached (the first is at `X` itself) and its
        value (`s`): a run may end worse than it was (a failed line search).
    """
    shape = X[:, dims].shape
    best_X, best_values = X, None

    def negative(z: np.ndarray) -> tuple[float, np.ndarray]:
        nonlocal best_X, best_values
        Xz = _with_columns(X, dims, torch.from_numpy(z).reshape(shape))
        values, grad = _value_and_grad(acquisition, Xz, dims)
        if best_values is None:
            best_X, best_values = Xz, values
        else:
            better = values > best_values
            best_X = torch.where(better.unsqueeze(-1), Xz, best_X)
            best_values = torch.where(better, values, best_values)
        return -float(values.clamp_min(-1e6).sum()), -grad.numpy().ravel()

    z0 = X[:, dims].numpy().ravel()
    minimize(negative, z0, jac=True, method="L-BFGS-B", bounds=[(0.0, 1.0)] * z0.size, options={"maxiter": maxiter})
    return best_X, best_values


def _value_and_grad(acquisition: AcquisitionFunction, X: torch.Tensor,
                    dims: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
    """The acquisition at the rows of `X` (`s`, NaN as -inf) and its gradient in the coordinates `dims`
    (`s x len(dims)`, non-finite entries as 0), by one backward pass of their sum (the rows are independent)."""
    with torch.enable_grad():
        Z = X[:, dims].requires_grad_(True)
        values = acquisition(_with_columns(X, dims, Z))
        (grad,) = torch.autograd.grad(torch.nan_to_num(values, nan=0.0, posinf=0.0, neginf=0.0).sum(), Z)
    return _finite(values.detach()), torch.nan_to_num(grad, nan=0.0, posinf=0.0, neginf=0.0)


def _ascent_direction(Z: torch.Tensor, grad: torch.Tensor) -> torch.Tensor:
    """The unit direction of `grad` (`s x c`) at `Z` (in the cube), without the components pushing
    out of the cube at a bound, so that a row on a face slides along it (zero where nothing is left)."""
    blocked = ((Z <= 0) & (grad < 0)) | ((Z >= 1) & (grad > 0))
    return F.normalize(grad.masked_fill(blocked, 0.0), dim=-1)


def _shorter_step(step: torch.Tensor, values: torch.Tensor, trial_values: torch.Tensor,
                  slope: torch.Tensor) -> torch.Tensor:
    """The next step length after a failed step (`s` each): the maximiser of the quadratic through the
    value and `slope` at the start and the value at the trial, kept within a tenth to a half of
    `step`; a quarter of `step` where that quadratic is not concave or the trial value is not finite."""
    curvature = (trial_values - values - slope * step) / step**2
    vertex = -slope / (2 * curvature)
    fitted = torch.minimum(torch.maximum(vertex, step / 10), step / 2)
    return torch.where((curvature < 0) & torch.isfinite(curvature), fitted, step / 4)


def _with_columns(X: torch.Tensor, dims: list[int], Z: torch.Tensor) -> torch.Tensor:
    """`X` (`s x d`) with its columns `dims` replaced by `Z` (`s x len(dims)`), differentiable in `Z`."""
    out = X.clone()
    out[:, dims] = Z
    return out


def _discrete_moves(acquisition: AcquisitionFunction, space: Space, X: torch.Tensor,
                    values: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, bool]:
    """Moves each row of `X` (`s x d`, acquisition `values`) to its best neighbour where that is better.

    Every row's neighbours (one discrete move away, `Space.neighbours`) are scored in one batch.
    Returns the rows, their values and whether any moved.
    """
    neighbours = [space.neighbours(x) for x in X]
    counts = torch.tensor([len(n) for n in neighbours])
    if not counts.any():
        return X, values, False
    flat = torch.cat(neighbours)
    owner = torch.repeat_interleave(torch.arange(len(X)), counts)
    with torch.no_grad():
        scores = _finite(acquisition(flat))
    best = torch.full_like(values, -torch.inf).scatter_reduce(0, owner, scores, "amax")
    moved = best > values
    if not moved.any():
        return X, values, False
    hit = scores == best[owner]  # each row's first best neighbour
    first = torch.full((len(X),), len(flat)).scatter_reduce(0, owner[hit], torch.arange(len(flat))[hit], "amin")
    X, values = X.clone(), values.clone()
    X[moved], values[moved] = flat[first[moved]], best[moved]
    return X, values, True


_REFINERS: dict[str, Callable[..., tuple[torch.Tensor, torch.Tensor]]] = {"lbfgsb": _lbfgsb, "ascent": _ascend}

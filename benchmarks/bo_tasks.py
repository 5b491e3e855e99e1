"""The tasks of `benchmarks/bo_suite.py`: BoTorch's synthetic functions and scikit-learn tuning problems.

Every task is minimised. A synthetic task reports the noise-free value of each evaluated point
(`true`) beside what the optimiser observed (`observed`, with noise in the noisy variants); its
normalised regret uses the known optimum and, as the scale, the median of the function over
1024 Sobol points (a typical random point has regret 1). A tuning task's value is the 3-fold
cross-validated error (fixed folds and model seeds, so it is deterministic); its optimum is the
best value any method found in the run and its scale the median value of random search.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from typing import Any

import numpy as np
import torch

import bo

NOISE_FRACTION = 0.05  # noise std of the noisy variants, as a fraction of the function's range over a Sobol sample


@dataclass(frozen=True)
class Task:
    """A minimisation problem: `evaluate(params, rng) -> (observed, true)`.

    Attributes:
        name: Unique name, e.g. "hartmann6-noisy".
        space: The `bo` search space.
        evaluate: Observed value (what the optimiser sees) and noise-free value of a parameter dict.
        optimum: The known minimum (None for tuning tasks: the best value found in the run).
        scale_reference: The median value of a random point (None for tuning tasks: random search's).
    """

    name: str
    space: dict[str, Any]
    evaluate: Callable[[dict[str, Any], np.random.Generator], tuple[float, float]]
    optimum: float | None
    scale_reference: float | None


SYNTHETIC = {  # name: (botorch class name, dimension)
    "branin": ("Branin", 2), "hartmann6": ("Hartmann", 6), "ackley5": ("Ackley", 5), "levy4": ("Levy", 4),
    "rosenbrock4": ("Rosenbrock", 4), "styblinskitang8": ("StyblinskiTang", 8),
}


def synthetic_task(name: str, noisy: bool) -> Task:
    """A BoTorch test function on its standard bounds, noise-free or with Gaussian noise (module docstring)."""
    from botorch.test_functions import synthetic

    cls_name, dim = SYNTHETIC[name]
    cls = getattr(synthetic, cls_name)
    fn = cls() if cls_name == "Branin" else cls(dim=dim)
    bounds = fn.bounds.double()
    space = {f"x{i}": bo.Float(float(bounds[0, i]), float(bounds[1, i])) for i in range(dim)}
    sample = bounds[0] + (bounds[1] - bounds[0]) * bo.space.sobol(1024, dim, seed=123)
    with torch.no_grad():
        values = fn.evaluate_true(sample)
    noise_sd = NOISE_FRACTION * float(values.max() - values.min()) if noisy else 0.0

    def evaluate(params: dict[str, Any], rng: np.random.Generator) -> tuple[float, float]:
        x = torch.tensor([[params[f"x{i}"] for i in range(dim)]], dtype=torch.float64)
        with torch.no_grad():
            true = float(fn.evaluate_true(x))
        return true + noise_sd * float(rng.standard_normal()), true

    return Task(f"{name}-noisy" if noisy else name, space, evaluate, float(fn.optimal_value),
                float(values.median()))


@cache
def _table(name: str) -> tuple[np.ndarray, np.ndarray]:
    from sklearn import datasets

    if name == "digits":
        x, y = datasets.load_digits(return_X_y=True)
        keep = np.random.default_rng(0).permutation(len(y))[:600]
        return x[keep] / 16.0, y[keep]
    x, y = getattr(datasets, f"load_{name}")(return_X_y=True)
    return x, y


def _cv_error(make_model: Callable[[], Any], table: str) -> float:
    from sklearn.model_selection import StratifiedKFold, cross_val_score
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    x, y = _table(table)
    folds = StratifiedKFold(3, shuffle=True, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        scores = cross_val_score(make_pipeline(StandardScaler(), make_model()), x, y, cv=folds)
    return 1.0 - float(np.mean(scores))


def tuning_tasks() -> dict[str, Task]:
    """Four scikit-learn models tuned by 3-fold CV error on bundled tables, over mixed spaces."""
    from sklearn.ensemble import HistGradientBoostingClassifier, RandomForestClassifier
    from sklearn.neural_network import MLPClassifier
    from sklearn.svm import SVC

    def task(name: str, table: str, space: dict[str, Any], make: Callable[[dict[str, Any]], Any]) -> Task:
        def evaluate(params: dict[str, Any], rng: np.random.Generator) -> tuple[float, float]:
            value = _cv_error(lambda: make(params), table)
            return value, value

        return Task(name, space, evaluate, None, None)

    return {t.name: t for t in [
        task("svm-breast_cancer", "breast_cancer",
             {"C": bo.Float(1e-3, 1e3, log=True), "gamma": bo.Float(1e-5, 1e1, log=True),
              "kernel": bo.Categorical(["rbf", "sigmoid", "poly"])},
             lambda p: SVC(C=p["C"], gamma=p["gamma"], kernel=p["kernel"])),
        task("hgb-wine", "wine",
             {"learning_rate": bo.Float(1e-3, 1.0, log=True), "max_leaf_nodes": bo.Int(2, 64, log=True),
              "min_samples_leaf": bo.Int(1, 40), "l2_regularization": bo.Float(1e-6, 10.0, log=True)},
             lambda p: HistGradientBoostingClassifier(max_iter=50, random_state=0, **p)),
        task("rf-breast_cancer", "breast_cancer",
             {"n_estimators": bo.Int(5, 100, log=True), "max_depth": bo.Int(1, 20), "max_features": bo.Float(0.05, 1.0),
              "criterion": bo.Categorical(["gini", "entropy"])},
             lambda p: RandomForestClassifier(random_state=0, **p)),
        task("mlp-digits", "digits",
             {"width": bo.Int(4, 128, log=True), "alpha": bo.Float(1e-6, 1.0, log=True),
              "learning_rate_init": bo.Float(1e-4, 0.3, log=True), "activation": bo.Categorical(["relu", "tanh"])},
             lambda p: MLPClassifier(hidden_layer_sizes=(p["width"],), alpha=p["alpha"], max_iter=60,
                                     learning_rate_init=p["learning_rate_init"], activation=p["activation"],
                                     random_state=0)),
    ]}


def all_tasks() -> dict[str, Task]:
    """Every task by name: each synthetic function noise-free and noisy, then the tuning tasks."""
    tasks = {}
    for name in SYNTHETIC:
        for noisy in (False, True):
            t = synthetic_task(name, noisy)
            tasks[t.name] = t
    return {**tasks, **tuning_tasks()}


def normalised_regret(best_true: np.ndarray, optimum: float, reference: float) -> np.ndarray:
    """`(best - optimum) / (reference - optimum)`, clipped below at 0 (any shape)."""
    span = reference - optimum
    return np.maximum(best_true - optimum, 0.0) / (span if span > 0 else math.inf)

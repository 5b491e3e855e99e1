"""Bayesian optimisation with PFN and GP surrogates: search spaces, surrogates, acquisition, the loop.

    import bo

    space = {"lr": bo.Float(1e-5, 1e-1, log=True), "layers": bo.Int(1, 8), "act": bo.Categorical(["relu", "tanh"])}
    result = bo.optimize(objective, space, n_trials=50, surrogate="gp")
    result.best_params, result.best_value, result.history

or step by step with `bo.Optimizer(space, ...)`: `ask()` for parameters, `tell(params, value)`
for results, `save(path)` / `Optimizer.load(path)` to resume.
"""

from bo.acquisition import EI, PI, UCB, Acquisition
from bo.acquisition_optimizer import AcquisitionOptimizer
from bo.optimize import Result, optimize
from bo.optimizer import Optimizer
from bo.plots import plot_convergence, plot_predictions
from bo.space import Categorical, Float, Int, Space
from bo.surrogates import GPSurrogate, PFNSurrogate, Predictive, Surrogate
from bo.trial import Trial

__all__ = ["EI", "PI", "UCB", "Acquisition", "AcquisitionOptimizer", "Categorical", "Float", "GPSurrogate", "Int",
           "Optimizer", "PFNSurrogate", "Predictive", "Result", "Space", "Surrogate", "Trial", "optimize",
           "plot_convergence", "plot_predictions"]

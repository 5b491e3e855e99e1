"""In-context linear regression with a PFN: scores against exact Bayes and classic learners, and the demo.

The prior and its exact posterior predictive are `priors.linreg`; the model is an ordinary PFN
trained on it (`pfn train linreg`, shipped as `pretrained/linreg`). `evaluate_linreg` scores a
model on held-out tasks of the prior (used by `benchmarks/linreg.py`, the tests and `pfn demo`).
"""

from pfn.linreg.evaluation import evaluate_linreg, gd_direction, knn_predict, ols_predict, tune_gd_step

__all__ = ["evaluate_linreg", "gd_direction", "knn_predict", "ols_predict", "tune_gd_step"]

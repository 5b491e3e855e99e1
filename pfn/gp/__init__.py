"""The GP use of the engine: the shipped GP-PFN's demo and the Gaussian-process references it is measured against.

`pfn.gp.baseline` holds the fitted type-II maximum-likelihood GP (BoTorch `SingleTaskGP`) and the exact
GP posterior with known hyperparameters (used by `benchmarks/gp.py`, the tests and
`pfn demo`); `pfn.gp.demo` is the GP part of `pfn demo`. The model itself is an ordinary PFN trained on
`priors.GPPrior` (`pfn reproduce gp`, shipped as `pretrained/gp`).
"""

from pfn.gp.baseline import exact_latent_predictive, fit_type2_ml_gp, latent_predictive

__all__ = ["exact_latent_predictive", "fit_type2_ml_gp", "latent_predictive"]

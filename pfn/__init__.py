"""Prior-data fitted networks: a transformer trained on prior samples does Bayesian
inference in one forward pass.

Main entry points: `pfn.load(name_or_path)` for a shipped or trained model,
`model.predict(x_context, y_context, x_query)` for its predictive distribution, and
`pfn.train(prior, model_config, train_config, out_dir)` to train one; `pfn.PFNClassifier`
and `pfn.PFNRegressor` for scikit-learn style tabular prediction; `pfn.LCPFN` for
learning-curve extrapolation (`pfn.curves`); `pfn.DistributionTransformer` for Gaussian-mixture
posteriors (`pfn.distribution_transformer`).
"""

from typing import Any

from pfn.checkpoint import CheckpointError, load, save_checkpoint
from pfn.config import ModelConfig, TrainConfig
from pfn.model import PFN, FittedPFN
from pfn.riemann import RiemannDistribution, borders_from_samples
from pfn.training import train

__all__ = ["LCPFN", "PFN", "CheckpointError", "DistributionTransformer", "FittedPFN", "ModelConfig", "PFNClassifier",
           "PFNRegressor", "RiemannDistribution", "TrainConfig", "borders_from_samples", "load", "save_checkpoint",
           "train"]


def __getattr__(name: str) -> Any:
    # The wings' models (scikit-learn estimators, learning curves, Distribution Transformer) are imported on
    # first use: `import pfn` stays light and the engine never imports a wing.
    if name in ("PFNClassifier", "PFNRegressor"):
        from pfn import tabular

        return getattr(tabular, name)
    if name == "LCPFN":
        from pfn.curves import LCPFN

        return LCPFN
    if name == "DistributionTransformer":
        from pfn.distribution_transformer import DistributionTransformer

        return DistributionTransformer
    raise AttributeError(f"module 'pfn' has no attribute {name!r}")

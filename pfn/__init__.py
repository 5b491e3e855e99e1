"""Prior-data fitted networks: a transformer trained on prior samples does Bayesian
inference in one forward pass.

Main entry points: `pfn.load(name_or_path)` for a shipped or trained model,
`model.predict(x_context, y_context, x_query)` for its predictive distribution, and
`pfn.train(prior, model_config, train_config, out_dir)` to train one.
"""

from pfn.checkpoint import CheckpointError, load, save_checkpoint
from pfn.config import ModelConfig, TrainConfig
from pfn.model import PFN, FittedPFN
from pfn.riemann import RiemannDistribution, borders_from_samples
from pfn.training import train

__all__ = ["PFN", "CheckpointError", "FittedPFN", "ModelConfig", "RiemannDistribution", "TrainConfig",
           "borders_from_samples", "load", "save_checkpoint", "train"]

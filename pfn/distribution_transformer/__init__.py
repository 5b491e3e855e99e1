"""The Distribution Transformer: a Gaussian-mixture prior and linear-Gaussian observations in, the
posterior Gaussian mixture out, in one forward pass; posteriors chain as the next prior.

`GMM` is the mixture type; `LinearGaussian` the observation model `y = A z + b + e`;
`exact_posterior` the closed-form answer; `DistributionTransformer` the model, trained by
`pfn train dist-gmm`. The wing adds the architecture `"dist"` (`model.py`) and the head `"gmm"`
(`head.py`) to the engine's registries; `pyproject.toml` declares both as entry points, so
`pfn.load` finds them without this package being imported first. `evaluation` scores a model
against the exact posterior (benchmark, tests, demo) and `demo` is the `pfn demo` part.
"""

from pfn.distribution_transformer.exact import exact_posterior
from pfn.distribution_transformer.gmm import GMM
from pfn.distribution_transformer.head import GMMHead
from pfn.distribution_transformer.model import DistributionTransformer
from pfn.distribution_transformer.observations import LinearGaussian

__all__ = ["GMM", "DistributionTransformer", "GMMHead", "LinearGaussian", "exact_posterior"]

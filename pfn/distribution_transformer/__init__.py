"""The Distribution Transformer: a Gaussian-mixture prior and linear-Gaussian observations in, the
posterior Gaussian mixture out, in one forward pass; posteriors chain as the next prior.

`GMM` is the mixture type; `LinearGaussian` the observation model `y = A z + b + e`;
`exact_posterior` the closed-form answer; `DistributionTransformer` the model (the engine's
`architecture="dist"` with the `"gmm"` head of `pfn.heads.gmm`), trained by `pfn train dist-gmm`.
`pfn.dist.evaluation` scores a model against the exact posterior (benchmark, tests, demo) and
`pfn.dist.demo` is the `pfn demo` part.
"""

from pfn.dist.exact import exact_posterior
from pfn.dist.gmm import GMM
from pfn.dist.model import DistributionTransformer
from pfn.dist.observations import LinearGaussian

__all__ = ["GMM", "DistributionTransformer", "LinearGaussian", "exact_posterior"]

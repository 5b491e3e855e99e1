"""Prior samplers: objects whose `sample(...)` returns a `Batch` of datasets."""

from priors.batch import Batch
from priors.bnn import BNNPrior
from priors.bo import BOPrior
from priors.curves import CurvePrior
from priors.gmm import GMMTaskPrior
from priors.gp import GPPrior
from priors.hyperprior_wrapper import HyperpriorWrapper
from priors.hyperpriors import Fixed, Gamma, LogNormal, Uniform
from priors.linreg import LinearRegressionPrior
from priors.mixture import MixturePrior
from priors.registry import prior_from_dict, register_prior
from priors.scm import SCMPrior

__all__ = ["Batch", "BNNPrior", "BOPrior", "CurvePrior", "Fixed", "GMMTaskPrior", "GPPrior", "Gamma",
           "HyperpriorWrapper", "LinearRegressionPrior", "LogNormal", "MixturePrior", "SCMPrior", "Uniform",
           "prior_from_dict", "register_prior"]

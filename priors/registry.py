"""Rebuilding priors from their `to_dict` form."""

from __future__ import annotations

from typing import Any

from priors.bnn import BNNPrior
from priors.gp import GPPrior
from priors.hyperprior_wrapper import HyperpriorWrapper
from priors.mixture import MixturePrior
from priors.scm import SCMPrior

PRIORS = {cls.__name__: cls for cls in (GPPrior, BNNPrior, MixturePrior, HyperpriorWrapper, SCMPrior)}


def register_prior(cls: type) -> type:
    """Makes a prior class rebuildable by `prior_from_dict` (usable as a decorator)."""
    PRIORS[cls.__name__] = cls
    return cls


def prior_from_dict(d: dict[str, Any]) -> Any:
    """Returns the prior described by `d` (the output of its `to_dict`)."""
    kind = d.get("type")
    if kind not in PRIORS:
        raise ValueError(f"unknown prior type {kind!r}; expected one of {sorted(PRIORS)}")
    return PRIORS[kind].from_dict(d)

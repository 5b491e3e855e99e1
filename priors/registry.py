"""Rebuilding priors from their `to_dict` form.

This module imports nothing of the package: prior classes register themselves here at
definition time (`@register_prior`), and composite priors (`MixturePrior`,
`HyperpriorWrapper`) rebuild their parts with `prior_from_dict`, so imports only flow
into this module and never form a cycle. `priors/__init__.py` imports every built-in
prior, so all of them are registered as soon as anything in `priors` is imported.
"""

from __future__ import annotations

from typing import Any

PRIORS: dict[str, type] = {}


def register_prior(cls: type) -> type:
    """Makes a prior class rebuildable by `prior_from_dict` under its class name (a decorator)."""
    PRIORS[cls.__name__] = cls
    return cls


def prior_from_dict(d: dict[str, Any]) -> Any:
    """Returns the prior described by `d` (the output of its `to_dict`, whose "type" names a registered class)."""
    kind = d.get("type")
    if kind not in PRIORS:
        raise ValueError(f"unknown prior type {kind!r}; expected one of {sorted(PRIORS)}")
    return PRIORS[kind].from_dict(d)

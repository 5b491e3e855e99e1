"""Surrogate models behind one interface (`Surrogate.fit(X, y)`, `Surrogate.predict(X) -> Predictive`)."""

from __future__ import annotations

from bo.surrogates.base import Predictive, Surrogate
from bo.surrogates.dkl import DKLSurrogate
from bo.surrogates.ensemble import EnsembleSurrogate
from bo.surrogates.gp import GPSurrogate
from bo.surrogates.hmc import HMCSurrogate
from bo.surrogates.ibnn import IBNNSurrogate
from bo.surrogates.pfn import PFNSurrogate
from bo.surrogates.predictive import BarPredictive, GaussianPredictive

SURROGATES: dict[str, type[Surrogate]] = {"gp": GPSurrogate, "pfn": PFNSurrogate}
SURROGATES.update(ibnn=IBNNSurrogate, dkl=DKLSurrogate)
SURROGATES.update(ensemble=EnsembleSurrogate, hmc=HMCSurrogate)


def make_surrogate(spec: str | Surrogate) -> Surrogate:
    """A surrogate from its name ("gp", "pfn": the shipped BO PFN) or the instance itself."""
    if isinstance(spec, Surrogate):
        return spec
    if spec not in SURROGATES:
        raise ValueError(f"unknown surrogate {spec!r}; use one of {sorted(SURROGATES)} or a bo.Surrogate instance")
    return SURROGATES[spec]()


__all__ = ["SURROGATES", "BarPredictive", "GPSurrogate", "GaussianPredictive", "PFNSurrogate", "Predictive",
           "Surrogate", "make_surrogate"]

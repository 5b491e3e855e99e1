"""Acquisition functions: expected improvement (as log-EI), probability of improvement, upper confidence bound.

Each maps a surrogate's `Predictive` at a batch of points and the best observed value to
acquisition values, larger is better, differentiable with respect to the points. The
objective is minimised (the optimiser flips the sign of a maximised one before the surrogate
sees it).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import asdict, dataclass
from typing import Any

import torch

from bo.surrogates.base import Predictive


class Acquisition(ABC):
    """An acquisition function of a predictive and the incumbent `best` (the lowest observed value)."""

    name: str

    @abstractmethod
    def __call__(self, predictive: Predictive, best: float) -> torch.Tensor:
        """Acquisition values, a `batch_shape` tensor (`predictive.batch_shape`), larger is better."""

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, **asdict(self)}


@dataclass(frozen=True)
class EI(Acquisition):
    """Expected improvement E[max(best - Y, 0)], returned as its logarithm.

    The log has the same maximiser and stays finite and informative far from the incumbent,
    where EI itself underflows to zero and its gradient vanishes (Ament et al., 2023).
    """

    name = "ei"

    def __call__(self, predictive: Predictive, best: float) -> torch.Tensor:
        return predictive.log_expected_improvement(best)


@dataclass(frozen=True)
class PI(Acquisition):
    """Probability of improvement P(Y < best)."""

    name = "pi"

    def __call__(self, predictive: Predictive, best: float) -> torch.Tensor:
        return predictive.probability_of_improvement(best)


@dataclass(frozen=True)
class UCB(Acquisition):
    """Upper confidence bound of the improvement, `-mean + sqrt(beta) * stddev` (BoTorch's `beta`)."""

    beta: float = 2.0
    name = "ucb"

    def __post_init__(self) -> None:
        if not self.beta >= 0:
            raise ValueError(f"UCB needs beta >= 0, got {self.beta}")

    def __call__(self, predictive: Predictive, best: float) -> torch.Tensor:
        return predictive.ucb(self.beta)


ACQUISITIONS: dict[str, type[Acquisition]] = {"ei": EI, "pi": PI, "ucb": UCB}


def make_acquisition(spec: str | Acquisition | dict[str, Any]) -> Acquisition:
    """An acquisition from its name ("ei", "pi", "ucb"), its `to_dict()`, or the instance itself."""
    if isinstance(spec, Acquisition):
        return spec
    options = dict(spec) if isinstance(spec, dict) else {"name": spec}
    name = options.pop("name", None)
    if name not in ACQUISITIONS:
        raise ValueError(f"unknown acquisition {name!r}; use one of {sorted(ACQUISITIONS)} or a bo.Acquisition")
    return ACQUISITIONS[name](**options)

"""Distributions over a prior's hyperparameters, drawn once per dataset.

Every hyperparameter of a prior is one of these objects; `Fixed` makes it a constant.
Each is a frozen dataclass, serialisable with `to_dict` / `hyperprior_from_dict`, and
samples reproducibly from a `torch.Generator`.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields
from typing import Any, Protocol

import torch


class Hyperprior(Protocol):
    def sample(
        self, shape: tuple[int, ...], generator: torch.Generator | None, device: torch.device | str
    ) -> torch.Tensor:
        """Returns a float tensor of `shape` with independent draws."""
        ...

    def to_dict(self) -> dict[str, Any]: ...


def _tagged(obj: object) -> dict[str, Any]:
    return {"type": type(obj).__name__, **asdict(obj)}


@dataclass(frozen=True)
class Fixed:
    """A constant hyperparameter."""

    value: float

    def sample(self, shape, generator, device):
        return torch.full(shape, float(self.value), device=device)

    def to_dict(self) -> dict[str, Any]:
        return _tagged(self)


@dataclass(frozen=True)
class LogNormal:
    """`exp(loc + scale * N(0, 1))`: median `exp(loc)`."""

    loc: float
    scale: float

    def __post_init__(self) -> None:
        if self.scale < 0:
            raise ValueError(f"LogNormal scale must be >= 0, got {self.scale}")

    def sample(self, shape, generator, device):
        z = torch.randn(shape, generator=generator, device=device)
        return torch.exp(self.loc + self.scale * z)

    def to_dict(self) -> dict[str, Any]:
        return _tagged(self)


@dataclass(frozen=True)
class Gamma:
    """Gamma with `concentration` and `rate` (mean `concentration / rate`).

    Sampled by Marsaglia and Tsang's method so that the draw is reproducible from a
    `torch.Generator` (torch's own gamma sampler takes none).
    """

    concentration: float
    rate: float

    def __post_init__(self) -> None:
        if self.concentration <= 0 or self.rate <= 0:
            raise ValueError(f"Gamma needs concentration > 0 and rate > 0, got {self}")

    def sample(self, shape, generator, device):
        a = self.concentration
        boost = a < 1.0
        alpha = a + 1.0 if boost else a
        d = alpha - 1.0 / 3.0
        c = 1.0 / math.sqrt(9.0 * d)
        out = torch.empty(shape, device=device)
        todo = torch.ones(shape, dtype=torch.bool, device=device)
        while todo.any():
            z = torch.randn(shape, generator=generator, device=device)
            u = torch.rand(shape, generator=generator, device=device)
            v = (1.0 + c * z) ** 3
            ok = (v > 0) & (torch.log(u.clamp_min(1e-30)) < 0.5 * z**2 + d - d * v + d * torch.log(v.clamp_min(1e-30)))
            take = ok & todo
            out = torch.where(take, d * v, out)
            todo = todo & ~ok
        if boost:
            u = torch.rand(shape, generator=generator, device=device)
            out = out * u.clamp_min(1e-30) ** (1.0 / a)
        return out / self.rate

    def to_dict(self) -> dict[str, Any]:
        return _tagged(self)


@dataclass(frozen=True)
class Uniform:
    """Uniform on `[low, high]`."""

    low: float
    high: float

    def __post_init__(self) -> None:
        if self.high < self.low:
            raise ValueError(f"Uniform needs low <= high, got {self}")

    def sample(self, shape, generator, device):
        return self.low + (self.high - self.low) * torch.rand(shape, generator=generator, device=device)

    def to_dict(self) -> dict[str, Any]:
        return _tagged(self)


_HYPERPRIORS = {cls.__name__: cls for cls in (Fixed, LogNormal, Gamma, Uniform)}


def hyperprior_from_dict(d: dict[str, Any] | float | int) -> Hyperprior:
    """Rebuilds a hyperprior from `to_dict` output; a bare number becomes `Fixed`."""
    if isinstance(d, (int, float)):
        return Fixed(float(d))
    d = dict(d)
    kind = d.pop("type", None)
    if kind not in _HYPERPRIORS:
        raise ValueError(f"unknown hyperprior type {kind!r}; expected one of {sorted(_HYPERPRIORS)}")
    return _HYPERPRIORS[kind](**d)


def as_hyperprior(value: Hyperprior | float | int) -> Hyperprior:
    """Returns `value` as a hyperprior, wrapping plain numbers in `Fixed`."""
    return Fixed(float(value)) if isinstance(value, (int, float)) else value


def check_choices(name: str, chosen: tuple, allowed: tuple) -> None:
    """Raises a ValueError unless `chosen` is a non-empty subset of `allowed`."""
    if not chosen or set(chosen) - set(allowed):
        raise ValueError(f"{name} must be a non-empty subset of {allowed}, got {chosen}")


def check_positive_support(name: str, hyperprior: Hyperprior, allow_zero: bool = False) -> None:
    """Raises `ValueError` if `hyperprior` can draw values outside `(0, inf)` (`[0, inf)` with `allow_zero`)."""
    low = {Fixed: lambda h: h.value, Uniform: lambda h: h.low}.get(type(hyperprior))
    if low is None:
        return  # LogNormal and Gamma are positive
    value = low(hyperprior)
    if value < 0 or (value == 0 and not allow_zero):
        bound = ">= 0" if allow_zero else "> 0"
        raise ValueError(f"{name} must be {bound}, but {hyperprior} can draw {value}")


def check_unit_support(name: str, hyperprior: Hyperprior) -> None:
    """Raises `ValueError` unless `hyperprior` is `Fixed` or `Uniform` within `[0, 1]` (a rate)."""
    if isinstance(hyperprior, Fixed):
        low, high = hyperprior.value, hyperprior.value
    elif isinstance(hyperprior, Uniform):
        low, high = hyperprior.low, hyperprior.high
    else:
        raise ValueError(f"{name} is a rate: use Fixed or Uniform within [0, 1], got {hyperprior}")
    if low < 0.0 or high > 1.0:
        raise ValueError(f"{name} must lie in [0, 1], but {hyperprior} can draw values outside")


class DataclassConfig:
    """`to_dict`/`from_dict` for frozen-dataclass priors: hyperpriors via their own `to_dict`,
    tuples as lists, and a "type" tag naming the class."""

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"type": type(self).__name__}
        for f in fields(self):
            value = getattr(self, f.name)
            if hasattr(value, "to_dict"):
                value = value.to_dict()
            elif isinstance(value, tuple):
                value = list(value)
            d[f.name] = value
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Any:
        """Rebuilds the prior from `to_dict` output: tagged hyperprior dicts and lists are restored."""
        kwargs = {}
        for key, value in d.items():
            if key == "type":
                continue
            if isinstance(value, dict) and value.get("type") in _HYPERPRIORS:
                value = hyperprior_from_dict(value)
            elif isinstance(value, list):
                value = tuple(value)
            kwargs[key] = value
        return cls(**kwargs)

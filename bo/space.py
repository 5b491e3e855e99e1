"""Search spaces: `Float`, `Int` and `Categorical` parameters, and their encoding in the unit cube.

A space is a dict of name to parameter, e.g.
``{"lr": Float(1e-5, 1e-1, log=True), "layers": Int(1, 8), "act": Categorical(["relu", "tanh"])}``;
`Space` validates one and maps parameter dicts to points of the unit cube `[0, 1]^d` and back,
one dimension per parameter. Surrogates and acquisition functions only ever see the cube.

The encoding (one coordinate `u` in `[0, 1]` per parameter):

- `Float(lo, hi)`: `u = (v - lo) / (hi - lo)`; with `log=True` the same in `log v`.
- `Int(lo, hi)`: integer `v` owns the cell `[v - 0.5, v + 0.5]` of the real interval
  `[lo - 0.5, hi + 0.5]`, which is mapped to the cube like a float (linearly, or in log space
  with `log=True`); decoding rounds to the nearest integer. Every integer's cell has the same
  width (linear), so uniform points in the cube give every integer equal mass; with `log=True`
  the mass of `v` is that of its cell in log space, `log((v + 0.5) / (v - 0.5))`, the discrete
  analogue of a log-uniform. An integer encodes to `u` of `v` itself, inside its own cell.
- `Categorical(choices)`: choice `i` of `k` is the cell centre `(i + 0.5) / k`; decoding picks
  the cell. This ordinal index, rather than a one-hot block of `k` coordinates (BoTorch's and
  HEBO's default), keeps one coordinate per parameter: a PFN surrogate takes a bounded number
  of input features (4 for the shipped `"gp"` model), and it was trained on functions of
  points spread over the cube, where one-hot inputs, which only ever sit on cube corners, are
  far out of distribution. For two choices the two encodings are the same up to scale. The
  price is an order among three or more choices that the surrogate may read as similarity;
  the acquisition optimiser does not rely on it (its local search tries every other choice,
  not only the neighbouring cells).

Floats round-trip to within rounding error (`decode(encode(p))` is `p` to about 1e-15 of the
interval's width, or relatively on a log scale); integers and choices round-trip exactly.
"""

from __future__ import annotations

import json
import math
import numbers
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from scipy.stats import qmc

from bo.checks import check_integer, is_integer

_JSON_SCALARS = (str, int, float, bool, type(None))


def _check_number(name: str, value: Any, integral: bool) -> None:
    kind = "an integer" if integral else "a finite number"
    ok = is_integer(value) if integral else isinstance(value, numbers.Real) and not isinstance(value, bool)
    if not ok or not math.isfinite(value):
        raise TypeError(f"{name} must be {kind}, got {value!r}")


def _check_bounds(kind: str, lo: Any, hi: Any, log: bool, integral: bool) -> None:
    _check_number(f"{kind} lo", lo, integral)
    _check_number(f"{kind} hi", hi, integral)
    if not lo < hi:
        raise ValueError(f"{kind}(lo={lo!r}, hi={hi!r}) needs lo < hi")
    if log and lo <= 0:
        raise ValueError(f"{kind}(lo={lo!r}, hi={hi!r}, log=True) needs lo > 0 (a log scale covers positive values)")


class _Interval:
    """A real interval `[a, b]` mapped linearly, or in log space, onto `[0, 1]` (`Float` and `Int`)."""

    log: bool

    def _interval(self) -> tuple[float, float]:
        raise NotImplementedError

    def encode(self, values: Sequence[Any]) -> np.ndarray:
        """`n` validated values as an `n` array of unit-cube coordinates."""
        return self._to_unit(np.asarray(values, dtype=np.float64))

    def _to_unit(self, x: np.ndarray) -> np.ndarray:
        a, b = self._interval()
        if self.log:
            return (np.log(x) - math.log(a)) / (math.log(b) - math.log(a))
        return (x - a) / (b - a)

    def _from_unit(self, u: np.ndarray) -> np.ndarray:
        a, b = self._interval()
        if self.log:
            return np.exp(math.log(a) + u * (math.log(b) - math.log(a)))
        return a + u * (b - a)


@dataclass(frozen=True)
class Float(_Interval):
    """A real parameter in `[lo, hi]`, searched on a linear scale or, with `log=True`, a log scale."""

    lo: float
    hi: float
    log: bool = False

    def __post_init__(self) -> None:
        _check_bounds("Float", self.lo, self.hi, self.log, integral=False)
        object.__setattr__(self, "lo", float(self.lo))
        object.__setattr__(self, "hi", float(self.hi))

    def _interval(self) -> tuple[float, float]:
        return self.lo, self.hi

    def validate(self, name: str, value: Any) -> float:
        """`value` as a float; raises if it is not a number in `[lo, hi]`."""
        _check_number(f"parameter {name!r}", value, integral=False)
        if not self.lo <= value <= self.hi:
            raise ValueError(f"parameter {name!r} = {value!r} is outside [{self.lo}, {self.hi}]")
        return float(value)

    def decode(self, u: np.ndarray) -> list[Any]:
        """An `n` array of coordinates as `n` floats, clipped to `[lo, hi]`."""
        return np.clip(self._from_unit(u), self.lo, self.hi).tolist()

    def to_dict(self) -> dict[str, Any]:
        return {"type": "float", "lo": self.lo, "hi": self.hi, "log": self.log}


@dataclass(frozen=True)
class Int(_Interval):
    """An integer parameter in `{lo, ..., hi}`, on a linear scale or, with `log=True`, a log scale."""

    lo: int
    hi: int
    log: bool = False

    def __post_init__(self) -> None:
        _check_bounds("Int", self.lo, self.hi, self.log, integral=True)
        object.__setattr__(self, "lo", int(self.lo))
        object.__setattr__(self, "hi", int(self.hi))

    def _interval(self) -> tuple[float, float]:
        return self.lo - 0.5, self.hi + 0.5

    def validate(self, name: str, value: Any) -> int:
        """`value` as an int (integral floats such as `3.0` accepted); raises if not in `{lo, ..., hi}`."""
        if isinstance(value, numbers.Real) and not isinstance(value, bool | numbers.Integral) \
                and math.isfinite(value) and float(value).is_integer():
            value = int(value)
        _check_number(f"parameter {name!r}", value, integral=True)
        if not self.lo <= value <= self.hi:
            raise ValueError(f"parameter {name!r} = {value!r} is outside [{self.lo}, {self.hi}]")
        return int(value)

    def decode(self, u: np.ndarray) -> list[Any]:
        """An `n` array of coordinates as `n` ints: the integer whose cell holds each coordinate."""
        return np.clip(np.floor(self._from_unit(u) + 0.5), self.lo, self.hi).astype(np.int64).tolist()

    def neighbours(self, value: int) -> list[int]:
        """The integers one step away from `value` inside the bounds."""
        return [v for v in (value - 1, value + 1) if self.lo <= v <= self.hi]

    def to_dict(self) -> dict[str, Any]:
        return {"type": "int", "lo": self.lo, "hi": self.hi, "log": self.log}


@dataclass(frozen=True)
class Categorical:
    """One of a list of `choices` (strings, numbers, booleans or None: JSON scalars, so a state saves as JSON)."""

    choices: tuple[Any, ...]

    def __init__(self, choices: Sequence[Any]) -> None:
        if isinstance(choices, str | bytes) or not isinstance(choices, Sequence):
            raise TypeError(f"Categorical takes a list of choices, got {choices!r}")
        choices = tuple(choices)
        if not choices:
            raise ValueError("Categorical needs at least one choice")
        for c in choices:
            if not isinstance(c, _JSON_SCALARS) or (isinstance(c, float) and not math.isfinite(c)):
                raise TypeError(f"Categorical choices must be str, int, finite float, bool or None; got {c!r}")
        object.__setattr__(self, "choices", choices)
        repeated = sorted({repr(c) for i, c in enumerate(choices) if self.index(c) != i})
        if repeated:
            raise ValueError(f"Categorical choices must be distinct; repeated: {', '.join(repeated)}")

    def index(self, value: Any) -> int | None:
        """The position of the first choice equal to `value`, or None (True is not 1 here)."""
        for i, c in enumerate(self.choices):
            if c == value and isinstance(c, bool) == isinstance(value, bool):
                return i
        return None

    def validate(self, name: str, value: Any) -> Any:
        """The choice equal to `value`; raises if there is none."""
        i = self.index(value)
        if i is None:
            raise ValueError(f"parameter {name!r} = {value!r} is not one of the choices {list(self.choices)}")
        return self.choices[i]

    def encode(self, values: Sequence[Any]) -> np.ndarray:
        """`n` validated choices as an `n` array of cell centres `(i + 0.5) / k`."""
        return (np.asarray([self.index(v) for v in values], dtype=np.float64) + 0.5) / len(self.choices)

    def decode(self, u: np.ndarray) -> list[Any]:
        """An `n` array of coordinates as the `n` choices whose cells hold them."""
        idx = np.clip(np.floor(np.asarray(u) * len(self.choices)), 0, len(self.choices) - 1).astype(np.int64)
        return [self.choices[i] for i in idx]

    def neighbours(self, value: Any) -> list[Any]:
        """Every other choice."""
        return [c for i, c in enumerate(self.choices) if i != self.index(value)]

    def to_dict(self) -> dict[str, Any]:
        return {"type": "categorical", "choices": list(self.choices)}


Parameter = Float | Int | Categorical
_TYPES = {"float": Float, "int": Int, "categorical": Categorical}


def sobol(n: int, d: int, seed: int, skip: int = 0) -> torch.Tensor:
    """Points `skip, ..., skip + n - 1` of a scrambled Sobol sequence (fixed by `seed`).

    Returns:
        An `n x d` float64 tensor in the unit cube.
    """
    engine = qmc.Sobol(d, scramble=True, seed=seed)
    if skip:
        engine.fast_forward(skip)
    with warnings.catch_warnings():  # balance is exact at powers of two; any prefix is still low-discrepancy
        warnings.simplefilter("ignore", UserWarning)
        return torch.from_numpy(engine.random(n))


class Space:
    """A validated search space: an ordered mapping of parameter name to `Float`, `Int` or `Categorical`.

    Args:
        params: A dict of name (a non-empty string) to parameter, or another `Space`.
    """

    def __init__(self, params: Mapping[str, Parameter] | Space) -> None:
        if isinstance(params, Space):
            params = params.params
        if not isinstance(params, Mapping):
            raise TypeError(f"a search space is a dict of name to bo.Float / bo.Int / bo.Categorical, got {params!r}")
        if not params:
            raise ValueError("the search space is empty; give at least one parameter")
        for name, p in params.items():
            if not isinstance(name, str) or not name:
                raise TypeError(f"parameter names must be non-empty strings, got {name!r}")
            if not isinstance(p, Float | Int | Categorical):
                raise TypeError(f"parameter {name!r} is {p!r}; use bo.Float(lo, hi), bo.Int(lo, hi) or "
                                "bo.Categorical([...])")
        self.params: dict[str, Parameter] = dict(params)

    @property
    def names(self) -> list[str]:
        return list(self.params)

    @property
    def dim(self) -> int:
        """Dimensions `d` of the unit-cube encoding (one per parameter)."""
        return len(self.params)

    @property
    def discrete(self) -> list[int]:
        """Indices of the encoded dimensions of `Int` and `Categorical` parameters."""
        return [i for i, p in enumerate(self.params.values()) if not isinstance(p, Float)]

    def validate(self, params: Mapping[str, Any]) -> dict[str, Any]:
        """`params` checked against the space, with values in canonical types (floats, ints, choices)."""
        if not isinstance(params, Mapping):
            raise TypeError(f"parameters must be a dict of name to value, got {params!r}")
        missing, unknown = set(self.params) - set(params), set(params) - set(self.params)
        if missing or unknown:
            raise ValueError(f"parameters do not match the space: missing {sorted(missing)}, unknown {sorted(unknown)}")
        return {name: p.validate(name, params[name]) for name, p in self.params.items()}

    def encode(self, params: Sequence[Mapping[str, Any]]) -> torch.Tensor:
        """Parameter dicts as points of the unit cube.

        Args:
            params: `n` parameter dicts (validated first).

        Returns:
            An `n x d` float64 tensor.
        """
        rows = [self.validate(p) for p in params]
        columns = [p.encode([r[name] for r in rows]) for name, p in self.params.items()]
        return torch.from_numpy(np.stack(columns, -1).reshape(len(rows), self.dim))

    def decode(self, X: torch.Tensor | np.ndarray) -> list[dict[str, Any]]:
        """Points of the unit cube as parameter dicts (clipped to the bounds; integers and choices by cell).

        Args:
            X: An `n x d` tensor or array in `[0, 1]^d`.
        """
        X = np.asarray(X.detach().cpu() if isinstance(X, torch.Tensor) else X, dtype=np.float64)
        if X.ndim != 2 or X.shape[1] != self.dim:
            raise ValueError(f"expected an n x {self.dim} array of unit-cube points, got shape {X.shape}")
        columns = [p.decode(X[:, i]) for i, p in enumerate(self.params.values())]
        return [dict(zip(self.names, row, strict=True)) for row in zip(*columns, strict=True)]

    def snap(self, X: torch.Tensor) -> torch.Tensor:
        """`encode(decode(X))`: discrete dimensions moved to their cell's encoded value (`n x d`, `X`'s dtype).

        Continuous coordinates are only clipped to `[0, 1]`; computed a column at a time (no parameter dicts).
        """
        out = X.detach().clamp(0.0, 1.0)
        columns = X.detach().cpu().numpy().astype(np.float64, copy=False)
        for i, p in enumerate(self.params.values()):
            if not isinstance(p, Float):
                out[:, i] = torch.from_numpy(p.encode(p.decode(columns[:, i]))).to(out)
        return out

    def neighbours(self, x: torch.Tensor) -> torch.Tensor:
        """The points one discrete move away from `x` (a `d` tensor in the unit cube).

        A move changes one `Int` by one step or one `Categorical` to any other choice; the
        other coordinates stay exactly as in `x`.

        Returns:
            An `m x d` tensor (`m = 0` for a space of floats only).
        """
        params = self.decode(x.unsqueeze(0))[0]
        moved = [{**params, name: v} for name, p in self.params.items() if not isinstance(p, Float)
                 for v in p.neighbours(params[name])]
        out = x.detach().repeat(len(moved), 1)
        if moved:
            out[:, self.discrete] = self.encode(moved)[:, self.discrete].to(out)
        return out

    def sample(self, n: int, seed: int) -> list[dict[str, Any]]:
        """`n` parameter dicts from a scrambled Sobol sequence in the unit cube (`n`, `seed`: any integers)."""
        return self.decode(sobol(check_integer("n", n, 1), self.dim, check_integer("seed", seed, 0)))

    def to_dict(self) -> dict[str, dict[str, Any]]:
        return {name: p.to_dict() for name, p in self.params.items()}

    @classmethod
    def from_dict(cls, state: Mapping[str, Mapping[str, Any]]) -> Space:
        params = {}
        for name, spec in state.items():
            spec = dict(spec)
            kind = spec.pop("type", None)
            if kind not in _TYPES:
                raise ValueError(f"parameter {name!r} has unknown type {kind!r}; expected one of {sorted(_TYPES)}")
            params[name] = _TYPES[kind](**spec)
        return cls(params)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Space) and json.dumps(self.to_dict()) == json.dumps(other.to_dict())

    def __repr__(self) -> str:
        return f"Space({self.params!r})"

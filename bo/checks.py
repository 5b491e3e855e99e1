"""Argument checks shared by the `bo` API, so that every count accepts the same integers."""

from __future__ import annotations

import numbers
from typing import Any


def is_integer(value: Any) -> bool:
    """Whether `value` is an integer: any `numbers.Integral` (`int`, `np.int64`, ...) but not a bool."""
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def check_integer(name: str, value: Any, minimum: int) -> int:
    """`value` as a Python int; raises if it is not an integer (`is_integer`) of at least `minimum`.

    Raises:
        TypeError: if `value` is not an integer (a float, a bool, a string, ...).
        ValueError: if it is below `minimum`.
    """
    kind = "a positive integer" if minimum == 1 else f"an integer >= {minimum}"
    if not is_integer(value):
        raise TypeError(f"{name} must be {kind}, got {value!r} of type {type(value).__name__}")
    if value < minimum:
        raise ValueError(f"{name} must be {kind}, got {value!r}")
    return int(value)

"""Constraints on the tabular estimators' constructor parameters, and their device.

The estimators declare `_parameter_constraints` in scikit-learn's format and check them in
`fit` (`BaseEstimator._validate_params`), which raises `InvalidParameterError` (both a
`ValueError` and a `TypeError`) naming the parameter, what it must be and what it got.
"""

from __future__ import annotations

import os
from numbers import Integral, Real
from typing import Any

import numpy as np
import torch
from sklearn.utils._param_validation import Interval

# The smallest `max_context_rows`: the shipped models were trained on contexts of 16 to 512
# rows, and fewer than 10 say little beyond the prior. The classifier also needs 2 rows per class.
MIN_CONTEXT_ROWS = 10


class NotBool(Interval):
    """An `Interval` that refuses booleans (`True` is not a count or a temperature)."""

    def is_satisfied_by(self, val: Any) -> bool:
        return not isinstance(val, (bool, np.bool_)) and super().is_satisfied_by(val)

    def __str__(self) -> str:
        return f"{super().__str__()} (not a bool)"


PARAMETER_CONSTRAINTS: dict[str, list[Any]] = {
    "n_estimators": [NotBool(Integral, 1, None, closed="left")],
    "softmax_temperature": [NotBool(Real, 0, None, closed="neither")],  # excludes 0 and inf
    "device": [str, torch.device],
    "random_state": ["random_state"],
    "model_path": [str, os.PathLike, None],
    "max_context_rows": [NotBool(Integral, MIN_CONTEXT_ROWS, None, closed="left")],
    "chunk_size": [NotBool(Integral, 1, None, closed="left")],
}

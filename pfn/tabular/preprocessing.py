"""Scale-free preprocessing of table columns and targets for the tabular estimators.

Everything here works in float64 and gives the same result for `x`, `c * x` (any positive
`c` from 1e-300 to 1e300) and `x + offset` (up to float64 rounding of `x + offset`):
`Standardisation` divides by the largest magnitude before taking the mean and standard
deviation, so nothing overflows, and `NumericTransform` standardises numeric columns with
it before any nonlinear transform, so quantile and Yeo-Johnson transforms see the same
numbers at every magnitude. Outputs are finite except where the input is NaN (missing).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
from sklearn.preprocessing import PowerTransformer, QuantileTransformer

PREPROCESSING = ("none", "quantile", "power")
CONSTANT_SPREAD = 1e-12  # a spread at most this times the largest magnitude counts as constant
Z_LIMIT = 1e6  # standardised values are clipped to [-Z_LIMIT, Z_LIMIT] (the model clips at 10 anyway)


@dataclass(frozen=True)
class Standardisation:
    """Per-column `z = (x / magnitude - mean) / std`, fitted on training rows in float64.

    Attributes (arrays of shape `F`, or 0-d for a 1-D input):
        magnitude: The largest absolute observed value (1 where there is none or it is 0).
        mean: The mean of `x / magnitude` over observed (non-NaN) values (0 where none).
        std: Their standard deviation, or 1 where the column is constant (spread at most
            `CONSTANT_SPREAD`, relative to `magnitude`).
        constant: Where the column is constant.
    """

    magnitude: np.ndarray
    mean: np.ndarray
    std: np.ndarray
    constant: np.ndarray

    @classmethod
    def fit(cls, x: np.ndarray) -> Standardisation:
        """Statistics of `x` (`n x F` or `n`; NaN is ignored)."""
        x = np.asarray(x, dtype=np.float64)
        observed = ~np.isnan(x)
        magnitude = np.where(observed, np.abs(x), 0.0).max(axis=0, initial=0.0)
        magnitude = np.where(magnitude > 0, magnitude, 1.0)
        scaled = np.where(observed, x / magnitude, 0.0)
        count = np.maximum(observed.sum(axis=0), 1)
        mean = scaled.sum(axis=0) / count
        std = np.sqrt((np.where(observed, scaled - mean, 0.0) ** 2).sum(axis=0) / count)
        constant = std <= CONSTANT_SPREAD
        return cls(magnitude, mean, np.where(constant, 1.0, std), constant)

    @property
    def loc(self) -> np.ndarray:
        """The mean in the units of `x`."""
        return self.mean * self.magnitude

    @property
    def scale(self) -> np.ndarray:
        """The standard deviation in the units of `x` (`magnitude` where constant)."""
        return self.std * self.magnitude

    def transform(self, x: np.ndarray) -> np.ndarray:
        """Standardised `x` (same shape, float64), clipped to `[-Z_LIMIT, Z_LIMIT]`; NaN stays NaN."""
        with np.errstate(over="ignore"):  # x / magnitude may overflow for rows far outside the training range
            z = (np.asarray(x, dtype=np.float64) / self.magnitude - self.mean) / self.std
        return np.clip(z, -Z_LIMIT, Z_LIMIT)


class NumericTransform:
    """One ensemble member's view of the numeric columns of a table.

    Numeric columns are standardised (`Standardisation` on the training rows), then
    transformed by `kind` (one of `PREPROCESSING`: "none"; "quantile", a quantile transform
    to a standard normal; "power", a Yeo-Johnson transform with standardised output), then
    negated if `reflect`. Other columns (ordinal category codes) pass through unchanged.

    Args:
        kind: The transform, one of `PREPROCESSING`.
        numeric: Boolean mask (`F`) of the numeric columns.
        seed: Seed of the quantile transform's subsampling (used beyond 10000 rows).
        reflect: Whether to negate the transformed numeric columns.
    """

    def __init__(self, kind: str, numeric: np.ndarray, seed: int, reflect: bool = False) -> None:
        if kind not in PREPROCESSING:
            raise ValueError(f"kind must be one of {PREPROCESSING}, got {kind!r}")
        self.kind, self.numeric, self.seed, self.reflect = kind, numeric, seed, reflect

    def fit(self, x: np.ndarray) -> NumericTransform:
        """Fits on the training rows `x` (`n x F`, float64, NaN for missing); returns self."""
        self.standardisation = Standardisation.fit(x[:, self.numeric])
        self.transformer: QuantileTransformer | PowerTransformer | None = None
        if self.kind == "quantile":
            self.transformer = QuantileTransformer(n_quantiles=max(2, min(1000, x.shape[0])),
                                                   output_distribution="normal", random_state=self.seed)
        elif self.kind == "power":
            self.transformer = PowerTransformer(method="yeo-johnson")
        if self.transformer is not None and self.numeric.any():
            with warnings.catch_warnings(), np.errstate(all="ignore"):
                warnings.simplefilter("ignore")  # constant or all-missing columns
                self.transformer.fit(self.standardisation.transform(x[:, self.numeric]))
        return self

    def transform(self, x: np.ndarray) -> np.ndarray:
        """`x` (`n x F`) with its numeric columns transformed (float64, finite where `x` is not NaN)."""
        out = np.array(x, dtype=np.float64)
        if not self.numeric.any():
            return out
        z = self.standardisation.transform(x[:, self.numeric])
        if self.transformer is not None:
            with warnings.catch_warnings(), np.errstate(all="ignore"):
                warnings.simplefilter("ignore")
                z = np.clip(self.transformer.transform(z), -Z_LIMIT, Z_LIMIT)
        out[:, self.numeric] = -z if self.reflect else z
        return out

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
from sklearn.preprocessing import QuantileTransformer

PREPROCESSING = ("none", "quantile", "power")
CONSTANT_SPREAD = 1e-12  # a spread at most this times the largest magnitude counts as constant
Z_LIMIT = 1e6  # standardised values are clipped to [-Z_LIMIT, Z_LIMIT] (the model clips at 10 anyway)
LAMBDA_BOUNDS = (-4.0, 6.0)  # the Yeo-Johnson exponents searched (finite at |z| <= Z_LIMIT in float64)
GOLDEN_STEPS = 60  # golden-section steps: the exponent to about 1e-12 of the bounds' width


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


def yeo_johnson(z: np.ndarray, lam: np.ndarray) -> np.ndarray:
    """The Yeo-Johnson transform of each column of `z` (`n x F`, NaN stays NaN) with exponents `lam` (`F`)."""
    lam = np.broadcast_to(lam, z.shape[-1:])
    up_exp, down_exp = np.where(lam == 0, 1.0, lam), np.where(lam == 2, 1.0, 2 - lam)  # 0 / 0 avoided
    with np.errstate(all="ignore"):
        log_up, log_down = np.log1p(np.maximum(z, 0)), np.log1p(np.maximum(-z, 0))
        up = np.where(lam == 0, log_up, np.expm1(lam * log_up) / up_exp)
        down = -np.where(lam == 2, log_down, np.expm1((2 - lam) * log_down) / down_exp)
    return np.where(z >= 0, up, np.where(z < 0, down, np.nan))


class YeoJohnson:
    """Per-column Yeo-Johnson transform to zero mean and unit variance, fitted on training rows.

    Each column's exponent maximises the Yeo-Johnson profile log-likelihood (as scikit-learn's
    `PowerTransformer` does), found by a golden-section search on `LAMBDA_BOUNDS` run for all
    columns at once: scikit-learn's per-column scipy search took about a third of a fit + predict
    of `PFNClassifier` on a 1000 x 20 table. Missing values (NaN) are ignored in `fit` and stay
    NaN; a column with fewer than two distinct observed values keeps exponent 1 and maps to 0.
    """

    def fit(self, z: np.ndarray) -> YeoJohnson:
        """Fits on `z` (`n x F`, float64, finite or NaN); returns self. Sets `lambdas_`, `mean_`, `std_` (`F`)."""
        observed = ~np.isnan(z)
        count = observed.sum(axis=0)
        jacobian = np.nansum(np.sign(z) * np.log1p(np.abs(z)), axis=0)
        varies = (count > 1) & (np.nanmax(np.where(observed, z, -np.inf), axis=0, initial=-np.inf)
                                > np.nanmin(np.where(observed, z, np.inf), axis=0, initial=np.inf))

        def neg_llf(lam: np.ndarray) -> np.ndarray:
            with warnings.catch_warnings(), np.errstate(all="ignore"):
                warnings.simplefilter("ignore", RuntimeWarning)  # columns without observations
                var = np.nanvar(yeo_johnson(z, lam), axis=0)
                value = 0.5 * count * np.log(var) - (lam - 1) * jacobian
            return np.where(np.isfinite(value), value, np.inf)

        lo, hi = np.full(z.shape[1], LAMBDA_BOUNDS[0]), np.full(z.shape[1], LAMBDA_BOUNDS[1])
        ratio = (np.sqrt(5.0) - 1) / 2
        a, b = hi - ratio * (hi - lo), lo + ratio * (hi - lo)
        fa, fb = neg_llf(a), neg_llf(b)
        for _ in range(GOLDEN_STEPS):
            left = fa <= fb  # the minimum lies in [lo, b]: shrink from the right, else from the left
            lo, hi = np.where(left, lo, a), np.where(left, b, hi)
            a_new, b_new = np.where(left, hi - ratio * (hi - lo), b), np.where(left, a, lo + ratio * (hi - lo))
            f_new = neg_llf(np.where(left, a_new, b_new))
            fa, fb = np.where(left, f_new, fb), np.where(left, fa, f_new)
            a, b = a_new, b_new
        self.lambdas_ = np.where(varies, (lo + hi) / 2, 1.0)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            transformed = yeo_johnson(z, self.lambdas_)
            mean, std = np.nanmean(transformed, axis=0), np.nanstd(transformed, axis=0)
        self.mean_ = np.nan_to_num(mean)  # 0 for a column without observations
        self.std_ = np.where(varies & (std > 0), std, 1.0)
        return self

    def transform(self, z: np.ndarray) -> np.ndarray:
        """`z` (`n x F`) transformed and standardised with the training rows' exponents and moments."""
        with np.errstate(all="ignore"):
            return (yeo_johnson(z, self.lambdas_) - self.mean_) / self.std_


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
        self.transformer: QuantileTransformer | YeoJohnson | None = None
        if self.kind == "quantile":
            self.transformer = QuantileTransformer(n_quantiles=max(2, min(1000, x.shape[0])),
                                                   output_distribution="normal", random_state=self.seed)
        elif self.kind == "power":
            self.transformer = YeoJohnson()
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

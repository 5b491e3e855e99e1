"""Turning user tables into the float matrices a tabular PFN reads.

`TableEncoder` accepts numpy arrays and pandas DataFrames with numeric, boolean, string,
object or categorical columns, and missing values as NaN, None or `pd.NA`. Numeric columns
become floats with NaN for a missing value: numeric and boolean dtypes (pandas' nullable
`Int64`, `Float64` and `boolean` included) and object or string columns whose present values
are all numbers, bools or numeric strings (missing values do not make a column categorical,
at fit or at predict). Every other column is ordinal-coded with the categories seen in `fit`
(sorted), so a category first seen at predict time, like a missing value, becomes NaN,
which the model reads as missing. Infinite values are rejected.
"""

from __future__ import annotations

from typing import Any

import numpy as np


def _is_dataframe(x: Any) -> bool:
    return hasattr(x, "dtypes") and hasattr(x, "columns") and hasattr(x, "iloc")


def _is_missing(value: Any) -> bool:
    if value is None:
        return True
    try:
        return bool(value != value)  # true for NaN
    except TypeError:  # pd.NA, whose truth value is ambiguous
        return True
    except ValueError:  # an array inside a cell: not a missing value
        return False


def _as_floats(column: np.ndarray) -> np.ndarray | None:
    """The column as float64 (`n`) with NaN for every missing value (NaN, None, `pd.NA`), or None
    if a present value is not a number (nor a bool or a numeric string)."""
    if column.dtype.kind == "O":
        missing = np.fromiter((_is_missing(v) for v in column), dtype=bool, count=len(column))
        column = column.copy()
        column[missing] = np.nan
    try:
        return column.astype(np.float64)
    except (TypeError, ValueError):
        return None


def _to_object_columns(x: Any) -> list[np.ndarray]:
    """The columns of `x` (2-D array-like or DataFrame) as 1-D numpy arrays of their native dtype."""
    if _is_dataframe(x):
        from pandas.api.types import is_bool_dtype, is_numeric_dtype

        columns = []
        for i in range(x.shape[1]):
            col = x.iloc[:, i]
            if is_numeric_dtype(col.dtype) or is_bool_dtype(col.dtype):
                columns.append(col.to_numpy(dtype=np.float64, na_value=np.nan))
            else:
                columns.append(col.astype(object).to_numpy())
        return columns
    arr = np.asarray(x)
    return [arr[:, i] for i in range(arr.shape[1])]


def _check_scalars(column: np.ndarray) -> None:
    """Raises TypeError unless every value of an object column is a string, number, bool or missing."""
    for v in column:
        if not (isinstance(v, (str, bytes, int, float, bool, np.generic)) or _is_missing(v)):
            raise TypeError(f"argument must be a string or a number, got {type(v).__name__} ({v!r:.40})")


class TableEncoder:
    """Encodes tables column by column; fit on the training table, then transform any table.

    Attributes (after `fit`):
        categories: per column, the sorted categories (a list) of a categorical column, or None.
    """

    def fit(self, x: Any) -> TableEncoder:
        """Learns which columns are categorical and their categories from `x` (`n x F`); returns self."""
        self.categories: list[list[Any] | None] = []
        for column in _to_object_columns(x):
            if column.dtype.kind not in "OUS" or _as_floats(column) is not None:
                self.categories.append(None)
            else:
                _check_scalars(column)
                seen = {v for v in column if not _is_missing(v)}
                self.categories.append(sorted(seen, key=lambda v: (type(v).__name__, str(v))))
        return self

    @property
    def categorical(self) -> np.ndarray:
        """Boolean mask (`F`) of the ordinal-coded columns."""
        return np.array([c is not None for c in self.categories], dtype=bool)

    def transform(self, x: Any) -> np.ndarray:
        """Float matrix (`n x F`) of `x`: NaN where a value is missing or a category unseen in `fit`.

        Raises:
            ValueError: if a numeric column holds an infinite value.
        """
        columns = _to_object_columns(x)
        out = np.empty((len(columns[0]) if columns else 0, len(columns)), dtype=np.float64)
        for j, (column, cats) in enumerate(zip(columns, self.categories, strict=True)):
            if cats is None:
                floats = _as_floats(column)
                if floats is None:
                    raise ValueError(f"column {j} was numeric in fit but holds non-numeric values now")
                out[:, j] = floats
            else:
                _check_scalars(column)
                code = {v: float(i) for i, v in enumerate(cats)}
                out[:, j] = [np.nan if _is_missing(v) else code.get(v, np.nan) for v in column]
        if np.isinf(out).any():
            raise ValueError("Input X contains infinity or a value too large for dtype('float64').")
        return out

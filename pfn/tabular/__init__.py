"""Tabular prediction with a PFN: scikit-learn estimators, the table encoding and the demo part.

`PFNClassifier` and `PFNRegressor` live in `pfn.tabular.estimators`, the encoding of user
tables (strings, categories, missing values) in `pfn.tabular.encoding`, and the tabular part
of `pfn demo` in `pfn.tabular.demo`. `import pfn` does not import this package; it is
imported on first use of `pfn.PFNClassifier` or `pfn.PFNRegressor`.
"""

from pfn.tabular.estimators import PFNClassifier, PFNRegressor

__all__ = ["PFNClassifier", "PFNRegressor"]

"""Learning curves: `LCPFN` extrapolation, early stopping of training runs, an Optuna pruner.

- `LCPFN` (`pfn.curves.model`): `predict(curves, horizon, direction, bounds)` for many curves
  of different lengths in one forward pass, returning a `CurvePredictive`
  (`pfn.curves.predictive`) in the metric's own units.
- `Metric` (`pfn.curves.normalize`): the documented monotone map of any metric to the
  prior's `[0, 1]`, higher-is-better scale.
- `EarlyStopping` and `StoppingRule` (`pfn.curves.early_stopping`): a hook for any training
  loop.
- `LCPFNPruner` (`pfn.curves.optuna`): the same rule as an Optuna pruner; needs optuna and is
  imported on first use.

`import pfn` does not import this package; `pfn.LCPFN` imports it on first use.
"""

from typing import Any

from pfn.curves.early_stopping import Decision, EarlyStopping, StoppingRule
from pfn.curves.model import LCPFN
from pfn.curves.normalize import CurveScale, Metric
from pfn.curves.predictive import CurvePredictive

__all__ = ["LCPFN", "CurvePredictive", "CurveScale", "Decision", "EarlyStopping", "LCPFNPruner", "Metric",
           "StoppingRule"]


def __getattr__(name: str) -> Any:
    # The pruner needs the optional dependency optuna: imported on first use only.
    if name == "LCPFNPruner":
        from pfn.curves.optuna import LCPFNPruner

        return LCPFNPruner
    raise AttributeError(f"module 'pfn.curves' has no attribute {name!r}")

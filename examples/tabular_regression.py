"""Regression with calibrated uncertainty and no tuning: `PFNRegressor` on the diabetes table.

Besides the mean, the regressor gives quantiles and the whole predictive distribution;
here we check how often the central 80% interval covers the held-out targets and compare
the point predictions with gradient boosting.

    python examples/tabular_regression.py           # a few seconds on 2 CPU cores
    python examples/tabular_regression.py --quick   # what CI runs
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from sklearn.datasets import load_diabetes
from sklearn.ensemble import HistGradientBoostingRegressor
from sklearn.metrics import r2_score, root_mean_squared_error
from sklearn.model_selection import train_test_split

from pfn import PFNRegressor


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer rows and one ensemble member")
    parser.add_argument("--model", default=None, help="checkpoint folder or shipped name (default tabular-reg)")
    args = parser.parse_args()
    x, y = load_diabetes(return_X_y=True, as_frame=True)
    if args.quick:
        x, y = x.iloc[::3], y.iloc[::3]
    x_train, x_test, y_train, y_test = train_test_split(x, y, test_size=0.5, random_state=0)
    print(f"diabetes: {len(x_train)} training rows, {len(x_test)} test rows, {x.shape[1]} features; "
          f"target: disease progression after one year (std {y.std():.1f})")

    start = time.perf_counter()
    model = PFNRegressor(n_estimators=1 if args.quick else 4, random_state=0, model_path=args.model)
    model.fit(x_train, y_train)
    mean, bands = model.predict(x_test), model.predict_quantiles(x_test, [0.1, 0.9])
    seconds = time.perf_counter() - start
    covered = np.mean((bands[:, 0] <= y_test) & (y_test <= bands[:, 1]))
    print(f"{'PFNRegressor':>24}: R^2 {r2_score(y_test, mean):.3f}  RMSE {root_mean_squared_error(y_test, mean):.1f}  "
          f"80% interval covers {covered:.0%} of test targets  fit+predict {seconds:.2f} s")

    start = time.perf_counter()
    hgb = HistGradientBoostingRegressor(random_state=0).fit(x_train, y_train).predict(x_test)
    seconds = time.perf_counter() - start
    print(f"{'HistGradientBoosting':>24}: R^2 {r2_score(y_test, hgb):.3f}  "
          f"RMSE {root_mean_squared_error(y_test, hgb):.1f}  fit+predict {seconds:.2f} s")
    print("first three test rows: 10% / 90% quantiles and truth")
    for (low, high), truth in zip(bands[:3], y_test.to_numpy()[:3], strict=True):
        print(f"  [{low:6.1f}, {high:6.1f}]  truth {truth:6.1f}")


if __name__ == "__main__":
    main()

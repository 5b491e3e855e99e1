"""Classify a real table in a second with no tuning: `PFNClassifier` beside gradient boosting.

The breast-cancer table (bundled with scikit-learn) as a pandas DataFrame, with a string
column and 10% missing values added to show that neither needs preprocessing. Half the
rows train, half test.

    python examples/tabular_classification.py           # a few seconds on 2 CPU cores
    python examples/tabular_classification.py --quick   # what CI runs
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from sklearn.datasets import load_breast_cancer
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.metrics import accuracy_score, log_loss, roc_auc_score
from sklearn.model_selection import train_test_split

from pfn import PFNClassifier


def messy_breast_cancer(seed: int = 0):
    """The breast-cancer features as a DataFrame with a string column and 10% missing values."""
    data = load_breast_cancer(as_frame=True)
    frame = data.frame.drop(columns="target")
    rng = np.random.default_rng(seed)
    frame["size class"] = np.where(frame["mean radius"] > frame["mean radius"].median(), "large", "small")
    numeric = frame.columns[:-1]
    frame[numeric] = frame[numeric].mask(rng.random((len(frame), len(numeric))) < 0.1)
    return frame, data.target.to_numpy()


def evaluate(name: str, model, x_train, x_test, y_train, y_test) -> None:
    start = time.perf_counter()
    proba = model.fit(x_train, y_train).predict_proba(x_test)
    seconds = time.perf_counter() - start
    print(f"{name:>24}: accuracy {accuracy_score(y_test, proba.argmax(1)):.3f}  "
          f"ROC AUC {roc_auc_score(y_test, proba[:, 1]):.4f}  log loss {log_loss(y_test, proba):.3f}  "
          f"fit+predict {seconds:.2f} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer rows and one ensemble member")
    parser.add_argument("--model", default=None, help="checkpoint folder or shipped name (default tabular-clf)")
    args = parser.parse_args()
    x, y = messy_breast_cancer()
    if args.quick:
        x, y = x.iloc[::4], y[::4]
    x_train, x_test, y_train, y_test = train_test_split(x, y, test_size=0.5, stratify=y, random_state=0)
    print(f"breast cancer: {len(x_train)} training rows, {len(x_test)} test rows, {x.shape[1]} columns "
          f"(one of them strings), {int(x.isna().sum().sum())} missing values")
    pfn_model = PFNClassifier(n_estimators=1 if args.quick else 4, random_state=0, model_path=args.model)
    evaluate("PFNClassifier", pfn_model, x_train, x_test, y_train, y_test)
    hgb_train, hgb_test = (d.assign(**{"size class": d["size class"] == "large"}) for d in (x_train, x_test))
    evaluate("HistGradientBoosting", HistGradientBoostingClassifier(random_state=0), hgb_train, hgb_test,
             y_train, y_test)


if __name__ == "__main__":
    main()

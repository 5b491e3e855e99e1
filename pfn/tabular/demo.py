"""The tabular part of `pfn demo`: the shipped classifier on a real table beside baselines."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np

from pfn.checkpoint import read_manifest


def run_tabular_demo(model_path: str | None = None, seed: int = 0) -> dict[str, dict[str, float]]:
    """Classifies the wine table (bundled with scikit-learn; 178 rows, 13 features, 3 classes) on a
    stratified 50/50 split with `PFNClassifier`, logistic regression and gradient boosting; prints a table.

    Returns:
        Per method, its `accuracy`, `roc_auc` (one-vs-rest), `log_loss` and `seconds` (fit + predict).
    """
    from sklearn.datasets import load_wine
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import accuracy_score, log_loss, roc_auc_score
    from sklearn.model_selection import train_test_split
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from pfn.tabular import PFNClassifier

    x, y = load_wine(return_X_y=True)
    x_train, x_test, y_train, y_test = train_test_split(x, y, test_size=0.5, stratify=y, random_state=seed)
    methods: dict[str, Any] = {
        "PFNClassifier": PFNClassifier(model_path=model_path, random_state=seed),
        "logistic regression": make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000)),
        "HistGradientBoosting": HistGradientBoostingClassifier(random_state=seed),
    }
    print(f"\nWine: {len(x_train)} training rows, {len(x_test)} test rows, {x.shape[1]} features, 3 classes")
    print(f"{'method':>22} | {'accuracy':>8} {'ROC AUC':>8} {'log loss':>8} | {'fit+predict':>11}")
    results = {}
    for name, model in methods.items():
        start = time.perf_counter()
        proba = model.fit(x_train, y_train).predict_proba(x_test)
        seconds = time.perf_counter() - start
        results[name] = {"accuracy": accuracy_score(y_test, np.argmax(proba, 1)),
                         "roc_auc": roc_auc_score(y_test, proba, multi_class="ovr"),
                         "log_loss": log_loss(y_test, proba), "seconds": seconds}
        r = results[name]
        print(f"{name:>22} | {r['accuracy']:8.3f} {r['roc_auc']:8.4f} {r['log_loss']:8.3f} | {seconds * 1000:9.0f} ms")
    return results


def run_tabular_demo_part(out_dir: Path) -> dict[str, dict[str, float]]:
    """The `pfn demo` part (entry point `pfn.demos`): `run_tabular_demo` with the shipped classifier; it writes
    no plot into `out_dir`. Returns its results, or nothing when `pretrained/tabular-clf` is not shipped (the
    part says so and is skipped)."""
    if "tabular-clf" not in read_manifest()["models"]:
        print("\nTables: skipped, pretrained/tabular-clf is not shipped")
        return {}
    return run_tabular_demo()

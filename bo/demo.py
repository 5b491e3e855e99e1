"""The Bayesian-optimisation part of `pfn demo`: PFN-BO against random search on a real tuning task."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

import bo

SPACE = {"learning_rate": bo.Float(1e-3, 1.0, log=True), "max_leaf_nodes": bo.Int(2, 64, log=True),
         "min_samples_leaf": bo.Int(1, 40), "l2_regularization": bo.Float(1e-6, 10.0, log=True)}


def cv_error(params: dict) -> float:
    """3-fold cross-validated error of gradient boosting (50 iterations) on the bundled breast-cancer table."""
    from sklearn.datasets import load_breast_cancer
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.model_selection import StratifiedKFold, cross_val_score

    x, y = load_breast_cancer(return_X_y=True)
    model = HistGradientBoostingClassifier(max_iter=50, random_state=0, **params)
    return 1.0 - float(np.mean(cross_val_score(model, x, y, cv=StratifiedKFold(3, shuffle=True, random_state=0))))


def run_bo_demo(out_dir: Path, n_trials: int = 25, seed: int = 0,
                surrogate: str | bo.Surrogate = "pfn") -> dict[str, float]:
    """Tunes gradient boosting with PFN-BO and with random search (same budget), prints both, plots convergence.

    `surrogate` is the shipped BO PFN by default (any `bo` surrogate works, e.g. a `PFNSurrogate` of a run folder).

    Returns:
        `best_pfn` and `best_random` (best CV errors), `seconds_per_suggestion` (PFN-BO's mean
        time per suggestion, objective excluded); empty when `surrogate="pfn"` and the BO PFN
        is not shipped (the demo says so and is skipped).
    """
    from pfn.checkpoint import read_manifest

    if isinstance(surrogate, str) and surrogate == "pfn" and "bo" not in read_manifest()["models"]:
        print("\nBayesian optimisation: skipped, pretrained/bo is not shipped "
              "(pass surrogate=bo.PFNSurrogate(model=CHECKPOINT) to run it with a trained one)")
        return {}
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    start = time.perf_counter()
    result = bo.optimize(cv_error, SPACE, n_trials=n_trials, surrogate=surrogate, seed=seed, progress=False)
    seconds = time.perf_counter() - start - result.history["duration"].sum().total_seconds()
    random_values = [cv_error(p) for p in bo.Space(SPACE).sample(n_trials, seed)]
    pfn_curve = np.minimum.accumulate(result.history["value"].to_numpy())
    random_curve = np.minimum.accumulate(random_values)
    print(f"\nBayesian optimisation: 4 hyperparameters of gradient boosting on breast cancer (3-fold CV error), "
          f"{n_trials} trials each")
    print(f"{'trials':>6} | {'PFN-BO best':>11} | {'random best':>11}")
    for k in (5, 10, 15, 20, n_trials):
        if k <= n_trials:
            print(f"{k:6d} | {pfn_curve[k - 1]:11.4f} | {random_curve[k - 1]:11.4f}")
    print(f"PFN-BO best: {result.best_params}; {seconds / n_trials * 1000:.0f} ms per suggestion")
    out_dir.mkdir(parents=True, exist_ok=True)
    fig, ax = plt.subplots(figsize=(6, 3.5))
    steps = np.arange(1, n_trials + 1)
    ax.step(steps, pfn_curve, where="post", label="PFN-BO")
    ax.step(steps, random_curve, where="post", label="random search")
    ax.set_xlabel("trial")
    ax.set_ylabel("best CV error so far")
    ax.legend()
    fig.tight_layout()
    path = out_dir / "demo_bo.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    print(f"plot written to {path}")
    return {"best_pfn": float(pfn_curve[-1]), "best_random": float(random_curve[-1]),
            "seconds_per_suggestion": seconds / n_trials}

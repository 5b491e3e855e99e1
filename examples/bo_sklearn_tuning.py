"""Tune a scikit-learn model with Bayesian optimisation: `bo.optimize` over a mixed space.

An SVM on the breast-cancer table (bundled with scikit-learn), its 3-fold cross-validated
error minimised over a log-scaled `C` and `gamma` and a categorical kernel. The surrogate is
the shipped BO PFN (`pretrained/bo`), or the GP where that model is not shipped.

    python examples/bo_sklearn_tuning.py            # 40 trials
    python examples/bo_sklearn_tuning.py --quick    # 10 trials (what CI runs)
    python examples/bo_sklearn_tuning.py --pfn-model runs/bo/checkpoint   # a PFN not (yet) shipped
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from sklearn.datasets import load_breast_cancer
from sklearn.model_selection import StratifiedKFold, cross_val_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import SVC

import bo
from pfn.checkpoint import read_manifest

X, Y = load_breast_cancer(return_X_y=True)
FOLDS = StratifiedKFold(3, shuffle=True, random_state=0)


def cv_error(params: dict) -> float:
    """3-fold cross-validated error of an SVM with `params` (C, gamma, kernel)."""
    model = make_pipeline(StandardScaler(), SVC(**params))
    return 1.0 - float(np.mean(cross_val_score(model, X, Y, cv=FOLDS)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="10 trials")
    parser.add_argument("--out", default="example_output", help="folder for the convergence plot")
    parser.add_argument("--pfn-model", help="checkpoint folder of a BO PFN to use instead of the shipped one")
    parser.add_argument("--surrogate", choices=["pfn", "gp"], default="pfn")
    args = parser.parse_args()
    surrogate: str | bo.Surrogate = args.surrogate
    if args.surrogate == "pfn" and args.pfn_model:
        surrogate = bo.PFNSurrogate(model=args.pfn_model)
        print(f"surrogate: PFN from {args.pfn_model}")
    elif args.surrogate == "pfn" and "bo" not in read_manifest()["models"]:
        surrogate = "gp"
        print("surrogate: gp (pretrained/bo is not shipped; pass --pfn-model to use a trained checkpoint)")
    else:
        print(f"surrogate: {surrogate}")
    space = {"C": bo.Float(1e-3, 1e3, log=True), "gamma": bo.Float(1e-5, 1e1, log=True),
             "kernel": bo.Categorical(["rbf", "sigmoid", "poly"])}
    result = bo.optimize(cv_error, space, n_trials=10 if args.quick else 40, surrogate=surrogate, seed=0,
                         progress=False)
    print(f"best CV error {result.best_value:.4f} with {result.best_params}")
    print(result.history[["params_C", "params_gamma", "params_kernel", "value"]].tail(5).to_string())
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    result.plot_convergence().savefig(out / "bo_convergence.png", dpi=100)
    print(f"convergence plot: {out / 'bo_convergence.png'}")


if __name__ == "__main__":
    main()

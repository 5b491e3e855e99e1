"""Pruning an Optuna search with LC-PFN: `pfn.curves.optuna.LCPFNPruner`.

Optuna tunes a scikit-learn MLP on the breast-cancer table; each trial trains with
`partial_fit`, one pass over the training rows per epoch, and reports its validation log-loss
after every epoch (`trial.report`). The pruner stops a trial when LC-PFN gives it less than a
5% chance of ending with a lower final loss than the best completed trial. Needs optuna
(`pip install optuna`).

    python examples/optuna_pruner.py                          # the shipped model lcpfn
    python examples/optuna_pruner.py --quick --model runs/lcpfn
"""

from __future__ import annotations

import argparse
import warnings

import numpy as np
import optuna
from sklearn.datasets import load_breast_cancer
from sklearn.exceptions import ConvergenceWarning
from sklearn.metrics import log_loss
from sklearn.model_selection import train_test_split
from sklearn.neural_network import MLPClassifier
from sklearn.preprocessing import StandardScaler

from pfn.curves.optuna import LCPFNPruner


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="eight trials of 15 epochs (what CI runs)")
    parser.add_argument("--model", default="lcpfn", help="checkpoint folder or shipped name (default lcpfn)")
    args = parser.parse_args()
    warnings.filterwarnings("ignore", category=ConvergenceWarning)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    x, y = load_breast_cancer(return_X_y=True)
    x_train, x_val, y_train, y_val = train_test_split(x, y, test_size=0.3, stratify=y, random_state=0)
    scaler = StandardScaler().fit(x_train)
    x_train, x_val = scaler.transform(x_train), scaler.transform(x_val)
    epochs, n_trials = (15, 8) if args.quick else (50, 30)

    def objective(trial: optuna.Trial) -> float:
        model = MLPClassifier(hidden_layer_sizes=(trial.suggest_categorical("width", [8, 32, 128]),),
                              learning_rate_init=trial.suggest_float("lr", 1e-5, 1e-1, log=True),
                              alpha=trial.suggest_float("alpha", 1e-6, 1e-1, log=True), solver="sgd",
                              momentum=0.9, batch_size=32, random_state=trial.number)
        for step in range(epochs):  # step s is epoch s + 1
            model.partial_fit(x_train, y_train, classes=np.unique(y))
            loss = log_loss(y_val, model.predict_proba(x_val))
            trial.report(loss, step)
            if trial.should_prune():
                raise optuna.TrialPruned()
        return loss

    pruner = LCPFNPruner(horizon=epochs, bounds=(0.0, None), model=args.model)
    study = optuna.create_study(direction="minimize", pruner=pruner, sampler=optuna.samplers.TPESampler(seed=0))
    study.optimize(objective, n_trials=n_trials)

    states = [t.state for t in study.trials]
    used = sum(len(t.intermediate_values) for t in study.trials)
    print(f"{states.count(optuna.trial.TrialState.COMPLETE)} trials completed, "
          f"{states.count(optuna.trial.TrialState.PRUNED)} pruned; {used} of {n_trials * epochs} epochs trained")
    print(f"best validation log-loss {study.best_value:.4f} with {study.best_params}")
    for decision in [d for d in pruner.history if d.stop][:3]:
        print(f"  trial {decision.run} pruned: {decision.reason}")


if __name__ == "__main__":
    main()

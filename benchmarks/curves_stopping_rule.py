"""The early-stopping rule's default wait, chosen on replayed TPE studies (issue 20).

A choosing set of 12-trial Optuna TPE studies over `(top, lr)` (seeds 100-105; horizons 20 and 50;
four curve shapes: saturating `top (1 - exp(-lr e))`, power law, a logistic that rises around 30%
of the horizon, and the saturating one with N(0, 0.01) noise), clipped to (0.001, 0.999) and
maximised with bounds (0, 1). None of them is the study pinned in
`tests/test_curves_early_stopping.py` (`top (1 - exp(-2 lr e))`, seed 2). The trials' parameters
come from a TPE study without pruning, so every rule sees the same trials.

Each study's trials are replayed in order by `StoppingRule`'s logic for every `min_epochs`
fraction and `min_prob` of the grid: a run stops at the first epoch at or after `min_epochs` where
`P(final value better than the best completed final) < min_prob`. Every prefix's predictive comes
from one batched `LCPFN.predict` per study. Printed per rule: the share of epochs run, the mean and
largest regret (best final over all trials minus the best completed one) and in how many studies
the eventual best trial was stopped; written to `benchmarks/results/curves_stopping_rule.{json,md}`.

    python benchmarks/curves_stopping_rule.py            # about 20 minutes on 2 busy cores
"""

from __future__ import annotations

import argparse
from collections.abc import Callable

import numpy as np
import optuna
from results_io import describe_machine, machine_record, write_results  # sibling module (run as a script)

from pfn.curves import LCPFN, CurvePredictive

FRACTIONS = (0.1, 0.2, 0.3, 0.4, 0.5)
MIN_PROBS = (0.05, 0.02, 0.01, 0.005, 0.002, 0.001)


def shapes(horizon: int) -> dict[str, Callable[[float, float, np.ndarray], np.ndarray]]:
    """Curve families `f(top, lr, epochs)`; `exp_noisy` gets its noise in `study_curves`."""
    return {"exp": lambda top, lr, e: top * (1 - np.exp(-lr * e)),
            "pow": lambda top, lr, e: top - (top - 0.1) * e ** (-3 * lr),
            "logistic": lambda top, lr, e: top / (1 + np.exp(-lr * (e - 0.3 * horizon))),
            "exp_noisy": lambda top, lr, e: top * (1 - np.exp(-lr * e))}


def tpe_params(seed: int, n_trials: int = 12) -> list[tuple[float, float]]:
    """`(top, lr)` of the trials of a TPE study (no pruning) on a smooth stand-in objective."""
    def objective(trial: optuna.Trial) -> float:
        top = trial.suggest_float("top", 0.4, 1.0)
        return top * (1 - np.exp(-10 * trial.suggest_float("lr", 0.005, 2.0, log=True)))

    study = optuna.create_study(direction="maximize", sampler=optuna.samplers.TPESampler(seed=seed))
    study.optimize(objective, n_trials=n_trials)
    return [(t.params["top"], t.params["lr"]) for t in study.trials]


def study_curves(shape: str, seed: int, horizon: int) -> np.ndarray:
    """The `trials x horizon` curves of one study."""
    epochs = np.arange(1, horizon + 1)
    curves = np.array([shapes(horizon)[shape](top, lr, epochs) for top, lr in tpe_params(seed)])
    if shape == "exp_noisy":
        curves = curves + np.random.default_rng(seed).normal(0, 0.01, curves.shape)
    return np.clip(curves, 0.001, 0.999)


def replay(curves: np.ndarray, finals: CurvePredictive, min_epochs: int, min_prob: float) -> tuple[float, float, bool]:
    """One study replayed by the rule: the share of epochs run, the regret, whether the best trial was stopped.

    `finals[i * (H - 1) + e - 1]` is the predictive at the horizon after epoch `e` of trial `i`.
    """
    n, horizon = curves.shape
    best, used, stopped = None, 0, []
    for i in range(n):
        stop_at = next((e for e in range(min_epochs, horizon) if best is not None
                        and float(finals[i * (horizon - 1) + e - 1].prob_above(best)) < min_prob), None)
        used += horizon if stop_at is None else stop_at
        if stop_at is None:
            best = curves[i, -1] if best is None else max(best, curves[i, -1])
        stopped.append(stop_at is not None)
    return used / curves.size, float(curves[:, -1].max() - best), stopped[int(np.argmax(curves[:, -1]))]


def report(rows: list[dict[str, float]], machine: dict) -> str:
    """The markdown table of `rows` (one per rule)."""
    lines = ["# The stopping rule's default wait: replayed TPE studies", "", __doc__.split("\n\n")[1], "",
             f"Machine: {describe_machine(machine)}.", "",
             "| min_epochs (share of horizon) | min_prob | epochs run | mean regret | max regret "
             "| best trial stopped |",
             "|---|---|---|---|---|---|"]
    lines += [f"| {r['fraction']:.0%} | {r['min_prob']} | {r['epochs_run']:.1%} | {r['mean_regret']:.4f} | "
              f"{r['max_regret']:.3f} | {r['best_stopped']} of {r['studies']} |" for r in rows]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=6, help="studies per horizon and shape (seeds 100, 101, ...)")
    args = parser.parse_args(argv)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    model = LCPFN()
    results: dict[tuple[float, float], list[tuple[float, float, bool]]] = {}
    for horizon in (20, 50):
        for shape in shapes(horizon):
            for seed in range(100, 100 + args.seeds):
                curves = study_curves(shape, seed, horizon)
                prefixes = [curves[i, :e] for i in range(len(curves)) for e in range(1, horizon)]
                finals = model.predict(prefixes, horizon, "maximize", (0, 1))[:, -1]
                for frac in FRACTIONS:
                    for min_prob in MIN_PROBS:
                        results.setdefault((frac, min_prob), []).append(
                            replay(curves, finals, max(1, round(frac * horizon)), min_prob))
                print(f"horizon {horizon}, {shape}, seed {seed} replayed", flush=True)
    rows = []
    for (frac, min_prob), runs in sorted(results.items()):
        used, regret, best_stopped = (np.array(c) for c in zip(*runs, strict=True))
        rows.append({"fraction": frac, "min_prob": min_prob, "epochs_run": float(used.mean()),
                     "mean_regret": float(regret.mean()), "max_regret": float(regret.max()),
                     "best_stopped": int(best_stopped.sum()), "studies": len(runs)})
    machine = machine_record(optuna=optuna.__version__)
    text = report(rows, machine)
    print(text)
    write_results("curves_stopping_rule", {"machine": machine, "seeds": args.seeds, "rules": rows}, text)


if __name__ == "__main__":
    main()

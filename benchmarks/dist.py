"""The Distribution Transformer against exact inference, NUTS and the Kalman filter.

Held-out tasks come from the model's own prior (`priors.GMMTaskPrior`, the checkpoint's config):
a Gaussian-mixture prior over a 1- or 2-dimensional latent and up to `max_context` scalar
linear-Gaussian measurements (uniform per task).

- KL(predicted || exact) per task by Monte Carlo (draws from the prediction), beside KL(prior ||
  exact) (what "no update" costs) and the forward KL(exact || predicted) (whose mean over tasks
  the training loss minimises, up to a constant), over the task's own latent dimensions.
- Log-likelihood of the true latent under the predicted posterior, the exact posterior and the
  prior; on the first tasks also under NumPyro NUTS (the same mixture prior through
  `MixtureSameFamily`, a Gaussian KDE of its draws), with the wall time of each method per task.
- Sequential tracking: a linear-Gaussian state-space model `z_t = F z_{t-1} + w`, `y_t = H z_t + v`;
  the model chains posterior -> predict step (`GMM.linear_step`) -> next prior, against the Kalman
  filter (exact; and the exact Gaussian-sum filter when the initial belief is a mixture). Score:
  NLL of the true states per step.
- A plot of predicted against exact posterior ellipses on a few 2-D tasks.

Tasks, scores and the tracking task are `pfn.distribution_transformer.evaluation`, shared with `pfn demo` and the tests.

Writes `benchmarks/results/dist.json`, `.md` and `dist_ellipses.png` (`dist_quick.*` and `dist_ellipses_quick.png`
with `--quick`, which git ignores).

    PYTHONPATH=. python benchmarks/dist.py                        # the shipped model "dist-gmm"
    PYTHONPATH=. python benchmarks/dist.py --model runs/dist-gmm --quick
"""

from __future__ import annotations

import argparse
import math
import time
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import matplotlib
import numpy as np
import numpyro
import numpyro.distributions as npd
import torch
from numpyro.infer import MCMC, NUTS
from results_io import RESULTS_DIR, machine_record, write_results  # sibling module (run as a script)
from scipy.stats import gaussian_kde

import pfn
from pfn.distribution_transformer import DistributionTransformer
from pfn.distribution_transformer.evaluation import (
    CHUNK,
    draw_tasks,
    mixture_of_rows,
    predict_rows,
    score_tasks,
    tracking,
)
from pfn.distribution_transformer.plot import draw_ellipses
from priors import prior_from_dict
from priors.batch import Batch
from priors.gmm import batch_posterior, split_component_rows

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (after choosing the backend)

TARGET_KL, TARGET_TRACKING_GAP, TARGET_SPEEDUP = 0.05, 0.05, 1000.0


# --- NUTS ------------------------------------------------------------------------------------------
def numpyro_model(log_w: jax.Array, means: jax.Array, covs: jax.Array, a: jax.Array, noise_std: jax.Array,
                  values: jax.Array, mask: jax.Array) -> None:
    """The task as a NumPyro model: z from the mixture prior, the real measurements given z."""
    components = npd.MultivariateNormal(means, covariance_matrix=covs)
    z = numpyro.sample("z", npd.MixtureSameFamily(npd.Categorical(logits=log_w), components))
    with numpyro.handlers.mask(mask=mask):
        numpyro.sample("y", npd.Normal(a @ z, noise_std), obs=values)


def run_nuts(batch: Batch, n_tasks: int, warmup: int, samples: int, seed: int) -> dict[str, list[float]]:
    """NUTS on the first `n_tasks` tasks (one compiled kernel: every task has the batch's padded shapes).

    Returns:
        Per task: the NLL of the true latent under a Gaussian KDE of the draws (over the task's own
        dimensions), the wall time (the first includes JAX compilation) and the divergences.
    """
    c, k, dm = batch.n_context, batch.meta["means"].shape[-2], batch.meta["means"].shape[-1]
    mcmc = MCMC(NUTS(numpyro_model), num_warmup=warmup, num_samples=samples, progress_bar=False,
                jit_model_args=True)
    out: dict[str, list[float]] = {"nll": [], "seconds": [], "divergences": []}
    for i in range(n_tasks):
        w, m, tril = split_component_rows(batch.x[i, c:c + k].double(), dm)
        rows = batch.x[i, :c].double()
        args = [jnp.asarray(t.numpy()) for t in (w.clamp_min(1e-30).log(), m, tril @ tril.mT, rows[:, :dm],
                                                   rows[:, dm], batch.y[i, :c].double(), batch.context_mask[i])]
        start = time.perf_counter()
        mcmc.run(jax.random.PRNGKey(seed + i), *args, extra_fields=("diverging",))
        draws = np.asarray(mcmc.get_samples()["z"])
        out["seconds"].append(time.perf_counter() - start)
        d = int(batch.meta["latent_dim"][i])
        kde = gaussian_kde(draws[:, :d].T)
        out["nll"].append(-float(kde.logpdf(batch.meta["latent"][i, :d].double().numpy()[:, None])[0]))
        out["divergences"].append(int(np.asarray(mcmc.get_extra_fields()["diverging"]).sum()))
    return out


def model_seconds_per_task(model: DistributionTransformer, batch: Batch, n_tasks: int) -> tuple[list[float], float]:
    """Wall time of one forward pass per task (batch of one, as a user's single `posterior` call), after a
    warm-up; and the amortised time per task of the whole batch in chunks of `CHUNK` tasks."""
    c = batch.n_context
    times = []
    with torch.no_grad():
        model(batch.x[:1], batch.y[:1, :c], batch.context_mask[:1])
        for i in range(n_tasks):
            start = time.perf_counter()
            model(batch.x[i:i + 1], batch.y[i:i + 1, :c], batch.context_mask[i:i + 1])
            times.append(time.perf_counter() - start)
    start = time.perf_counter()
    predict_rows(model, batch)
    return times, (time.perf_counter() - start) / batch.batch_size


# --- plot ------------------------------------------------------------------------------------------
def plot_ellipses(model: DistributionTransformer, batch: Batch, path: Path, n_panels: int = 6) -> None:
    """Predicted (solid) against exact (dashed) 2-sigma posterior ellipses, prior (grey) and the true latent, on
    2-D tasks, preferring tasks whose exact posterior keeps more than one component."""
    c, k = batch.n_context, batch.meta["means"].shape[-2]
    w, m, s = batch_posterior(batch)
    predicted = mixture_of_rows(predict_rows(model, batch), 2, log_weights=True)
    prior = mixture_of_rows(batch.x[:, c:c + k], 2, log_weights=False)
    two_d = (batch.meta["latent_dim"] == 2).nonzero().flatten().tolist()
    order = sorted(two_d, key=lambda i: -int((w[i] > 0.05).sum()))[:n_panels]
    fig, axes = plt.subplots(2, (n_panels + 1) // 2, figsize=(4 * ((n_panels + 1) // 2), 8))
    for ax, i in zip(axes.flat, order, strict=False):
        draw_ellipses(ax, prior.weights[i], prior.means[i], prior.covs[i], "0.75", min_weight=0.0, lw=1.0)
        draw_ellipses(ax, w[i], m[i], s[i], "k", "--")
        draw_ellipses(ax, predicted.weights[i], predicted.means[i], predicted.covs[i], "C3")
        ax.plot(*batch.meta["latent"][i].numpy(), "x", color="C0", ms=8)
        ax.set_title(f"task {i}: {int(batch.context_sizes[i])} measurements", fontsize=9)
        ax.set_aspect("equal", "datalim")
    fig.suptitle("2-sigma ellipses: exact posterior (black dashed), predicted (red), prior (grey); "
                 "line width ~ weight; x = true latent", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


# --- report ----------------------------------------------------------------------------------------
def summary(values: torch.Tensor) -> dict[str, float]:
    v = values.double()
    return {"mean": float(v.mean()), "se": float(v.std() / math.sqrt(len(v))) if len(v) > 1 else float("nan"),
            "median": float(v.median()), "p90": float(v.quantile(0.9))}


def build_record(scores: dict[str, torch.Tensor], nuts: dict[str, list[float]], model_s: list[float],
                 batched_s: float, track: dict[str, dict[str, float]], n_nuts: int) -> dict[str, Any]:
    """Summaries of the scores (overall and by measurement count), NUTS, timing and tracking, and the targets."""
    n = scores["n_measurements"]
    bins = [(1, 10), (11, 40), (41, int(n.max()))]
    by_bin = [{"measurements": f"{lo}-{hi}", "tasks": int(((n >= lo) & (n <= hi)).sum()),
               **{key: float(scores[key][(n >= lo) & (n <= hi)].mean()) for key in ("kl_predicted", "kl_prior")}}
              for lo, hi in bins if ((n >= lo) & (n <= hi)).any()]
    overall = {key: summary(value) for key, value in scores.items() if key.startswith(("kl_", "nll_"))}
    nuts_subset = {key: float(scores[key][:n_nuts].mean()) for key in ("nll_predicted", "nll_exact", "nll_prior")}
    nuts_subset["nll_nuts"] = float(np.mean(nuts["nll"]))
    nuts_all_s, nuts_warm_s = float(np.mean(nuts["seconds"])), float(np.mean(nuts["seconds"][1:] or nuts["seconds"]))
    timing = {"model_s_per_task": float(np.median(model_s)), "nuts_s_per_task": nuts_all_s,
              "nuts_s_per_task_excl_compile": nuts_warm_s, "speedup": nuts_all_s / float(np.median(model_s)),
              "speedup_excl_compile": nuts_warm_s / float(np.median(model_s)),
              "model_s_per_task_batched": batched_s, "speedup_batched_excl_compile": nuts_warm_s / batched_s}
    gaps = {name: (t["model"] - t["exact"]) / abs(t["exact"]) for name, t in track.items()}
    targets = [
        {"target": f"mean KL(predicted || exact) < {TARGET_KL} nats",
         "value": f"{overall['kl_predicted']['mean']:.3f} (median {overall['kl_predicted']['median']:.3f}); "
                  f"prior {overall['kl_prior']['mean']:.3f} (median {overall['kl_prior']['median']:.3f})",
         "met": overall["kl_predicted"]["mean"] < TARGET_KL},
        *({"target": f"tracking ({name}): NLL within {100 * TARGET_TRACKING_GAP:.0f}% of the exact filter",
           "value": f"{track[name]['model']:.3f} vs {track[name]['exact']:.3f} ({100 * gap:+.1f}%)",
           "met": abs(gap) <= TARGET_TRACKING_GAP} for name, gap in gaps.items()),
        {"target": f">= {TARGET_SPEEDUP:.0f}x faster than NUTS per task",
         "value": f"{timing['speedup_excl_compile']:.0f}x excl. JAX compile ({timing['speedup']:.0f}x incl.; "
                  f"{timing['speedup_batched_excl_compile']:.0f}x with tasks batched {CHUNK} per pass)",
         "met": timing["speedup_excl_compile"] >= TARGET_SPEEDUP},
    ]
    return {"overall": overall, "by_measurements": by_bin, "nuts_subset": nuts_subset, "timing": timing,
            "tracking": track, "targets": targets, "nuts_divergences": int(sum(nuts["divergences"]))}


def markdown_report(record: dict[str, Any], settings: dict[str, Any], plot: str) -> str:
    o, ns, tm = record["overall"], record["nuts_subset"], record["timing"]
    lines = [
        "# Distribution Transformer vs exact inference, NUTS and the Kalman filter", "",
        f"{settings['tasks']} held-out tasks of the model's prior (seed {settings['seed']}); measurement counts "
        f"uniform in 1..{settings['max_context']}. KL by Monte Carlo ({settings['mc_draws']} draws per task), over "
        "each task's own latent dimensions; NLL of the true latent in nats (lower is better).", "",
        "| quantity | mean (± s.e.) | median | 90th percentile |", "|---|---|---|---|",
    ]
    names = {"kl_predicted": "KL(predicted || exact)", "kl_prior": "KL(prior || exact)",
             "kl_exact_predicted": "KL(exact || predicted), what training minimises",
             "nll_predicted": "NLL, predicted posterior", "nll_exact": "NLL, exact posterior",
             "nll_prior": "NLL, prior"}
    lines += [f"| {label} | {o[key]['mean']:.3f} ± {o[key]['se']:.3f} | {o[key]['median']:.3f} | {o[key]['p90']:.3f} |"
              for key, label in names.items()]
    lines += ["", "| measurements | tasks | mean KL(predicted \\|\\| exact) | mean KL(prior \\|\\| exact) |",
              "|---|---|---|---|"]
    lines += [f"| {b['measurements']} | {b['tasks']} | {b['kl_predicted']:.3f} | {b['kl_prior']:.3f} |"
              for b in record["by_measurements"]]
    lines += ["", f"NUTS subset (first {settings['nuts_tasks']} tasks): mean NLL predicted {ns['nll_predicted']:.3f}, "
              f"exact {ns['nll_exact']:.3f}, NUTS {ns['nll_nuts']:.3f}, prior {ns['nll_prior']:.3f}; "
              f"{record['nuts_divergences']} divergent NUTS transitions.", "",
              f"Time per task: model {1000 * tm['model_s_per_task']:.2f} ms (median, one task per forward pass), "
              f"NUTS {tm['nuts_s_per_task']:.2f} s ({tm['nuts_s_per_task_excl_compile']:.2f} s excl. the first "
              f"task's JAX compile): {tm['speedup_excl_compile']:.0f}x ({tm['speedup']:.0f}x incl. compile). "
              f"Batched ({CHUNK} tasks per forward pass) the model takes {1000 * tm['model_s_per_task_batched']:.3f} "
              f"ms per task: {tm['speedup_batched_excl_compile']:.0f}x.", "",
              "| tracking | model NLL | exact filter NLL | no update NLL |", "|---|---|---|---|"]
    lines += [f"| {name} | {t['model']:.3f} | {t['exact']:.3f} | {t['no update']:.3f} |"
              for name, t in record["tracking"].items()]
    lines += ["", "| target | value | met |", "|---|---|---|"]
    lines += [f"| {t['target']} | {t['value']} | {'yes' if t['met'] else 'NO'} |" for t in record["targets"]]
    lines += ["", f"![posterior ellipses]({plot})", "", "## Settings", ""]
    lines += [f"- {key}: {value}" for key, value in settings.items()]
    return "\n".join(lines) + "\n"


# --- main ------------------------------------------------------------------------------------------
def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default="dist-gmm", help="shipped model name or checkpoint/run folder")
    p.add_argument("--tasks", type=int, help="held-out tasks (default 2000; 200 with --quick)")
    p.add_argument("--nuts-tasks", type=int, help="NUTS on the first this many tasks (default 8; 2 with --quick)")
    p.add_argument("--nuts-warmup", type=int, help="NUTS warmup steps (default 300; 100 with --quick)")
    p.add_argument("--nuts-samples", type=int, help="NUTS draws (default 500; 200 with --quick)")
    p.add_argument("--mc-draws", type=int, help="Monte Carlo draws per KL (default 2000; 500 with --quick)")
    p.add_argument("--trajectories", type=int, help="tracking trajectories (default 500; 50 with --quick)")
    p.add_argument("--steps", type=int, help="tracking steps (default 50; 10 with --quick)")
    p.add_argument("--seed", type=int, default=2024, help="seed of the held-out tasks (training uses others)")
    p.add_argument("--quick", action="store_true", help="a smoke run; writes results/dist_quick.*")
    args = p.parse_args(argv)
    defaults = {"tasks": (2000, 200), "nuts_tasks": (8, 2), "nuts_warmup": (300, 100), "nuts_samples": (500, 200),
                "mc_draws": (2000, 500), "trajectories": (500, 50), "steps": (50, 10)}
    for name, (full, quick) in defaults.items():
        if getattr(args, name) is None:
            setattr(args, name, quick if args.quick else full)
    args.nuts_tasks = max(1, min(args.nuts_tasks, args.tasks))
    return args


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    jax.config.update("jax_enable_x64", True)
    model = pfn.load(args.model)
    if not isinstance(model, DistributionTransformer):
        raise SystemExit(f"benchmarks/dist.py needs a DistributionTransformer, {args.model!r} is a "
                         f"{type(model).__name__}")
    prior = prior_from_dict(model.info["prior"])
    max_context = model.info["train"]["max_context"]
    batch = draw_tasks(prior, args.tasks, max_context, args.seed)
    scores = score_tasks(model, batch, args.mc_draws, args.seed)
    nuts = run_nuts(batch, args.nuts_tasks, args.nuts_warmup, args.nuts_samples, args.seed)
    model_s, batched_s = model_seconds_per_task(model, batch, min(args.tasks, 100))
    track = {name: tracking(model, args.trajectories, args.steps, mixture, args.seed)
             for name, mixture in (("Gaussian start (Kalman filter)", False),
                                   ("mixture start (Gaussian-sum filter)", True))}
    stem = "dist_quick" if args.quick else "dist"
    plot = "dist_ellipses_quick.png" if args.quick else "dist_ellipses.png"  # quick outputs match .gitignore
    plot_ellipses(model, batch, RESULTS_DIR / plot)
    record = build_record(scores, nuts, model_s, batched_s, track, args.nuts_tasks)
    settings = {
        "model": args.model, "model_steps": model.info.get("record", {}).get("steps"), "prior": prior.to_dict(),
        "tasks": args.tasks, "seed": args.seed, "max_context": max_context, "mc_draws": args.mc_draws,
        "nuts_tasks": args.nuts_tasks,
        "nuts": f"NumPyro NUTS, 1 chain, {args.nuts_warmup} warmup + {args.nuts_samples} draws, the task's mixture "
                "prior (MixtureSameFamily of MultivariateNormal, padded to the batch's shapes) and masked Normal "
                "likelihood, float64; NLL under a Gaussian KDE (scipy) of the draws; one compiled kernel for all tasks",
        "timing": "model: one task per forward pass (median over tasks, after a warm-up), and the whole batch "
                  f"in chunks of {CHUNK} tasks; NUTS: wall time of mcmc.run per task",
        "tracking": f"{args.trajectories} trajectories x {args.steps} steps; see "
                    "pfn/distribution_transformer/evaluation.py:tracking",
        "machine": machine_record(numpyro=numpyro.__version__, jax=jax.__version__),
    }
    report = markdown_report(record, settings, plot)
    print(report)
    per_task = {key: value.tolist() for key, value in scores.items()}
    write_results(stem, {**record, "settings": settings, "per_task": per_task, "nuts_per_task": nuts}, report)
    return record


if __name__ == "__main__":
    main()

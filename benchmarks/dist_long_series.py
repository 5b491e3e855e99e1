"""The Distribution Transformer on more measurements than it was trained on: one forward pass against stages.

`DistributionTransformer.posterior` reads more scalar measurements than its training tasks had (100 for
dist-gmm) in stages (`pfn.distribution_transformer.observations.stages`: the first as they are, each later one
about nine times the observations before it as group means, each stage's posterior the next one's prior). This
script measures KL(predicted || exact) by Monte Carlo at several measurement counts for all measurements in one
forward pass (what `posterior` did before) and for the stages, on the README's example (one reading sensor,
readings of its true position) and on held-out tasks of the model's prior (each task's first sensor row,
readings of its true latent). A task that `posterior` refuses (a reading beyond its trained range) is counted,
not scored.

    python benchmarks/dist_long_series.py            # writes results/dist_long_series.json and .md
"""

from __future__ import annotations

import argparse
import time
from typing import Any

import torch
from results_io import machine_record, write_results  # sibling module: run as `python benchmarks/<name>.py`

import pfn
from pfn.distribution_transformer import GMM, DistributionTransformer, LinearGaussian, exact_posterior
from pfn.distribution_transformer.evaluation import kl_monte_carlo
from pfn.distribution_transformer.observations import grouped, problem, unbatched
from priors import prior_from_dict


def readme_tasks() -> tuple[GMM, LinearGaussian, torch.Tensor, torch.Tensor]:
    """The README example as a batch of one: prior, sensor, true position (`1 x 2`) and latent dimension (`1`)."""
    prior = GMM(weights=torch.tensor([[0.6, 0.4]]), means=torch.tensor([[[0.0, 0.0], [3.0, 1.0]]]),
                covs=torch.tensor([[[[0.5, 0.1], [0.1, 0.3]], [[0.4, -0.1], [-0.1, 0.6]]]]))
    sensor = LinearGaussian(matrix=torch.tensor([[[0.8, 0.6]]]), noise_var=torch.tensor([[0.3]]))
    return prior, sensor, torch.tensor([[2.6, 1.3]], dtype=torch.float64), torch.tensor([2])


def prior_tasks(model: DistributionTransformer, n_tasks: int, seed: int) -> tuple[GMM, LinearGaussian, torch.Tensor,
                                                                                    torch.Tensor]:
    """`n_tasks` tasks of the model's prior: mixture priors (batch `B`), each task's first sensor row and noise,
    true latents (`B x D`) and latent dimensions (`B`)."""
    task_prior = prior_from_dict(model.info["prior"])
    k = task_prior.max_components
    meta = task_prior.sample(n_tasks, k + 1, task_prior.token_width, generator=torch.Generator().manual_seed(seed),
                             n_context=1).meta
    weights = meta["weights"].double() / meta["weights"].double().sum(-1, keepdim=True)
    prior = GMM.from_scale_tril(weights.log(), meta["means"].double(), torch.linalg.cholesky(meta["covs"].double()))
    sensor = LinearGaussian(meta["obs_matrix"][:, :1].double(), meta["noise_std"][:, :1].double() ** 2)
    return prior, sensor, meta["latent"].double(), meta["latent_dim"]


def task(prior: GMM, sensor: LinearGaussian, i: int) -> tuple[GMM, LinearGaussian]:
    """Task `i` of a batch, unbatched."""
    return (GMM.from_scale_tril(prior.log_weights[i], prior.means[i], prior.scale_tril[i]),
            LinearGaussian(sensor.matrix[i], sensor.noise_var[i]))


def one_pass(model: DistributionTransformer, prior: GMM, readings: torch.Tensor, sensor: LinearGaussian) -> GMM:
    """The model's posterior of all `readings` (`n x o`) in one forward pass, unchecked."""
    p = problem(prior, readings, sensor)
    n = readings.shape[0]
    return unbatched(model.update(p.prior, grouped(p, sensor.obs_dim, 0, n, n)), p.batched)


def score(model: DistributionTransformer, tasks: tuple[GMM, LinearGaussian, torch.Tensor, torch.Tensor], n: int,
          n_mc: int, seed: int, with_one_pass: bool) -> dict[str, Any]:
    """KL(predicted || exact) per task over its own latent dimensions, for the stages and (`with_one_pass`) one
    pass, with `n` readings per task; summaries and the number of tasks `posterior` refused."""
    prior, sensor, latent, latent_dim = tasks
    gen = torch.Generator().manual_seed(seed)
    kls: dict[str, list[float]] = {"stages": [], "one pass": []}
    refused = 0
    for i in range(latent.shape[0]):
        p, s = task(prior, sensor, i)
        y = latent[i] @ s.matrix.T + s.noise_var.sqrt() * torch.randn(n, s.obs_dim, generator=gen,
                                                                        dtype=torch.float64)
        exact = exact_posterior(p, y, s)
        dims = torch.arange(p.dim) < latent_dim[i]
        try:
            kls["stages"].append(kl_nats(model.posterior(p, y, s), exact, n_mc, seed + i, dims))
        except ValueError:
            refused += 1
            continue
        if with_one_pass:
            kls["one pass"].append(kl_nats(one_pass(model, p, y, s), exact, n_mc, seed + i, dims))
    return {"n": n, "tasks": latent.shape[0], "refused": refused,
            **{method: summary(values) for method, values in kls.items() if values}}


def kl_nats(predicted: GMM, exact: GMM, n_mc: int, seed: int, dims: torch.Tensor) -> float:
    """KL(predicted || exact) over the dimensions `dims` by `n_mc` draws of seed `seed` (the same for every method)."""
    return float(kl_monte_carlo(predicted, exact, n_mc, torch.Generator().manual_seed(seed), dims))


def summary(values: list[float]) -> dict[str, float]:
    t = torch.tensor(values, dtype=torch.float64)
    return {"mean": float(t.mean()), "median": float(t.median()), "p90": float(t.quantile(0.9)),
            "max": float(t.max())}


def report(rows: dict[str, list[dict[str, Any]]], settings: dict[str, Any]) -> str:
    lines = ["# Distribution Transformer on more measurements than it was trained on", "",
             f"KL(predicted || exact posterior) in nats by Monte Carlo ({settings['mc_draws']} draws per task), over "
             f"each task's own latent dimensions; the model was trained on at most {settings['max_context']} "
             "measurements. 'one pass': all readings in one forward pass (what `posterior` did before); "
             "'stages': `posterior` today.", "",
             "| tasks | readings | method | mean | median | 90th percentile | max | refused |",
             "|---|---|---|---|---|---|---|---|"]
    for name, cells in rows.items():
        for cell in cells:
            for method in ("one pass", "stages"):
                if method in cell:
                    k = cell[method]
                    lines.append(f"| {name} | {cell['n']} | {method} | {k['mean']:.3f} | {k['median']:.3f} | "
                                 f"{k['p90']:.3f} | {k['max']:.2f} | {cell['refused']} of {cell['tasks']} |")
    lines += ["", "## Settings", ""] + [f"- {key}: {value}" for key, value in settings.items()]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> dict[str, Any]:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default="dist-gmm", help="shipped model name or checkpoint/run folder")
    p.add_argument("--tasks", type=int, default=64, help="held-out tasks of the model's prior")
    p.add_argument("--readings", type=int, nargs="+", default=[100, 1000, 10_000], help="readings per task")
    p.add_argument("--one-pass-up-to", type=int, default=10_000, help="score one pass only up to this many readings")
    p.add_argument("--mc-draws", type=int, default=20_000, help="Monte Carlo draws per KL")
    p.add_argument("--seed", type=int, default=7, help="seed of the tasks and readings")
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    model = pfn.load(args.model)
    t0 = time.perf_counter()
    task_sets = {"README example": readme_tasks(), f"{args.tasks} prior tasks": prior_tasks(model, args.tasks,
                                                                                            args.seed)}
    rows = {name: [score(model, tasks, n, args.mc_draws, args.seed, n <= args.one_pass_up_to)
                   for n in args.readings] for name, tasks in task_sets.items()}
    settings = {"model": args.model, "max_context": model.max_measurements, "tasks": args.tasks,
                "readings": args.readings, "mc_draws": args.mc_draws, "seed": args.seed,
                "wall_time_s": round(time.perf_counter() - t0, 1), "machine": machine_record()}
    text = report(rows, settings)
    print(text)
    write_results("dist_long_series", {"rows": rows, "settings": settings}, text)
    return rows


if __name__ == "__main__":
    main()

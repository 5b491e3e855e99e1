"""The Distribution Transformer part of `pfn demo`: a mixture belief updated by noisy linear readings, then
updated again with the posterior as the next prior, beside the exact posterior (closed form)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import torch

from pfn.checkpoint import load, read_manifest
from pfn.distribution_transformer.evaluation import kl_monte_carlo
from pfn.distribution_transformer.exact import exact_posterior
from pfn.distribution_transformer.gmm import GMM
from pfn.distribution_transformer.observations import LinearGaussian

KL_DRAWS = 20_000


def demo_task() -> dict[str, Any]:
    """A 2-D latent with a three-component prior, read by two sensors (one linear combination each, noisy).

    Returns:
        `prior` (a `GMM`), `truth` (`2`), and `stages`: a list of `(name, sensor, readings)` with a
        `LinearGaussian` sensor and its readings (`n x 1`) of the truth, applied in turn.
    """
    prior = GMM(weights=torch.tensor([0.5, 0.3, 0.2]),
                means=torch.tensor([[-2.0, 0.0], [2.0, 1.0], [0.0, -2.5]]),
                covs=torch.tensor([[[0.8, 0.3], [0.3, 0.6]], [[0.5, -0.2], [-0.2, 0.9]], [[1.0, 0.0], [0.0, 0.3]]]))
    truth = torch.tensor([1.6, 0.7], dtype=torch.float64)
    gen = torch.Generator().manual_seed(0)
    stages = []
    for name, row, noise_var, n in (("sensor A", [0.2, 1.0], 0.5, 3), ("sensor B", [1.0, -0.3], 0.3, 2)):
        sensor = LinearGaussian(matrix=torch.tensor([row]), noise_var=noise_var)
        noise = noise_var**0.5 * torch.randn(n, 1, generator=gen, dtype=torch.float64)
        stages.append((name, sensor, truth @ sensor.matrix.T + noise))
    return {"prior": prior, "truth": truth, "stages": stages}


def run_dist_demo(out_dir: Path, model: Any = "dist-gmm") -> dict[str, Any]:
    """Updates the `demo_task` belief with the model and exactly, stage by stage (each posterior is the next
    prior), prints both mixtures and KL(predicted || exact), and writes `out_dir/demo_dist.png` (2-sigma
    ellipses per stage).

    Args:
        out_dir: Folder for the plot.
        model: A shipped name, a checkpoint folder, or a loaded `DistributionTransformer`.

    Returns:
        Lists with one value per stage: `kl_predicted` = KL(predicted || exact posterior) and, as its
        scale, `kl_prior` = KL(exact belief before the update || exact posterior), in nats (Monte Carlo,
        `KL_DRAWS` draws); `nll_predicted` and `nll_exact`, the negative log-density of the true position.
        And `seconds_model`, the model's wall time for all stages. Empty when `model="dist-gmm"` is not
        shipped (the part says so and is skipped).
    """
    if isinstance(model, str) and model == "dist-gmm" and "dist-gmm" not in read_manifest()["models"]:
        print("\nDistribution Transformer: skipped, pretrained/dist-gmm is not shipped")
        return {}
    net = load(model) if isinstance(model, str | Path) else model
    task = demo_task()
    gen = torch.Generator().manual_seed(1)
    predicted = exact = task["prior"]
    stages, results = [], {"kl_predicted": [], "kl_prior": [], "nll_predicted": [], "nll_exact": []}
    seconds = 0.0
    print("\nDistribution Transformer: a 2-D position with a three-component prior; noisy readings of one linear "
          "combination each, from sensor A, then (the posterior as the new prior) from sensor B")
    print(f"{'prior':>11}: {task['prior'].describe()}")
    for name, sensor, readings in task["stages"]:
        start = time.perf_counter()
        new_predicted = net.posterior(predicted, readings, sensor)
        seconds += time.perf_counter() - start
        new_exact = exact_posterior(exact, readings, sensor)
        kl_pred = float(kl_monte_carlo(new_predicted, new_exact, KL_DRAWS, gen))
        kl_prior = float(kl_monte_carlo(exact, new_exact, KL_DRAWS, gen))
        stages.append((f"{name}: {len(readings)} readings", exact, new_predicted, new_exact))
        predicted, exact = new_predicted, new_exact
        for key, value in (("kl_predicted", kl_pred), ("kl_prior", kl_prior),
                           ("nll_predicted", -float(predicted.log_prob(task["truth"]))),
                           ("nll_exact", -float(exact.log_prob(task["truth"])))):
            results[key].append(value)
        print(f"after {name} ({len(readings)} readings):")
        for label, gmm in (("predicted", predicted), ("exact", exact)):
            print(f"{label:>11}: {gmm.describe()}")
        print(f"  KL(predicted || exact) {kl_pred:.3f} nats; the belief before this update is {kl_prior:.2f} nats "
              f"from it; NLL of the true position: predicted {results['nll_predicted'][-1]:.2f}, exact "
              f"{results['nll_exact'][-1]:.2f}")
    print(f"model: {1000 * seconds:.0f} ms for both updates")
    path = plot_dist_demo(out_dir, stages, task["truth"])
    print(f"plot written to {path}")
    return {**results, "seconds_model": seconds}


def plot_dist_demo(out_dir: Path, stages: list[tuple[str, GMM, GMM, GMM]], truth: torch.Tensor) -> Path:
    """Writes `out_dir/demo_dist.png`, the `dist_demo_figure` of `stages` and `truth`; returns its path."""
    import matplotlib.pyplot as plt

    out_dir.mkdir(parents=True, exist_ok=True)
    fig = dist_demo_figure(stages, truth)
    path = out_dir / "demo_dist.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def dist_demo_figure(stages: list[tuple[str, GMM, GMM, GMM]], truth: torch.Tensor) -> Any:
    """A matplotlib figure with one panel per stage `(title, exact belief before the update, predicted posterior,
    exact posterior)`: their 2-sigma ellipses (grey; red; black dashed; line width ~ weight) over the two
    coordinates of the position, and the true position (`truth`: `2`)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from pfn.distribution_transformer.plot import draw_ellipses

    fig, axes = plt.subplots(1, len(stages), figsize=(5 * len(stages), 4.6), squeeze=False)
    for ax, (title, before, predicted, exact) in zip(axes[0], stages, strict=True):
        draw_ellipses(ax, before.weights, before.means, before.covs, "0.7", min_weight=0.0, lw=1.0)
        draw_ellipses(ax, exact.weights, exact.means, exact.covs, "k", "--")
        draw_ellipses(ax, predicted.weights, predicted.means, predicted.covs, "C3")
        ax.plot(*truth.numpy(), "x", color="C0", ms=9, mew=2)
        ax.set_title(title, fontsize=10)
        ax.set_xlabel("position, first coordinate z[0]")
        ax.set_ylabel("position, second coordinate z[1]")
        ax.set_aspect("equal", "datalim")
    fig.suptitle("2-sigma ellipses: belief before the update (grey), exact posterior (black dashed), predicted "
                 "(red); line width ~ weight; x = true position", fontsize=9)
    fig.tight_layout()
    return fig


__all__ = ["demo_task", "dist_demo_figure", "plot_dist_demo", "run_dist_demo"]

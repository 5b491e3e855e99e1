"""The GP part of `pfn demo`: the shipped GP-PFN on a real signal, beside a fitted GP, with a plot."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import torch

from pfn.checkpoint import load, read_manifest
from pfn.gp.baseline import fit_type2_ml_gp, latent_predictive

Z90 = 1.6448536269514722  # standard normal 95% quantile: a central 90% interval


def iris_signal(n_context: int = 20, seed: int = 0) -> dict[str, np.ndarray]:
    """Petal width against petal length (iris, bundled with scikit-learn), split into context and held out.

    Returns a dict with `x_context`, `y_context`, `x_held`, `y_held` (1-D arrays in data units).
    """
    from sklearn.datasets import load_iris

    data = load_iris()
    x, y = data.data[:, 2], data.data[:, 3]
    rng = np.random.default_rng(seed)
    idx = rng.permutation(len(x))
    ctx, held = idx[:n_context], idx[n_context:]
    return {"x_context": x[ctx], "y_context": y[ctx], "x_held": x[held], "y_held": y[held]}


def run_gp_demo(out_dir: Path, model_name: str = "gp") -> dict[str, float]:
    """Fits the PFN and a type-II ML GP to the iris signal, prints a comparison, writes `out_dir/demo_gp.png`.

    Returns:
        Root-mean-square errors on the held-out points and wall times of both methods; empty when
        `model_name` is "gp" and `pretrained/gp` is not shipped (the part says so and is skipped).
    """
    if model_name == "gp" and "gp" not in read_manifest()["models"]:
        print("\nGP-PFN on iris: skipped, pretrained/gp is not shipped")
        return {}
    torch.manual_seed(0)
    data = iris_signal()
    # The GP prior lives on the unit interval with outputs of order one: scale into it and back.
    lo, hi = data["x_held"].min(), data["x_held"].max()
    lo, hi = min(lo, data["x_context"].min()), max(hi, data["x_context"].max())
    mu, sd = data["y_context"].mean(), data["y_context"].std()

    def to_unit(x):
        return torch.tensor((x - lo) / (hi - lo), dtype=torch.float32).unsqueeze(-1)

    xc, yc = to_unit(data["x_context"]), torch.tensor((data["y_context"] - mu) / sd, dtype=torch.float32)
    grid = np.linspace(lo, hi, 200)

    model = load(model_name)
    t0 = time.perf_counter()
    fitted = model.fit(xc, yc)
    pfn_grid, pfn_held = fitted.predict(to_unit(grid)), fitted.predict(to_unit(data["x_held"]))
    t_pfn = time.perf_counter() - t0

    t0 = time.perf_counter()
    gp = fit_type2_ml_gp(xc, yc)
    gp_grid, gp_held = latent_predictive(gp, to_unit(grid)), latent_predictive(gp, to_unit(data["x_held"]))
    t_gp = time.perf_counter() - t0

    def summary(mean, lo_, hi_):
        return mean.numpy() * sd + mu, lo_.numpy() * sd + mu, hi_.numpy() * sd + mu

    pfn_band = summary(pfn_grid.mean, pfn_grid.icdf(0.05), pfn_grid.icdf(0.95))
    gp_sd = gp_grid[1].sqrt()
    gp_band = summary(gp_grid[0], gp_grid[0] - Z90 * gp_sd, gp_grid[0] + Z90 * gp_sd)
    rmse_pfn = float(np.sqrt(np.mean((pfn_held.mean.numpy() * sd + mu - data["y_held"]) ** 2)))
    rmse_gp = float(np.sqrt(np.mean((gp_held[0].numpy() * sd + mu - data["y_held"]) ** 2)))

    print("Iris: petal width (cm) from petal length (cm); 20 context points, 130 held out.")
    print("Latent function: predictive mean and central 90% interval at a few lengths")
    print(f"{'length':>8} | {'PFN mean':>8} {'PFN 90% interval':>18} | {'GP mean':>8} {'GP 90% interval':>18}")
    for i in np.linspace(0, len(grid) - 1, 7).astype(int):
        print(f"{grid[i]:8.2f} | {pfn_band[0][i]:8.3f} [{pfn_band[1][i]:7.3f}, {pfn_band[2][i]:7.3f}] | "
              f"{gp_band[0][i]:8.3f} [{gp_band[1][i]:7.3f}, {gp_band[2][i]:7.3f}]")
    print(f"held-out RMSE: PFN {rmse_pfn:.3f}, type-II ML GP {rmse_gp:.3f} (cm)")
    print(f"wall time: PFN fit+predict {t_pfn * 1000:.1f} ms, GP fit+predict {t_gp * 1000:.1f} ms")
    path = plot_demo(out_dir, data, grid, pfn_band, gp_band)
    print(f"plot written to {path}")
    return {"rmse_pfn": rmse_pfn, "rmse_gp": rmse_gp, "time_pfn_s": t_pfn, "time_gp_s": t_gp}


def plot_demo(out_dir: Path, data: dict[str, np.ndarray], grid: np.ndarray, pfn_band, gp_band) -> Path:
    """Writes `out_dir/demo_gp.png` with both predictives; returns its path."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out_dir.mkdir(parents=True, exist_ok=True)
    fig, ax = plt.subplots(figsize=(8, 4.5))
    ax.scatter(data["x_held"], data["y_held"], s=10, c="0.75", label="held out")
    ax.scatter(data["x_context"], data["y_context"], s=25, c="k", label="context (20 points)")
    for (mean, low, high), name, color in ((pfn_band, "GP-PFN", "C0"), (gp_band, "type-II ML GP", "C1")):
        ax.plot(grid, mean, color=color, label=f"{name} mean")
        ax.fill_between(grid, low, high, color=color, alpha=0.2, label=f"{name} 90% interval")
    ax.set_xlabel("petal length (cm)")
    ax.set_ylabel("petal width (cm)")
    ax.set_title("Iris: posterior of the latent function")
    ax.legend(fontsize=8)
    fig.tight_layout()
    path = out_dir / "demo_gp.png"
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path

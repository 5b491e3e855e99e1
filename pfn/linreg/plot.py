"""Plot helper shared by `benchmarks/linreg.py` and `pfn demo`: MSE against the number of context points."""

from __future__ import annotations

from typing import Any

LABELS = {"pfn": "PFN", "ridge": "Bayes ridge", "ols": "OLS (min-norm)", "gd": "1-step GD", "knn": "3-NN",
          "prior": "no context (prior mean)"}


def draw_mse_curves(ax: Any, rows: list[dict[str, float]], methods: tuple[str, ...]) -> None:
    """Draws `mse_<method>` against `n` for rows of one dimension `d` (from `evaluate_linreg`) on a matplotlib axis.

    Log scale; the PFN and Bayes ridge solid, the rest dashed; a grey line at `n = d` (where OLS
    starts to fit); the top at 3x the largest MSE of any method but OLS (whose MSE explodes near `n = d`).
    """
    ns = [r["n"] for r in rows]
    for key in methods:
        ax.plot(ns, [r[f"mse_{key}"] for r in rows], label=LABELS.get(key, key), lw=2.5 if key == "pfn" else 1.2,
                ls="-" if key in ("pfn", "ridge") else "--")
    ax.set_yscale("log")
    ax.set_ylim(top=3 * max(r[f"mse_{key}"] for r in rows for key in methods if key != "ols"))
    d = rows[0]["d"]
    ax.axvline(d, color="grey", lw=0.5)
    ax.set(title=f"d = {d}", xlabel="context points n", ylabel="MSE vs noisy y*")


__all__ = ["LABELS", "draw_mse_curves"]

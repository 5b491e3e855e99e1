"""LC-PFN against MCMC and simple baselines: extrapolating learning curves, and early stopping.

1. Held-out prior curves. Curves of the horizon the model was trained for, cut off after
   10, 20, 40 and 80% of it; every method predicts the value at the horizon (the final
   epoch's noisy observation). Scores: mean log-likelihood of the final value (nats, higher is
   better), MSE of the predictive median, coverage of the central 90% interval, wall time per
   curve. Two test sets: `prior`, the model's own training prior (`CurvePrior()`), and
   `prior-3fam`, its sub-prior whose curves are exactly NUTS's parametric model (the three
   LC-PFN families pow3, ilog2, janoschek, all active; no plateau, degradation or heavy
   noise). Final values clipped to exactly 0 or 1 by the prior are left out: the prior's point
   masses there give a density that no continuous method can match.
2. Real curves of `benchmarks/data/` (scikit-learn MLPs, torch MLPs, gradient boosting;
   validation accuracy, `maximize` in `(0, 1)`, and log-loss, `minimize` in `(0, None)`):
   the same scores, in the metric's own units.
3. Early stopping: each search's real curves replayed in their order with `EarlyStopping`
   deciding after every epoch; the fraction of epochs saved, and the regret of the best final
   value among the completed runs against running every run to the end.

Methods:
- LC-PFN: `LCPFN.predict`, all curves of a cutoff in one batched call.
- NUTS: NumPyro NUTS on the parametric model of `prior-3fam` (the MCMC method of Domhan et
  al., simplified to LC-PFN's three families): `z = start + (limit - start) sum_k w_k p_k(t /
  tau_k; a_k) + N(0, sigma^2)` with the prior's own distributions (limit ~ U(0.1, 1),
  start = U(0, 0.9) limit, w ~ Dirichlet(1, 1, 1), log tau ~ N(-2, 1.5), a uniform on each
  family's range, log sigma ~ N(-4, 1)), on the same normalised scale `z` as LC-PFN; its
  predictive is the mixture over posterior samples of `N(f(1), sigma^2)`, mapped back with the
  Jacobian. One chain; run on the first curves of each cutoff.
- Power law: least squares of `y = c + b epoch^-alpha` (scipy `curve_fit`), Gaussian
  predictive with the residual standard deviation; the last value where it fails or has
  fewer than 3 points.
- Last value: `N(last, s^2)`, `s` = RMS of the context's epoch-to-epoch changes times
  `sqrt(epochs to go)` (a random walk), at least `SD_FLOOR`.
- lcpfn package (with `--anchor FOLDER`): the paper's own code and prior, trained for the CPU
  time of `pretrained/lcpfn` by `benchmarks/lcpfn_anchor.py`: the equal-compute anchor. Its
  model knows 100 epochs scaled as `x = 1..100`, so epoch `e` of a horizon `H` is given as
  `100 e / H`; values go through the same normalisation as LC-PFN's (`Metric.fit`), its
  quantiles and densities are mapped back with it (the Jacobian included). All curves of a
  cutoff in one batched call.

    PYTHONPATH=. python benchmarks/curves.py                              # pretrained/lcpfn
    PYTHONPATH=. python benchmarks/curves.py --model runs/lcpfn --quick   # writes results/curves_quick.*
"""

from __future__ import annotations

import argparse
import json
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
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
from scipy.optimize import curve_fit
from scipy.special import logsumexp

from pfn.curves import LCPFN, EarlyStopping, Metric
from pfn.curves.early_stopping import DEFAULT_MIN_FRACTION
from priors import CurvePrior
from priors.curves import FAMILIES

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (after choosing the backend)

DATA_DIR = Path(__file__).resolve().parent / "data"
CUTOFFS = (0.1, 0.2, 0.4, 0.8)
INTERVAL = (0.05, 0.95)  # the central 90% interval
SD_FLOOR = 1e-3  # smallest predictive standard deviation of the Gaussian baselines (metric units)
METRICS = {"accuracy": Metric("maximize", (0.0, 1.0)), "loss": Metric("minimize", (0.0, None))}
NUTS_FAMILIES = ("pow3", "ilog2", "janoschek")
TEST_PRIORS = {"prior": CurvePrior(),
               "prior-3fam": CurvePrior(families=NUTS_FAMILIES, family_prob=1.0, plateau_prob=0.0, degrade_prob=0.0,
                                        noisy_prob=0.0)}
M_PFN, M_NUTS, M_POWER, M_LAST, M_ANCHOR = "LC-PFN", "NUTS", "power law", "last value", "lcpfn package"
TARGET_SPEEDUP, TARGET_COVERAGE, TARGET_EPOCH_RATIO, TARGET_REGRET = 1e4, (0.85, 0.95), 3.0, 0.01

# --- predictions of the final value ---------------------------------------------------------
@dataclass
class Final:
    """One method's predictive of the final value of `n` curves, scored against the truth (metric units).

    Attributes:
        ll: `n` log densities of the true final values.
        median: `n` predicted medians (the point prediction: LC-PFN's mean can be infinite where
            its predictive has mass at the prior's clipped 0 or 1 and the metric has no bound there).
        lo, hi: `n` bounds of the central 90% interval.
        seconds: `n` wall times per curve (a batched method's time split evenly).
    """

    ll: np.ndarray
    median: np.ndarray
    lo: np.ndarray
    hi: np.ndarray
    seconds: np.ndarray


Method = Callable[[list[np.ndarray], np.ndarray, int, Metric], Final]


def lcpfn_method(model: LCPFN) -> Method:
    """LC-PFN: one batched `predict` for all curves, then the statistics of the horizon's predictive."""
    def predict(contexts: list[np.ndarray], truths: np.ndarray, horizon: int, metric: Metric) -> Final:
        start = time.perf_counter()
        final = model.predict(contexts, horizon, metric.direction, metric.bounds)[:, -1]
        stats = [final.log_prob(torch.as_tensor(truths)), final.quantile(0.5), final.quantile(INTERVAL[0]),
                 final.quantile(INTERVAL[1])]
        per_curve = (time.perf_counter() - start) / len(contexts)
        return Final(*(s.cpu().numpy() for s in stats), np.full(len(contexts), per_curve))

    return predict


def anchor_method(folder: Path) -> Method:
    """The `lcpfn` package's model of `folder` (see the module docstring): one batched forward per cutoff."""
    from lcpfn_anchor import SEQ_LEN, load_anchor  # sibling module; needs `pip install lcpfn --no-deps`

    net = load_anchor(folder)

    def predict(contexts: list[np.ndarray], truths: np.ndarray, horizon: int, metric: Metric) -> Final:
        start = time.perf_counter()
        values = torch.as_tensor(np.stack(contexts))  # B x cut (the contexts of one cutoff share a length)
        b, cut = values.shape
        scale = metric.fit(values)
        epochs = torch.arange(1, cut + 1, dtype=torch.float32) * SEQ_LEN / horizon
        x = torch.cat([epochs, torch.tensor([float(SEQ_LEN)])]).view(-1, 1, 1).expand(-1, b, 1)
        with torch.no_grad():
            logits = net((x, scale.normalize(values).float().T.contiguous()), single_eval_pos=cut)
        truth = torch.as_tensor(truths, dtype=torch.float64)
        z_truth = scale.normalize(truth.unsqueeze(1)).float().T  # 1 x B
        ll = -net.criterion(logits, z_truth)[0].double() + scale.log_jacobian(truth.unsqueeze(1))[:, 0]
        flip = metric.direction == "minimize"  # the q-quantile of z is the (1 - q)-quantile of the metric

        def quantile(q: float) -> torch.Tensor:
            z = net.criterion.icdf(logits, 1 - q if flip else q)[0].double().unsqueeze(1)
            return scale.denormalize(z)[:, 0]

        stats = [ll, quantile(0.5), quantile(INTERVAL[0]), quantile(INTERVAL[1])]
        per_curve = (time.perf_counter() - start) / b
        return Final(*(s.numpy() for s in stats), np.full(b, per_curve))

    return predict


def gaussian_final(mean: np.ndarray, sd: np.ndarray, truths: np.ndarray, seconds: np.ndarray) -> Final:
    """A Gaussian predictive `N(mean, sd^2)` per curve, scored against `truths`."""
    z = (truths - mean) / sd
    half = 1.6448536269514722 * sd  # the 95% standard normal quantile
    return Final(-0.5 * z**2 - np.log(sd) - 0.5 * math.log(2 * math.pi), mean, mean - half, mean + half, seconds)


def last_value(contexts: list[np.ndarray], truths: np.ndarray, horizon: int, metric: Metric) -> Final:
    """The last observed value with a random-walk spread (see the module docstring)."""
    mean, sd, seconds = [], [], []
    for c in contexts:
        start = time.perf_counter()
        steps = np.diff(c)
        rms = float(np.sqrt(np.mean(steps**2))) if steps.size else 0.0
        mean.append(c[-1])
        sd.append(max(rms * math.sqrt(horizon - len(c)), SD_FLOOR))
        seconds.append(time.perf_counter() - start)
    return gaussian_final(np.asarray(mean), np.asarray(sd), truths, np.asarray(seconds))


def _power(x: np.ndarray, c: float, b: float, alpha: float) -> np.ndarray:
    return c + b * x ** (-alpha)


def power_law(contexts: list[np.ndarray], truths: np.ndarray, horizon: int, metric: Metric) -> Final:
    """Least-squares `c + b epoch^-alpha` extrapolated to the horizon, Gaussian with the residual spread."""
    mean, sd, seconds = [], [], []
    for c in contexts:
        start = time.perf_counter()
        x = np.arange(1, len(c) + 1, dtype=np.float64)
        try:
            if len(c) < 3:
                raise RuntimeError("too few points")
            params, _ = curve_fit(_power, x, c, p0=(c[-1], c[0] - c[-1], 0.5),
                                  bounds=([-np.inf, -np.inf, 1e-3], [np.inf, np.inf, 10.0]), maxfev=2000)
            mean.append(float(_power(np.float64(horizon), *params)))
            sd.append(max(float(np.sqrt(np.mean((_power(x, *params) - c) ** 2))), SD_FLOOR))
        except (RuntimeError, ValueError):
            mean.append(c[-1])
            sd.append(SD_FLOOR)
        seconds.append(time.perf_counter() - start)
    return gaussian_final(np.asarray(mean), np.asarray(sd), truths, np.asarray(seconds))


# --- NUTS on the parametric model -------------------------------------------------------------
LOG2 = math.log(2.0)
JAX_PROGRESS = {  # the same progress functions as priors.curves.FAMILIES (checked by check_nuts_families)
    "pow3": lambda u, a: -jnp.expm1(-a * jnp.log1p(u)),
    "ilog2": lambda u, a: 1.0 - jnp.power(LOG2 / jnp.log(2.0 + u), a),
    "janoschek": lambda u, a: -jnp.expm1(-jnp.power(u, a)),
}
SHAPE_LOW = np.array([FAMILIES[f].shape_low for f in NUTS_FAMILIES])
SHAPE_HIGH = np.array([FAMILIES[f].shape_high for f in NUTS_FAMILIES])


def check_nuts_families() -> None:
    """Fails loudly if the JAX progress functions drift from the prior's torch ones."""
    u, a = np.linspace(0.01, 20.0, 50), np.linspace(0.3, 2.0, 50)
    for name in NUTS_FAMILIES:
        expected = FAMILIES[name].progress(torch.as_tensor(u), torch.as_tensor(a)).numpy()
        np.testing.assert_allclose(np.asarray(JAX_PROGRESS[name](jnp.asarray(u), jnp.asarray(a))), expected,
                                   rtol=1e-10, err_msg=name)


def parametric_curve(t: jax.Array, limit, start, w, tau, a) -> jax.Array:
    """`start + (limit - start) sum_k w_k p_k(t / tau_k; a_k)` at times `t` (`n`) for one parameter draw."""
    progress = sum(w[k] * JAX_PROGRESS[name](t / tau[k], a[k]) for k, name in enumerate(NUTS_FAMILIES))
    return start + (limit - start) * progress


def curve_model(t: jax.Array, z: jax.Array) -> None:
    """The NumPyro model of the module docstring for observations `z` (`n`) at times `t` (`n`)."""
    limit = numpyro.sample("limit", npd.Uniform(0.1, 1.0))
    start = numpyro.sample("start_fraction", npd.Uniform(0.0, 0.9)) * limit
    w = numpyro.sample("w", npd.Dirichlet(jnp.ones(len(NUTS_FAMILIES))))
    tau = jnp.exp(numpyro.sample("log_tau", npd.Normal(-2.0, 1.5).expand([len(NUTS_FAMILIES)])))
    a = numpyro.sample("a", npd.Uniform(jnp.asarray(SHAPE_LOW), jnp.asarray(SHAPE_HIGH)))
    sigma = jnp.exp(numpyro.sample("log_sigma", npd.Normal(-4.0, 1.0)))
    numpyro.sample("z", npd.Normal(parametric_curve(t, limit, start, w, tau, a), sigma), obs=z)


@dataclass(frozen=True)
class NutsSettings:
    warmup: int = 300
    samples: int = 300
    seed: int = 0


def nuts_method(settings: NutsSettings) -> Method:
    """NUTS on `z` (the same per-curve normalisation as LC-PFN), mapped back to metric units."""
    def predict(contexts: list[np.ndarray], truths: np.ndarray, horizon: int, metric: Metric) -> Final:
        table = np.full((len(contexts), max(len(c) for c in contexts)), np.nan)
        for i, c in enumerate(contexts):
            table[i, :len(c)] = c
        scale = metric.fit(torch.as_tensor(table))
        z_table = scale.normalize(torch.as_tensor(table)).numpy()
        mcmc = MCMC(NUTS(curve_model), num_warmup=settings.warmup, num_samples=settings.samples, num_chains=1,
                    progress_bar=False, jit_model_args=True)
        out: dict[str, list[float]] = {k: [] for k in ("ll", "median", "lo", "hi", "seconds")}
        for i, c in enumerate(contexts):
            start = time.perf_counter()
            t = jnp.arange(1, len(c) + 1, dtype=jnp.float64) / horizon
            mcmc.run(jax.random.PRNGKey(settings.seed + i), t, jnp.asarray(z_table[i, :len(c)]))
            s = mcmc.get_samples()
            f1 = np.asarray(jax.vmap(lambda p: parametric_curve(jnp.ones(1), p["limit"], p["start_fraction"] *
                                                                p["limit"], p["w"], jnp.exp(p["log_tau"]),
                                                                p["a"])[0])(s))
            sigma = np.exp(np.asarray(s["log_sigma"]))
            eps = np.random.default_rng(settings.seed + i).standard_normal(len(f1))
            curve_scale = scale[i:i + 1]
            draws = curve_scale.denormalize(torch.as_tensor(f1 + sigma * eps)[None]).numpy()[0]
            truth = torch.tensor([[truths[i]]], dtype=torch.float64)
            z_true = float(curve_scale.normalize(truth)[0, 0])
            log_pz = logsumexp(-0.5 * ((z_true - f1) / sigma) ** 2 - np.log(sigma)) - np.log(len(f1)) \
                - 0.5 * math.log(2 * math.pi)
            jacobian = float(curve_scale.log_jacobian(truth)[0, 0])
            out["ll"].append(log_pz + jacobian if math.isfinite(z_true) else -math.inf)
            out["median"].append(float(np.median(draws)))
            out["lo"].append(float(np.quantile(draws, INTERVAL[0])))
            out["hi"].append(float(np.quantile(draws, INTERVAL[1])))
            out["seconds"].append(time.perf_counter() - start)
        return Final(**{k: np.asarray(v) for k, v in out.items()})

    return predict


# --- scoring --------------------------------------------------------------------------------
def summarize(final: Final, truths: np.ndarray) -> dict[str, float]:
    """Mean log-likelihood (with its standard error), MSE of the median, 90% coverage, median time per curve."""
    n = len(truths)
    return {"curves": n, "ll": float(np.mean(final.ll)),
            "ll_se": float(np.std(final.ll, ddof=1) / math.sqrt(n)) if n > 1 else float("nan"),
            "mse": float(np.mean((final.median - truths) ** 2)),
            "coverage": float(np.mean((final.lo <= truths) & (truths <= final.hi))),
            "s_per_curve": float(np.median(final.seconds))}


def evaluate(name: str, curves: np.ndarray, metric: Metric, methods: dict[str, Method], n_nuts: int) -> list[dict]:
    """Every method on `curves` (`n x H`, full runs) at each cutoff; NUTS and an `(nuts subset)` copy of
    the others on the first `n_nuts` curves. Returns table rows."""
    horizon = curves.shape[1]
    truths = curves[:, -1].astype(np.float64)
    rows = []
    for frac in CUTOFFS:
        cut = max(1, round(frac * horizon))
        contexts = [row[:cut].astype(np.float64) for row in curves]
        for method, predict in methods.items():
            subset = method == M_NUTS
            count = n_nuts if subset else len(contexts)
            if count < 1:
                continue
            final = predict(contexts[:count], truths[:count], horizon, metric)
            rows.append({"set": name, "cutoff": frac, "method": method, "subset": "nuts" if subset else "all",
                         **summarize(final, truths[:count])})
            if not subset and n_nuts > 0:
                head = Final(*(getattr(final, f)[:n_nuts] for f in ("ll", "median", "lo", "hi", "seconds")))
                rows.append({"set": name, "cutoff": frac, "method": method, "subset": "nuts",
                             **summarize(head, truths[:n_nuts])})
        print(f"{name} cutoff {frac:.0%}: " + ", ".join(f"{r['method']}{'*' if r['subset'] == 'nuts' else ''} "
                                                         f"{r['ll']:.3f}" for r in rows if r["cutoff"] == frac))
    return rows


def prior_curves(prior: CurvePrior, n: int, horizon: int, seed: int) -> np.ndarray:
    """`n` curves (`n x horizon`) of `prior` whose final value is not clipped to 0 or 1."""
    batch = prior.sample(2 * n + 64, horizon, 1, generator=torch.Generator().manual_seed(seed))
    y = batch.y.double().numpy()
    keep = (y[:, -1] > 0) & (y[:, -1] < 1)
    return y[keep][:n]


def load_real_curves(max_runs: int | None) -> dict[str, dict[str, Any]]:
    """The `.npz` sources of `benchmarks/data/`: per source its metrics (`runs x H`), searches and datasets."""
    sources = {}
    for path in sorted(DATA_DIR.glob("*.npz")):
        d = np.load(path)
        keep = np.concatenate([np.flatnonzero(d["search"] == s)[:max_runs] for s in np.unique(d["search"])])
        sources[path.stem] = {"accuracy": d["accuracy"][keep].astype(np.float64),
                              "loss": d["loss"][keep].astype(np.float64), "search": d["search"][keep],
                              "datasets": [str(x) for x in d["datasets"]]}
    if not sources:
        raise SystemExit(f"no real curves in {DATA_DIR}; run benchmarks/data/make_curves.py first")
    return sources


# --- early stopping ---------------------------------------------------------------------------
def replay(model: LCPFN, curves: np.ndarray, metric: Metric, min_prob: float) -> dict[str, float]:
    """Replays one search (`runs x H`, in order) with `EarlyStopping`; epochs used and the regret.

    The regret is how much worse (in metric units) the best final value among the completed
    runs is than the best final value over all runs, i.e. than running everything to the end.
    """
    horizon = curves.shape[1]
    hook = EarlyStopping(horizon, metric.direction, metric.bounds, min_prob=min_prob, model=model)
    used = 0
    for curve in curves:
        hook.new_run()
        for epoch, value in enumerate(curve, start=1):
            used += 1
            if hook.report(epoch, float(value)):
                break
    finals = curves[:, -1]
    best = finals.max() if metric.direction == "maximize" else finals.min()
    found = hook.best if hook.best is not None else (-np.inf if metric.direction == "maximize" else np.inf)
    regret = abs(best - found)  # found is one of the finals, never better than the best
    return {"runs": len(curves), "epochs": int(curves.size), "epochs_used": used,
            "epoch_ratio": curves.size / used, "regret": float(regret),
            "stopped": sum(1 for d in hook.history if d.stop)}


def early_stopping(model: LCPFN, sources: dict[str, dict[str, Any]], min_probs: tuple[float, ...]) -> list[dict]:
    """`replay` for every search of every source, metric and `min_prob`; returns table rows."""
    rows = []
    for source, data in sources.items():
        for s, dataset in enumerate(data["datasets"]):
            runs = data["search"] == s
            for metric_name, metric in METRICS.items():
                for min_prob in min_probs:
                    start = time.perf_counter()
                    r = replay(model, data[metric_name][runs], metric, min_prob)
                    rows.append({"source": source, "dataset": dataset, "metric": metric_name, "min_prob": min_prob,
                                 **r, "seconds": time.perf_counter() - start})
                    print(f"early stopping {source}/{dataset} {metric_name} min_prob={min_prob}: "
                          f"{r['epoch_ratio']:.2f}x fewer epochs, regret {r['regret']:.4f}")
    return rows


# --- figure ---------------------------------------------------------------------------------
def plot_fans(model: LCPFN, panels: list[tuple[str, np.ndarray, Metric]], path: Path) -> None:
    """Extrapolation fans: observed points, median, 50% and 90% bands and the true continuation."""
    fig, axes = plt.subplots(2, math.ceil(len(panels) / 2), figsize=(4.2 * math.ceil(len(panels) / 2), 6.4))
    for ax, (title, curve, metric) in zip(axes.flat, panels, strict=False):
        horizon, cut = len(curve), max(1, round(0.2 * len(curve)))
        pred = model.predict([curve[:cut]], horizon, metric.direction, metric.bounds)[0]
        epochs = np.arange(1, horizon + 1)
        future = epochs > cut
        q = {level: pred.quantile(level).numpy()[future] for level in (0.05, 0.25, 0.5, 0.75, 0.95)}
        ax.fill_between(epochs[future], q[0.05], q[0.95], alpha=0.2, color="C0", label="90%")
        ax.fill_between(epochs[future], q[0.25], q[0.75], alpha=0.35, color="C0", label="50%")
        ax.plot(epochs[future], q[0.5], color="C0", label="median")
        ax.plot(epochs[future], curve[cut:], ".", color="0.6", ms=3, label="truth")
        ax.plot(epochs[:cut], curve[:cut], "o", color="k", ms=3, label="observed")
        ax.set_title(title, fontsize=9)
        ax.set_xlabel("epoch")
    axes.flat[0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def fan_panels(sources: dict[str, dict[str, Any]], horizon: int, seed: int) -> list[tuple[str, np.ndarray, Metric]]:
    """Two prior curves and, per source, one accuracy and one loss curve of its first search."""
    panels = [(f"prior curve {i}", c, METRICS["accuracy"])
              for i, c in enumerate(prior_curves(CurvePrior(), 2, horizon, seed + 1))]
    for source, data in sources.items():
        mid = len(data["accuracy"]) // 3
        panels += [(f"{source}/{data['datasets'][0]}: accuracy", data["accuracy"][mid], METRICS["accuracy"]),
                   (f"{source}/{data['datasets'][0]}: log-loss", data["loss"][mid], METRICS["loss"])]
    return panels


# --- report ---------------------------------------------------------------------------------
def targets_of(rows: list[dict], stopping: list[dict], main_min_prob: float) -> list[dict[str, Any]]:
    """The issue's targets, each `{"target", "value", "met"}` (read on the NUTS subsets and all curves)."""
    def pick(**kw) -> list[dict]:
        return [r for r in rows if all(r[k] == v for k, v in kw.items())]

    out = []
    for test_set in sorted({r["set"] for r in rows}):
        pfn_ll = [r["ll"] for r in pick(set=test_set, method=M_PFN, subset="nuts")]
        nuts_ll = [r["ll"] for r in pick(set=test_set, method=M_NUTS, subset="nuts")]
        if nuts_ll:
            out.append({"target": f"{test_set}: LC-PFN log-likelihood >= NUTS (NUTS subset, every cutoff)",
                        "value": ", ".join(f"{a:.2f} vs {b:.2f}" for a, b in zip(pfn_ll, nuts_ll, strict=True)),
                        "met": all(a >= b for a, b in zip(pfn_ll, nuts_ll, strict=True))})
        base = {m: [r["ll"] for r in pick(set=test_set, method=m, subset="all")] for m in (M_POWER, M_LAST)}
        pfn_all = [r["ll"] for r in pick(set=test_set, method=M_PFN, subset="all")]
        out.append({"target": f"{test_set}: LC-PFN log-likelihood above power law and last value (every cutoff)",
                    "value": ", ".join(f"{p:.2f} vs {a:.2f}/{b:.2f}"
                                       for p, a, b in zip(pfn_all, base[M_POWER], base[M_LAST], strict=True)),
                    "met": all(p > max(a, b) for p, a, b in zip(pfn_all, base[M_POWER], base[M_LAST], strict=True))})
        anchor = [r["ll"] for r in pick(set=test_set, method=M_ANCHOR, subset="all")]
        if anchor:
            out.append({"target": f"{test_set}: LC-PFN log-likelihood above the equal-compute lcpfn package model "
                                  "(every cutoff)",
                        "value": ", ".join(f"{p:.2f} vs {a:.2f}" for p, a in zip(pfn_all, anchor, strict=True)),
                        "met": all(p > a for p, a in zip(pfn_all, anchor, strict=True))})
        cover = [r["coverage"] for r in pick(set=test_set, method=M_PFN, subset="all")]
        out.append({"target": f"{test_set}: LC-PFN 90% intervals cover 85-95%",
                    "value": ", ".join(f"{c:.0%}" for c in cover),
                    "met": all(TARGET_COVERAGE[0] <= c <= TARGET_COVERAGE[1] for c in cover)})
    speed = [n["s_per_curve"] / pick(set=n["set"], cutoff=n["cutoff"], method=M_PFN, subset="nuts")[0]["s_per_curve"]
             for n in pick(method=M_NUTS)]
    if speed:
        out.append({"target": f"LC-PFN (batched) >= {TARGET_SPEEDUP:.0f}x faster than NUTS per curve",
                    "value": f"{min(speed):.0f}x to {max(speed):.0f}x", "met": min(speed) >= TARGET_SPEEDUP})
    main = [r for r in stopping if r["min_prob"] == main_min_prob and r["metric"] == "accuracy"]
    if main:
        ratio = sum(r["epochs"] for r in main) / sum(r["epochs_used"] for r in main)
        worst = max(r["regret"] for r in main)
        out.append({"target": f"early stopping (accuracy, min_prob={main_min_prob}): >= {TARGET_EPOCH_RATIO:.0f}x "
                              f"fewer epochs at < {TARGET_REGRET:.0%} regret",
                    "value": f"{ratio:.2f}x fewer epochs, worst regret {worst:.4f}",
                    "met": ratio >= TARGET_EPOCH_RATIO and worst < TARGET_REGRET})
    return out


def markdown_report(rows: list[dict], stopping: list[dict], targets: list[dict], settings: dict[str, Any]) -> str:
    lines = ["# LC-PFN: learning-curve extrapolation and early stopping", "",
             "Final-value prediction from the first 10/20/40/80% of each curve: mean log-likelihood (nats, higher "
             "is better, ± s.e.), MSE of the predictive median, coverage of the central 90% interval, median wall "
             "time per curve (LC-PFN: one batched call for all curves of a cutoff, split evenly). Rows marked * are "
             "on the curves NUTS ran on.", ""]
    for test_set in dict.fromkeys(r["set"] for r in rows):
        lines += [f"## {test_set}", "", "| cutoff | method | curves | log-lik | MSE | 90% cover | ms / curve |",
                  "|---|---|---|---|---|---|---|"]
        for r in (r for r in rows if r["set"] == test_set):
            star = "*" if r["subset"] == "nuts" else ""
            lines.append(f"| {r['cutoff']:.0%} | {r['method']}{star} | {r['curves']} | {r['ll']:.3f} ± "
                         f"{r['ll_se']:.3f} | {r['mse']:.2e} | {r['coverage']:.0%} | {1000 * r['s_per_curve']:.3g} |")
        lines.append("")
    lines += ["## Early stopping (replayed searches)", "",
              "| source | dataset | metric | min_prob | runs | epochs run / all | fewer epochs | regret |",
              "|---|---|---|---|---|---|---|---|"]
    lines += [f"| {r['source']} | {r['dataset']} | {r['metric']} | {r['min_prob']} | {r['runs']} | "
              f"{r['epochs_used']} / {r['epochs']} | {r['epoch_ratio']:.2f}x | {r['regret']:.4f} |" for r in stopping]
    lines += ["", "Regret: how much worse the best completed run's final value is than the best final value of all "
              "runs (metric units: accuracy in [0, 1], log-loss in nats).", "",
              "## Targets", "", "| target | value | met |", "|---|---|---|"]
    lines += [f"| {t['target']} | {t['value']} | {'yes' if t['met'] else 'NO'} |" for t in targets]
    lines += ["", "## Settings", ""] + [f"- {k}: {v}" for k, v in settings.items()]
    return "\n".join(lines) + "\n"


def anchor_info(folder: Path | None) -> dict[str, Any] | str:
    """The anchor's training record (`info.json` of `benchmarks/lcpfn_anchor.py`), or why it is absent."""
    if folder is None:
        return "not run (no --anchor; train it with benchmarks/lcpfn_anchor.py)"
    return json.loads((Path(folder) / "info.json").read_text())


# --- main -----------------------------------------------------------------------------------
def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default="lcpfn", help="shipped model name or checkpoint folder (default: lcpfn)")
    p.add_argument("--curves", type=int, help="held-out prior curves per test set (default 500; 40 with --quick)")
    p.add_argument("--nuts-curves", type=int, help="NUTS on the first curves per cutoff (default 12; 2 with --quick)")
    p.add_argument("--nuts-warmup", type=int, help="NUTS warmup steps (default 300; 50 with --quick)")
    p.add_argument("--nuts-samples", type=int, help="NUTS samples (default 300; 50 with --quick)")
    p.add_argument("--real-runs", type=int, help="runs per real search (default: all; 12 with --quick)")
    p.add_argument("--min-probs", type=float, nargs="+", help="early-stopping levels (default 0.01 0.05 0.1)")
    p.add_argument("--anchor", type=Path,
                   help="folder of benchmarks/lcpfn_anchor.py's model (the equal-compute anchor)")
    p.add_argument("--seed", type=int, default=2024, help="seed of the held-out prior curves")
    p.add_argument("--quick", action="store_true", help="a smoke run; writes results/curves_quick.*")
    args = p.parse_args(argv)
    defaults = {"curves": (500, 40), "nuts_curves": (12, 2), "nuts_warmup": (300, 50), "nuts_samples": (300, 50),
                "real_runs": (None, 12), "min_probs": ((0.01, 0.05, 0.1), (0.05,))}
    for name, (full, quick) in defaults.items():
        if getattr(args, name) is None:
            setattr(args, name, quick if args.quick else full)
    return args


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    jax.config.update("jax_enable_x64", True)
    check_nuts_families()
    model = LCPFN(args.model)
    sources = load_real_curves(args.real_runs)
    nuts = NutsSettings(args.nuts_warmup, args.nuts_samples, args.seed)
    methods = {M_PFN: lcpfn_method(model), M_NUTS: nuts_method(nuts), M_POWER: power_law, M_LAST: last_value}
    if args.anchor is not None:
        methods[M_ANCHOR] = anchor_method(args.anchor)
    model.predict([np.linspace(0.1, 0.5, 5)], model.max_horizon)  # warm-up (allocations, kernels)

    rows = []
    for name, prior in TEST_PRIORS.items():
        curves = prior_curves(prior, args.curves, model.max_horizon, args.seed)
        rows += evaluate(name, curves, METRICS["accuracy"], methods, args.nuts_curves)
    for source, data in sources.items():
        for metric_name, metric in METRICS.items():
            n_nuts = args.nuts_curves // 2 if metric_name == "accuracy" else 0
            rows += evaluate(f"{source} {metric_name}", data[metric_name], metric, methods, n_nuts)
    stopping = early_stopping(model, sources, tuple(args.min_probs))
    stem = "curves_quick" if args.quick else "curves"
    figure = RESULTS_DIR / ("curves_fans_quick.png" if args.quick else "curves_fans.png")
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    plot_fans(model, fan_panels(sources, model.max_horizon, args.seed), figure)

    main_min_prob = 0.05 if 0.05 in args.min_probs else args.min_probs[0]
    targets = targets_of(rows, stopping, main_min_prob)
    settings = {
        "model": args.model, "model_record": model.model.info.get("record", {}), "max_horizon": model.max_horizon,
        "prior_curves": args.curves, "prior_horizon": model.max_horizon, "seed": args.seed,
        "nuts": f"{nuts.warmup} warmup + {nuts.samples} samples, 1 chain, first {args.nuts_curves} prior curves and "
                f"first {args.nuts_curves // 2} accuracy curves of each real source per cutoff",
        "real_sources": {s: {"runs": len(d["accuracy"]), "horizon": d["accuracy"].shape[1],
                             "datasets": d["datasets"]} for s, d in sources.items()},
        "early_stopping": f"EarlyStopping defaults (min_epochs = {DEFAULT_MIN_FRACTION:.0%} of the horizon), final "
                          "value = value at the horizon", "figure": str(figure.relative_to(RESULTS_DIR.parent.parent)),
        "anchor": anchor_info(args.anchor),
        "machine": machine_record(numpyro=numpyro.__version__, jax=jax.__version__),
    }
    report = markdown_report(rows, stopping, targets, settings)
    print(report)
    record = {"rows": rows, "early_stopping": stopping, "targets": targets, "settings": settings}
    write_results(stem, record, report)
    return record


if __name__ == "__main__":
    main()

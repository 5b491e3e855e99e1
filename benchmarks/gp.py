"""GP-PFN against exact Gaussian-process inference on held-out tasks from the same prior.

Every method predicts the noise-free function values `f` at 50 query points of each task
from the task's noisy context; the score is the mean negative log predictive density of
`f` per query point (nats, lower is better), i.e. the latent posterior predictive that the
PFN is trained to approximate.

- PFN: `model.predict(...)`, one call per task.
- Oracle GP: exact GP with the task's true kernel and hyperparameters (a lower bound on
  average: the Bayes-optimal predictor knows no more).
- ML-II GP: BoTorch `SingleTaskGP` with the task's true kernel family, kernel
  hyperparameters fitted by maximising the marginal likelihood.
- NUTS GP: fully Bayesian GP (NumPyro NUTS over lengthscales, outputscale and noise under
  the prior's own hyperpriors, kernel fixed to the task's true one) on the first tasks.

Also measures the peak memory of one PFN predict with 100 context points and 100,000 queries
in a fresh subprocess. Writes `benchmarks/results/gp.json` and `.md` (`gp_quick.*` with `--quick`).

    PYTHONPATH=. python benchmarks/gp.py                       # the shipped model "gp"
    PYTHONPATH=. python benchmarks/gp.py --model runs/gp --quick
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import gpytorch
import jax
import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as npd
import torch
from botorch.models import SingleTaskGP
from botorch.models.transforms.outcome import Standardize
from numpyro.infer import MCMC, NUTS
from results_io import machine_record, write_results  # sibling module: run as `python benchmarks/<name>.py`
from tqdm import tqdm

import pfn.checkpoint
from pfn.gp.baseline import exact_latent_predictive, fit_type2_ml_gp, latent_predictive
from pfn.model import PFN
from priors import GPPrior, prior_from_dict
from priors.hyperpriors import Fixed, Gamma, Hyperprior, LogNormal, Uniform
from priors.kernels import KERNELS

REPO = Path(__file__).resolve().parent.parent
N_QUERY = 50
CONTEXT_RANGE = (5, 100)
MAX_FEATURES = 4
VAR_FLOOR = 1e-12  # predictive variances are clamped here before scoring
JITTER = 1e-8  # added to the NUTS GP's kernel diagonal (sampling and predicting) for a stable Cholesky
MEMORY_CONTEXT, MEMORY_QUERIES, MEMORY_FEATURES = 100, 100_000, 4
TARGET_NUTS_GAP, TARGET_NUTS_SPEEDUP, TARGET_ML2_SPEEDUP, TARGET_MEMORY_MIB = 0.05, 100.0, 10.0, 1024.0
M_PFN, M_ORACLE, M_ML2, M_NUTS = "PFN", "Oracle GP", "ML-II GP", "NUTS GP"  # method names in the table
M_NUTS_SAMPLING = "NUTS GP, excl. JAX compile"


# --- tasks ---------------------------------------------------------------------------------
@dataclass
class Task:
    """One held-out regression task (float32 tensors, as the prior draws them).

    Attributes:
        x_context: `C x F` inputs in `[0, 1]`.
        y_context: `C` noisy observations.
        x_query: `M x F` query inputs.
        f_query: `M` noise-free function values at the queries (what is scored).
        lengthscale: `F` true lengthscales; `outputscale`, `noise` (variance): true scalars.
        kernel: The true kernel's name in `priors.kernels.KERNELS`.
        index: Position in the draw order (seeds per-task randomness of the methods).
    """

    x_context: torch.Tensor
    y_context: torch.Tensor
    x_query: torch.Tensor
    f_query: torch.Tensor
    lengthscale: torch.Tensor
    outputscale: float
    noise: float
    kernel: str
    index: int

    @property
    def n_features(self) -> int:
        return self.x_context.shape[1]

    @property
    def n_context(self) -> int:
        return self.x_context.shape[0]


def draw_tasks(prior: GPPrior, n_tasks: int, seed: int, max_features: int) -> list[Task]:
    """Draws `n_tasks` tasks, each a prior batch of one with its own feature count and context size.

    Feature counts are uniform in `1..max_features`, context sizes uniform in `CONTEXT_RANGE`;
    every task has `N_QUERY` queries. Returns the tasks in draw order (reproducible from `seed`).
    """
    gen = torch.Generator().manual_seed(seed)
    tasks = []
    for index in range(n_tasks):
        n_features = int(torch.randint(1, max_features + 1, (), generator=gen))
        n_context = int(torch.randint(CONTEXT_RANGE[0], CONTEXT_RANGE[1] + 1, (), generator=gen))
        b = prior.sample(1, n_context + N_QUERY, n_features, generator=gen, n_context=n_context)
        tasks.append(Task(
            x_context=b.x[0, :n_context], y_context=b.y[0, :n_context], x_query=b.x[0, n_context:],
            f_query=b.target_y[0, n_context:], lengthscale=b.meta["lengthscale"][0],
            outputscale=float(b.meta["outputscale"][0]), noise=float(b.meta["noise"][0]),
            kernel=KERNELS[int(b.meta["kernel"][0])], index=index,
        ))
    return tasks


# --- scoring and bookkeeping ---------------------------------------------------------------
def gaussian_mixture_nll(f: torch.Tensor, mean: torch.Tensor, var: torch.Tensor) -> torch.Tensor:
    """Negative log density of `f` under an equal-weight mixture of Gaussians, per point.

    Args:
        f: `M` targets.
        mean, var: `S x M` component means and variances (or `M` for a single Gaussian).

    Returns:
        An `M` float64 tensor: `-log(mean_s N(f | mean_s, var_s))`.
    """
    mean, var = torch.atleast_2d(mean).double(), torch.atleast_2d(var).double().clamp_min(VAR_FLOOR)
    log_p = torch.distributions.Normal(mean, var.sqrt()).log_prob(f.double())
    return -(torch.logsumexp(log_p, dim=0) - math.log(mean.shape[0]))


@dataclass
class MethodRun:
    """Per-task results of one method: `nll` (mean over the task's queries) and `seconds`."""

    nll: list[float] = field(default_factory=list)
    seconds: list[float] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)

    def add(self, nll: float, seconds: float) -> None:
        self.nll.append(nll)
        self.seconds.append(seconds)


def summarize(nll: list[float], seconds: list[float]) -> dict[str, float]:
    """Returns `tasks`, `nll_mean`, `nll_se` (standard error over tasks), `nll_median`, `total_s`, `per_task_s`."""
    n = len(nll)
    arr = np.asarray(nll, dtype=np.float64)
    se = float(arr.std(ddof=1) / math.sqrt(n)) if n > 1 else float("nan")
    return {"tasks": n, "nll_mean": float(arr.mean()), "nll_se": se, "nll_median": float(np.median(arr)),
            "total_s": float(sum(seconds)), "per_task_s": float(sum(seconds) / n)}


Predictor = Callable[[Task], tuple[torch.Tensor, torch.Tensor]]


def gaussian_score(predict: Predictor) -> Callable[[Task], torch.Tensor]:
    """Turns a predictor of latent means and variances (`S x M` mixture or `M`) into per-query NLLs (`M`)."""
    def score(task: Task) -> torch.Tensor:
        mean, var = predict(task)
        return gaussian_mixture_nll(task.f_query, mean, var)

    return score


def run_method(name: str, tasks: list[Task], score: Callable[[Task], torch.Tensor], warmup: bool = True) -> MethodRun:
    """Scores a method on every task, timing each call (predicting and scoring).

    Args:
        score: Maps a task to the NLL of each of its queries (`M`).
        warmup: Make one untimed call on the first task first (library warm-up, caches).

    Returns:
        The per-task mean NLLs and wall times, in task order.
    """
    if warmup:
        score(tasks[0])
    run = MethodRun()
    for task in tqdm(tasks, desc=name):
        start = time.perf_counter()
        nll = score(task)
        seconds = time.perf_counter() - start
        run.add(float(nll.double().mean()), seconds)
    return run


def pfn_score(model: PFN) -> Callable[[Task], torch.Tensor]:
    """Per-query NLLs (`M`) of `model.predict`, one call per task."""
    return lambda task: -model.predict(task.x_context, task.y_context, task.x_query).log_prob(task.f_query)


# --- exact GPs in GPyTorch / BoTorch -------------------------------------------------------
def scaled_kernel(kernel: str, n_features: int) -> gpytorch.kernels.ScaleKernel:
    """`ScaleKernel` around an ARD RBF or Matern-5/2 kernel (parametrised as in `priors.kernels`), float64."""
    if kernel == "rbf":
        base = gpytorch.kernels.RBFKernel(ard_num_dims=n_features)
    elif kernel == "matern52":
        base = gpytorch.kernels.MaternKernel(nu=2.5, ard_num_dims=n_features)
    else:
        raise ValueError(f"unknown kernel {kernel!r}")
    return gpytorch.kernels.ScaleKernel(base).double()


class ZeroMeanGP(gpytorch.models.ExactGP):
    """Exact zero-mean GP with a given covariance module."""

    def __init__(self, x: torch.Tensor, y: torch.Tensor, likelihood: gpytorch.likelihoods.Likelihood,
                 covar_module: gpytorch.kernels.Kernel) -> None:
        super().__init__(x, y, likelihood)
        self.mean_module = gpytorch.means.ZeroMean()
        self.covar_module = covar_module

    def forward(self, x: torch.Tensor) -> gpytorch.distributions.MultivariateNormal:
        return gpytorch.distributions.MultivariateNormal(self.mean_module(x), self.covar_module(x))


def oracle_predict(task: Task) -> tuple[torch.Tensor, torch.Tensor]:
    """Latent predictive mean and variance (`M` each, float64) of the GP with the task's true hyperparameters."""
    x, y = task.x_context.double(), task.y_context.double()
    covar = scaled_kernel(task.kernel, task.n_features)
    covar.base_kernel.lengthscale = task.lengthscale.double().view(1, -1)
    covar.outputscale = task.outputscale
    likelihood = gpytorch.likelihoods.FixedNoiseGaussianLikelihood(noise=torch.full_like(y, task.noise))
    model = ZeroMeanGP(x, y, likelihood, covar).double().eval()
    with torch.no_grad():
        latent = model(task.x_query.double())
        return latent.mean, latent.variance


def ml2_predict(task: Task, failures: set[int]) -> tuple[torch.Tensor, torch.Tensor]:
    """Latent predictive mean and variance (`M` each, float64) of a type-II ML GP (`pfn.gp.baseline`).

    A BoTorch `SingleTaskGP` with the task's true kernel family: kernel hyperparameters
    maximise the marginal likelihood (no priors on them); the noise keeps BoTorch's default
    likelihood (LogNormal(-4, 1) prior on the standardised scale, noise >= 1e-4). If fitting
    raises or gives a non-finite predictive, the task's index goes into `failures` and the
    same model with its initial (unfitted) hyperparameters predicts instead.
    """
    try:
        mean, var = latent_predictive(fit_type2_ml_gp(task.x_context, task.y_context, task.kernel), task.x_query)
        if torch.isfinite(mean).all() and torch.isfinite(var).all():
            return mean, var
    except Exception:  # any fitting failure counts and falls back
        pass
    failures.add(task.index)
    x, y = task.x_context.double(), task.y_context.double().unsqueeze(-1)
    unfitted = SingleTaskGP(x, y, covar_module=scaled_kernel(task.kernel, task.n_features),
                            outcome_transform=Standardize(m=1))
    return latent_predictive(unfitted.eval(), task.x_query)


# --- fully Bayesian GP with NumPyro NUTS ---------------------------------------------------
def numpyro_hyperprior(hyperprior: Hyperprior) -> npd.Distribution | float:
    """The NumPyro distribution equal to a `priors.hyperpriors` object, or its value if it is constant."""
    if isinstance(hyperprior, Fixed):
        return float(hyperprior.value)
    if isinstance(hyperprior, LogNormal):
        return math.exp(hyperprior.loc) if hyperprior.scale == 0 else npd.LogNormal(hyperprior.loc, hyperprior.scale)
    if isinstance(hyperprior, Gamma):
        return npd.Gamma(hyperprior.concentration, hyperprior.rate)
    if isinstance(hyperprior, Uniform):
        return hyperprior.low if hyperprior.high == hyperprior.low else npd.Uniform(hyperprior.low, hyperprior.high)
    raise TypeError(f"no NumPyro equivalent for hyperprior {hyperprior!r}")


def jax_kernel(x1: jax.Array, x2: jax.Array, lengthscale: jax.Array, outputscale: jax.Array,
               kernel: str) -> jax.Array:
    """`N1 x N2` covariance of `x1` (`N1 x F`) and `x2` (`N2 x F`), the formulas of `priors.kernels`."""
    d2 = jnp.sum(((x1[:, None, :] - x2[None, :, :]) / lengthscale) ** 2, axis=-1)
    if kernel == "rbf":
        corr = jnp.exp(-0.5 * d2)
    else:
        r = jnp.sqrt(d2 + 1e-30) * math.sqrt(5.0)
        corr = (1.0 + r + r * r / 3.0) * jnp.exp(-r)
    return outputscale * corr


def sample_hyperparameter(name: str, prior: npd.Distribution | float, shape: tuple[int, ...]) -> jax.Array:
    """A NumPyro sample site `name` of `shape` with i.i.d. `prior`, or the constant if `prior` is a number."""
    if not isinstance(prior, npd.Distribution):
        return jnp.full(shape, prior)
    return numpyro.sample(name, prior.expand(shape).to_event(len(shape)) if shape else prior)


def gp_marginal_model(x: jax.Array, y: jax.Array, kernel: str, hyperpriors: dict[str, Any]) -> None:
    """NumPyro model: ARD lengthscales (`F`), outputscale and noise from `hyperpriors`, then `y ~ N(0, K + noise I)`."""
    lengthscale = sample_hyperparameter("lengthscale", hyperpriors["lengthscale"], (x.shape[1],))
    outputscale = sample_hyperparameter("outputscale", hyperpriors["outputscale"], ())
    noise = sample_hyperparameter("noise", hyperpriors["noise"], ())
    k = jax_kernel(x, x, lengthscale, outputscale, kernel) + (noise + JITTER) * jnp.eye(x.shape[0])
    numpyro.sample("y", npd.MultivariateNormal(jnp.zeros(x.shape[0]), covariance_matrix=k), obs=y)


def gp_latent_predictive(task: Task, lengthscale: torch.Tensor, outputscale: torch.Tensor, noise: torch.Tensor,
                         ) -> tuple[torch.Tensor, torch.Tensor]:
    """Exact latent GP predictive at the task's queries for `S` hyperparameter settings (the task's true kernel).

    Args:
        lengthscale: `S x F`; outputscale, noise: `S`.

    Returns:
        Means and variances, each `S x M` float64.
    """
    s = lengthscale.shape[0]
    hyperparameters = {"lengthscale": lengthscale, "outputscale": outputscale, "noise": noise + JITTER,
                       "kernel": torch.full((s,), KERNELS.index(task.kernel))}
    return exact_latent_predictive(task.x_context.expand(s, -1, -1), task.y_context.expand(s, -1),
                                   task.x_query.expand(s, -1, -1), hyperparameters, jitter=0.0)


JAX_COMPILE_EVENTS = ("/jax/core/compile/jaxpr_to_mlir_module_duration", "/jax/core/compile/backend_compile_duration")


@contextmanager
def jax_compile_timer() -> Iterator[list[float]]:
    """Yields a one-element list accumulating the seconds JAX spends lowering and compiling inside the block.

    Tracing is not counted (its events can nest), so the remainder slightly overstates sampling time.
    """
    total = [0.0]

    def listener(event: str, seconds: float, **kwargs: Any) -> None:
        if event in JAX_COMPILE_EVENTS:
            total[0] += seconds

    jax.monitoring.register_event_duration_secs_listener(listener)
    try:
        yield total
    finally:
        jax.monitoring.unregister_event_duration_listener(listener)


@dataclass(frozen=True)
class NutsSettings:
    """Chain lengths of the NUTS GP; task `i` uses the PRNG key `seed + i`."""

    warmup: int = 300
    samples: int = 300
    seed: int = 0


def nuts_predict(task: Task, hyperpriors: dict[str, Any], settings: NutsSettings,
                 diagnostics: list[dict[str, float]]) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-sample latent predictive means and variances (`S x M`, float64) of a NUTS-sampled GP.

    One chain of `settings.warmup + settings.samples` NUTS steps over the hyperparameters
    (the kernel fixed to the task's true one), then the exact latent predictive of every
    sample; appends the divergences and JAX compile seconds to `diagnostics`.
    """
    xc, yc = jnp.asarray(task.x_context.double().numpy()), jnp.asarray(task.y_context.double().numpy())
    with jax_compile_timer() as compile_s:
        mcmc = MCMC(NUTS(gp_marginal_model), num_warmup=settings.warmup, num_samples=settings.samples,
                    num_chains=1, progress_bar=False)
        key = jax.random.PRNGKey(settings.seed + task.index)
        mcmc.run(key, xc, yc, task.kernel, hyperpriors, extra_fields=("diverging",))
        draws = {name: torch.from_numpy(np.array(value)) for name, value in mcmc.get_samples().items()}
    n = settings.samples
    params = {name: draws[name] if name in draws else torch.full(shape, float(hyperpriors[name]))
              for name, shape in (("lengthscale", (n, task.n_features)), ("outputscale", (n,)), ("noise", (n,)))}
    mean, var = gp_latent_predictive(task, params["lengthscale"], params["outputscale"], params["noise"])
    diagnostics.append({"divergences": int(mcmc.get_extra_fields()["diverging"].sum()), "compile_s": compile_s[0]})
    return mean, var


def run_nuts(prior: GPPrior, tasks: list[Task], settings: NutsSettings) -> tuple[MethodRun, MethodRun]:
    """Scores the NUTS GP on `tasks` (no warm-up call: each task compiles anew, its shapes differ).

    Returns:
        The run as timed, with per-task `divergences` and `compile_s` in `extra`, and the
        same run with JAX lowering and compile time subtracted from each task's time.
    """
    hyperpriors = {name: numpyro_hyperprior(getattr(prior, name)) for name in ("lengthscale", "outputscale", "noise")}
    diagnostics: list[dict[str, float]] = []
    predict = partial(nuts_predict, hyperpriors=hyperpriors, settings=settings, diagnostics=diagnostics)
    run = run_method(M_NUTS, tasks, gaussian_score(predict), warmup=False)
    run.extra = {key: [d[key] for d in diagnostics] for key in ("divergences", "compile_s")}
    seconds = [t - c for t, c in zip(run.seconds, run.extra["compile_s"], strict=True)]
    return run, MethodRun(nll=list(run.nll), seconds=seconds)


# --- memory ---------------------------------------------------------------------------------
MEMORY_SNIPPET = """
import json, resource, sys, time, torch
import pfn.checkpoint
from pfn.gp.baseline import exact_latent_predictive, fit_type2_ml_gp, latent_predictive

def peak_mib():
    # VmHWM is this process's own peak; ru_maxrss also carries the parent's peak across fork + exec.
    try:
        with open("/proc/self/status") as status:
            return next(int(line.split()[1]) for line in status if line.startswith("VmHWM:")) / 1024, "VmHWM"
    except (OSError, StopIteration):
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return rss / (2**20 if sys.platform == "darwin" else 1024), "ru_maxrss"

torch.set_num_threads({threads})
model = pfn.checkpoint.load({model!r})
g = torch.Generator().manual_seed(0)
xc, yc = torch.rand({c}, {f}, generator=g), torch.randn({c}, generator=g)
xq = torch.rand({q}, {f}, generator=g)
before, source = peak_mib()
start = time.perf_counter()
dist = model.predict(xc, yc, xq)
seconds = time.perf_counter() - start
after, _ = peak_mib()
out = dist.log_probs.numel() * dist.log_probs.element_size()
print(json.dumps({{"before_mib": before, "peak_mib": after, "delta_mib": after - before, "source": source,
                  "output_mib": out / 2**20, "output_shape": list(dist.log_probs.shape), "seconds": seconds}}))
"""


def measure_predict_memory(model_ref: str, threads: int) -> dict[str, Any]:
    """Peak resident memory of one PFN predict (`MEMORY_CONTEXT` context rows, `MEMORY_QUERIES` queries).

    Runs in a fresh Python process (torch's allocations are invisible to `tracemalloc`) and
    reads the peak RSS from `/proc/self/status` (`VmHWM`), else `ru_maxrss`. Returns
    `before_mib` (peak after imports, loading and inputs), `peak_mib`, `delta_mib` (their
    difference), `source`, `output_mib` (the returned log-probabilities), `output_shape`, `seconds`.
    """
    code = MEMORY_SNIPPET.format(model=model_ref, threads=threads, c=MEMORY_CONTEXT, f=MEMORY_FEATURES,
                                 q=MEMORY_QUERIES)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, env=env)
    if proc.returncode != 0:
        raise RuntimeError(f"the memory measurement failed:\n{proc.stderr}")
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    return {**result, "n_context": MEMORY_CONTEXT, "n_queries": MEMORY_QUERIES, "n_features": MEMORY_FEATURES}


# --- report ---------------------------------------------------------------------------------
def build_rows(runs: dict[str, MethodRun], n_nuts: int) -> list[dict[str, Any]]:
    """Table rows: the methods run on all tasks, then every method on the NUTS subset (the first `n_nuts` tasks).

    Each row is `summarize(...)` plus `method`, `subset` ("all" or "nuts") and `vs_pfn_time`
    (its time per task over the PFN's on the same tasks).
    """
    n_all = len(runs[M_PFN].nll)
    rows = []
    for subset, count in (("all", n_all), ("nuts", n_nuts)):
        pfn_time = summarize(runs[M_PFN].nll[:count], runs[M_PFN].seconds[:count])["per_task_s"]
        for name, run in runs.items():
            if len(run.nll) >= count:
                s = summarize(run.nll[:count], run.seconds[:count])
                rows.append({"method": name, "subset": subset, **s, "vs_pfn_time": s["per_task_s"] / pfn_time})
    return rows


def find_row(rows: list[dict[str, Any]], method: str, subset: str) -> dict[str, Any]:
    """The row of `method` on `subset`."""
    return next(r for r in rows if r["method"] == method and r["subset"] == subset)


def evaluate_targets(rows: list[dict[str, Any]], memory: dict[str, Any]) -> list[dict[str, Any]]:
    """The project's targets, each as `{"target", "value", "met"}`.

    The NUTS speed-up is taken without JAX compile time (the conservative reading).
    """
    pfn_all, ml2_all = find_row(rows, M_PFN, "all"), find_row(rows, M_ML2, "all")
    pfn_sub, nuts = find_row(rows, M_PFN, "nuts"), find_row(rows, M_NUTS, "nuts")
    speedup = find_row(rows, M_NUTS_SAMPLING, "nuts")["vs_pfn_time"]
    gap = pfn_sub["nll_mean"] - nuts["nll_mean"]
    return [
        {"target": "PFN NLL <= ML-II GP NLL on the mean task (all tasks)",
         "value": f"{pfn_all['nll_mean']:.3f} vs {ml2_all['nll_mean']:.3f}",
         "met": pfn_all["nll_mean"] <= ml2_all["nll_mean"]},
        {"target": "PFN NLL <= ML-II GP NLL on the median task (all tasks)",
         "value": f"{pfn_all['nll_median']:.3f} vs {ml2_all['nll_median']:.3f}",
         "met": pfn_all["nll_median"] <= ml2_all["nll_median"]},
        {"target": f"PFN NLL <= NUTS GP NLL + {TARGET_NUTS_GAP} (NUTS subset)",
         "value": f"{pfn_sub['nll_mean']:.3f} vs {nuts['nll_mean']:.3f} (gap {gap:+.3f})",
         "met": gap <= TARGET_NUTS_GAP},
        {"target": f"PFN >= {TARGET_NUTS_SPEEDUP:.0f}x faster than NUTS GP per task, excl. JAX compile (NUTS subset)",
         "value": f"{speedup:.0f}x ({nuts['vs_pfn_time']:.0f}x incl. compile)", "met": speedup >= TARGET_NUTS_SPEEDUP},
        {"target": f"PFN >= {TARGET_ML2_SPEEDUP:.0f}x faster than ML-II GP fit + predict per task (all tasks)",
         "value": f"{ml2_all['vs_pfn_time']:.1f}x", "met": ml2_all["vs_pfn_time"] >= TARGET_ML2_SPEEDUP},
        {"target": f"peak memory of a {MEMORY_QUERIES}-query predict < {TARGET_MEMORY_MIB:.0f} MiB",
         "value": f"{memory['peak_mib']:.0f} MiB ({memory['delta_mib']:.0f} MiB for the predict)",
         "met": memory["peak_mib"] < TARGET_MEMORY_MIB},
    ]


def markdown_report(rows: list[dict[str, Any]], targets: list[dict[str, Any]], memory: dict[str, Any],
                    settings: dict[str, Any]) -> str:
    """The results as markdown: the table, the targets, the memory measurement and the settings."""
    n_nuts = settings["nuts_tasks"]
    lines = [
        "# GP-PFN vs exact GP inference", "",
        f"Held-out tasks from the PFN's own prior ({settings['tasks']} tasks, seed {settings['seed']}); "
        f"NLL of the noise-free f at {N_QUERY} queries per task, nats per point (lower is better); s.e. over "
        f"tasks. Rows marked 'first {n_nuts}' are restricted to the tasks NUTS ran on.", "",
        "| method | tasks | NLL (± s.e.) | median task NLL | total time (s) | time per task (ms) | time / PFN time |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        label = r["method"] if r["subset"] == "all" else f"{r['method']} (first {n_nuts})"
        lines.append(f"| {label} | {r['tasks']} | {r['nll_mean']:.3f} ± {r['nll_se']:.3f} | {r['nll_median']:.3f} | "
                     f"{r['total_s']:.2f} | {1000 * r['per_task_s']:.1f} | {r['vs_pfn_time']:.1f}x |")
    lines += ["", "| target | value | met |", "|---|---|---|"]
    lines += [f"| {t['target']} | {t['value']} | {'yes' if t['met'] else 'NO'} |" for t in targets]
    lines += [
        "", f"Memory of one predict ({memory['n_context']} context rows, {memory['n_queries']} queries, "
        f"{memory['n_features']} features, fresh process, {memory['source']}): peak RSS {memory['peak_mib']:.0f} MiB, "
        f"{memory['delta_mib']:.0f} MiB above the peak before the predict ({memory['before_mib']:.0f} MiB: Python, "
        f"torch, the model); the returned log-probabilities ({' x '.join(map(str, memory['output_shape']))} "
        f"float32) take {memory['output_mib']:.0f} MiB; the predict took {memory['seconds']:.2f} s.",
        "", "## Settings", "",
    ]
    lines += [f"- {key}: {value}" for key, value in settings.items()]
    return "\n".join(lines) + "\n"


def settings_record(args: argparse.Namespace, model: PFN, prior: GPPrior, nuts: NutsSettings,
                    ml2_failures: set[int], nuts_run: MethodRun) -> dict[str, Any]:
    """Everything needed to reproduce and interpret the run (model, data, methods, hardware)."""
    return {
        "model": args.model, "model_steps": model.info.get("record", {}).get("steps"),
        "prior": prior.to_dict(), "tasks": args.tasks, "nuts_tasks": args.nuts_tasks, "seed": args.seed,
        "features": f"uniform 1..{min(MAX_FEATURES, model.config.max_features)} per task",
        "context_size": f"uniform {CONTEXT_RANGE[0]}..{CONTEXT_RANGE[1]} per task", "queries_per_task": N_QUERY,
        "score": "mean NLL per query of the noise-free f; GP methods use the latent predictive (no noise)",
        "timing": "wall time of predicting and scoring each task; one untimed warm-up call per method except NUTS",
        "pfn": "one model.predict call per task",
        "oracle": "GPyTorch exact GP, true kernel and hyperparameters, zero mean, float64",
        "ml2": "BoTorch SingleTaskGP, true kernel family, ScaleKernel without hyperpriors, ConstantMean, "
               "Standardize(m=1), default likelihood (noise prior LogNormal(-4, 1), noise >= 1e-4 standardised), "
               "fit_gpytorch_mll, float64; time = fit + predict",
        "ml2_fit_failures": len(ml2_failures),
        "nuts": f"NumPyro NUTS, 1 chain, {nuts.warmup} warmup + {nuts.samples} samples, the prior's hyperpriors, "
                "kernel fixed to the task's true kernel (the prior draws it 50/50), zero mean, float64; predictive "
                "= equal-weight mixture of the exact latent GP predictives of the samples; each task compiles "
                "anew (shapes differ)",
        "nuts_divergences": int(sum(nuts_run.extra["divergences"])),
        "nuts_jax_compile_s": round(float(sum(nuts_run.extra["compile_s"])), 2),
        "machine": machine_record(gpytorch=gpytorch.__version__, numpyro=numpyro.__version__, jax=jax.__version__),
    }


# --- main -----------------------------------------------------------------------------------
def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Parses the command line; `--quick` fills unset sizes with 8 tasks, 2 NUTS tasks and short chains."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default="gp", help="shipped model name or checkpoint folder (default: gp)")
    p.add_argument("--tasks", type=int, help="held-out tasks (default 256; 8 with --quick)")
    p.add_argument("--nuts-tasks", type=int, help="NUTS runs on the first this many tasks (default 32; 2 with --quick)")
    p.add_argument("--nuts-warmup", type=int, help="NUTS warmup steps (default 300; 100 with --quick)")
    p.add_argument("--nuts-samples", type=int, help="NUTS samples (default 300; 100 with --quick)")
    p.add_argument("--seed", type=int, default=12345, help="seed of the held-out tasks (training uses others)")
    p.add_argument("--threads", type=int, help="torch threads; 1 also makes JAX single-threaded (default: all)")
    p.add_argument("--quick", action="store_true", help="a smoke run; writes results/gp_quick.*")
    args = p.parse_args(argv)
    defaults = {"tasks": (256, 8), "nuts_tasks": (32, 2), "nuts_warmup": (300, 100), "nuts_samples": (300, 100)}
    for name, (full, quick) in defaults.items():
        if getattr(args, name) is None:
            setattr(args, name, quick if args.quick else full)
    args.nuts_tasks = min(args.nuts_tasks, args.tasks)
    if args.nuts_tasks < 1:
        p.error("--nuts-tasks must be at least 1")
    return args


def load_gp_prior(model: PFN) -> GPPrior:
    """The prior the PFN was trained on, from its checkpoint; must be a noise-free-target `GPPrior`."""
    prior = prior_from_dict(model.info["prior"])
    if not isinstance(prior, GPPrior) or prior.noisy_targets:
        raise SystemExit(f"benchmarks/gp.py needs a PFN trained on a GPPrior with noise-free targets, got {prior!r}")
    return prior


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Runs the benchmark, prints the table and writes the results; returns the JSON record."""
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.threads == 1:  # read when JAX starts its backend, which has not happened yet
        single = "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"
        os.environ["XLA_FLAGS"] = f"{os.environ.get('XLA_FLAGS', '')} {single}".strip()
    jax.config.update("jax_enable_x64", True)
    model = pfn.checkpoint.load(args.model)
    prior = load_gp_prior(model)
    tasks = draw_tasks(prior, args.tasks, args.seed, min(MAX_FEATURES, model.config.max_features))
    nuts_settings = NutsSettings(args.nuts_warmup, args.nuts_samples, seed=args.seed)
    ml2_failures: set[int] = set()

    runs = {
        M_PFN: run_method(M_PFN, tasks, pfn_score(model)),
        M_ORACLE: run_method(M_ORACLE, tasks, gaussian_score(oracle_predict)),
        M_ML2: run_method(M_ML2, tasks, gaussian_score(partial(ml2_predict, failures=ml2_failures))),
    }
    runs[M_NUTS], runs[M_NUTS_SAMPLING] = run_nuts(prior, tasks[: args.nuts_tasks], nuts_settings)
    memory = measure_predict_memory(args.model, torch.get_num_threads())

    rows = build_rows(runs, args.nuts_tasks)
    targets = evaluate_targets(rows, memory)
    settings = settings_record(args, model, prior, nuts_settings, ml2_failures, runs[M_NUTS])
    report = markdown_report(rows, targets, memory, settings)
    print(report)
    record = {"rows": rows, "targets": targets, "memory": memory, "settings": settings,
              "per_task": {name: {"nll": r.nll, "seconds": r.seconds, **r.extra} for name, r in runs.items()},
              "ml2_failed_tasks": sorted(ml2_failures)}
    write_results("gp_quick" if args.quick else "gp", record, report)
    return record


if __name__ == "__main__":
    main()

"""Training throughput of our trainer per shipped config (fp32 vs bf16), the prior's share of a step, and the
same GP job trained by automl/PFNs (`pfns` 0.4.2) side by side, on the CPU.

What is timed. Each measurement is one call of the real `pfn.training.train` (the code path of `pfn train`,
no second loop) on a config's prior, model and train sections with `device="cpu"`, `amp` set to false
(fp32) or true (bf16 autocast of the forward pass, fp32 master weights; bf16 even on a CPU without bf16
instructions, where `pfn train` itself falls back to fp32: see `forced_bf16`) and `warmup + steps + 1` steps,
without an output folder (no checkpoints), with the validation pass and the checkpoints scheduled past the
timed window and the head's bucket borders drawn from at most 20,000 prior targets (set-up, untimed; it
only places the buckets). The prior is wrapped in a recorder whose `sample` stamps the start and end of
every call and passes everything else through. A training step starts with its batch draw, so the window
runs from the start of the batch draw of step `warmup` to the start of the batch draw of step
`warmup + steps`: exactly `steps` whole steps (drawing the batch, forward, loss, backward, clipping,
AdamW, the record's bookkeeping), the warm-up steps, the set-up before them and the final step (which
validates) excluded. Steps that draw other feature counts or context sizes cost more or less; fp32 and
bf16 runs of a config draw the same batches (same seed). A config whose largest forward pass would exceed
`--max-step-tokens` positions (default 65,536, about 5 GB; the tabular configs, made for a GPU, need about
45 GB at their 32 tables x 640 rows x 33 tokens) trains on the largest batch that fits instead (reported
as "3 (of 32)"); its tables/s are then those of the smaller batch.

Units, per step of `batch_size * accumulate` datasets (tables):

- tables/s: datasets trained on per second.
- tokens/s: the positions the transformer processes, padding included, per second. Row-token model
  (`feature_encoding="pad"`: gp, gp-continue, bo, lcpfn-small, linreg, and the pfns anchor; `"pad_standardised"`:
  tabular-clf-row, tabular-clf-row-long, tabular-reg-row): one token per row, `n_points` rows (context and
  queries) per table. Per-feature-token model (`"per_feature"`: tabular-reg): one token per cell plus one
  target token per row, `n_points * (F + 1)` per table for the step's feature count `F`. Distribution
  transformer (`architecture="dist"`: dist-gmm): one token per measurement slot and per mixture component,
  `n_context + max_components` per table. Token counts of different architectures are not comparable;
  tables/s and the fp32/bf16 ratio within a row are.
- prior share: the time spent inside `prior.sample(...)` in the window over the window; "prior ms" is
  that time per batch.

The anchor (the project's issue): "GP prior, 1 feature, batch 32 x 100 points, 4 layers, ff 512, 1000
buckets, fp32", at d_model 128 and 256, 4 heads, trained by both trainers for the same `warmup + steps`
(+1) steps in this process with the same torch threads, timed the same way:

- theirs: `pfns.train.train` with a `MainConfig` built as the package's `example_config.py` does:
  `AdhocPriorConfig` over `pfns.priors.fast_gp.get_batch` (an exact gpytorch GP, RBF kernel, its default
  hyperparameters lengthscale = outputscale = noise = 0.1, x uniform on [0, 1]); the classic PFN
  architecture (`attention_between_features=False`, `features_per_group=1`: one token per row, x and y
  embeddings summed, default linear encoders); a full-support bar distribution with 1000 buckets at
  quantiles of prior targets; AdamW (lr 5e-4, constant schedule); `BatchShapeSamplerConfig(batch_size=32,
  max_seq_len=100, 1 feature)` (context size uniform in 0..99); `num_workers=0` (the prior is sampled in
  the training process, as ours is; the package's default of 4 worker processes would sample on other
  cores); `train_mixed_precision=False` for fp32. One epoch of `warmup + steps + 1` steps; its get_batch
  is wrapped by the same kind of recorder (passed as `get_batch_methods`, hence `reusable_config=False`),
  so its window is also batch draw to batch draw and includes its DataLoader, forward, loss, backward,
  clipping, AdamW and per-step bookkeeping (`loss.item()` and its metrics). Its run with
  `train_mixed_precision=True` is reported too: on a CPU that is bf16 autocast (its GradScaler disables
  itself without CUDA).
- ours: `pfn.train` on `priors.GPPrior` with the same fixed hyperparameters and RBF kernel (noisy
  targets, as fast_gp's), `ModelConfig(max_features=1, d_model=128|256, n_layers=4, n_heads=4, d_ff=512,
  n_buckets=1000)`, `TrainConfig(batch_size=32, n_points=100, context 1..99, 1 feature, lr 5e-4)`, in
  fp32 and in bf16. Target of the issue: ours in bf16 at least 2x theirs in fp32, in tokens/s (= rows/s
  here, the same unit on both sides).

Compatibility shim (`import_pfns`): `pfns.train` imports `torch.utils.tensorboard`, which needs the
`tensorboard` package (and grpcio, protobuf, ...); where it is not installed a stub module is registered
in its place whose `SummaryWriter` raises if constructed. It is never constructed: the run sets no
`tensorboard_path`. The package's code runs otherwise unmodified. Install it beside this project:
`pip install pfns==0.4.2 --no-deps`.

Writes `benchmarks/results/throughput.{json,md}` (`--quick`: `throughput_quick.*`). Run on a quiet
machine; the load average before and after is recorded.

    OMP_NUM_THREADS=1 python benchmarks/throughput.py --quick               # smoke run, a few steps
    python benchmarks/throughput.py                                          # all configs and the anchor
    python benchmarks/throughput.py --configs gp lcpfn --steps 50 --threads 2 --no-anchor
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.metadata
import importlib.util
import io
import os
import sys
import time
import types
import unittest.mock
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import torch
from results_io import describe_machine, machine_record, write_results  # sibling module (run as a script)

from pfn.cli import CONFIG_DIR, config_names, load_run_config
from pfn.config import ModelConfig, TrainConfig
from pfn.device import BF16_CPU_FLAGS, cpu_flags
from pfn.training import train
from priors import GPPrior, prior_from_dict
from priors.hyperpriors import Fixed

CONFIGS = tuple(sorted(p.stem for p in CONFIG_DIR.glob("*.json")))  # the shipped models' recipe stages (pfn/recipes)
BORDER_SAMPLES = 20_000  # prior targets for the bucket borders (set-up only; enough to place 1000 buckets)
MAX_STEP_TOKENS = 65_536  # per forward pass; the tabular configs' 32 x 640 x 33 would need ~45 GB on the CPU
ANCHOR_WIDTHS = (128, 256)
ANCHOR_JOB = {"batch_size": 32, "n_points": 100, "n_features": 1, "n_layers": 4, "n_heads": 4, "d_ff": 512,
              "n_buckets": 1000, "lr": 5e-4}
ANCHOR_GP = {"lengthscale": 0.1, "outputscale": 0.1, "noise": 0.1}  # pfns.priors.fast_gp's defaults
PFNS_VERSION = "0.4.2"
TARGET_RATIO = 2.0
# pfns bf16: its own mixed precision
ANCHOR_RUNS = ("ours fp32", "ours bf16", "ours bf16 compiled", "pfns fp32", "pfns bf16")
OURS = ("ours bf16", "ours bf16 compiled")  # what a training config can use: the target counts the faster
COMPILE_WARMUP = 60  # untimed steps of a compiled run: torch.compile recompiles until the shapes are dynamic


@dataclass
class Calls:
    """Start and end (`time.perf_counter`) and the tokens of every batch a trainer drew, in order."""

    starts: list[float] = field(default_factory=list)
    ends: list[float] = field(default_factory=list)
    tokens: list[int] = field(default_factory=list)
    tables: list[int] = field(default_factory=list)

    def add(self, start: float, end: float, tokens: int, tables: int) -> None:
        self.starts.append(start)
        self.ends.append(end)
        self.tokens.append(tokens)
        self.tables.append(tables)

    def window(self, first: int, warmup: int, steps: int, per_step: int) -> dict[str, float]:
        """Timings of `steps` steps after `warmup`, the loop's calls starting at index `first`, `per_step`
        batches a step.

        Returns:
            `seconds` (batch draw of step `warmup` to batch draw of step `warmup + steps`), `step_ms`,
            `tables_per_s`, `tokens_per_s`, `prior_ms` (per batch) and `prior_share` of the window.
        """
        lo, hi = first + warmup * per_step, first + (warmup + steps) * per_step
        if hi >= len(self.starts):
            raise RuntimeError(f"the trainer drew {len(self.starts) - first} batches, expected more than "
                               f"{hi - first}: was the run cut short?")
        seconds = self.starts[hi] - self.starts[lo]
        prior_s = sum(e - s for s, e in zip(self.starts[lo:hi], self.ends[lo:hi], strict=True))
        return {"seconds": seconds, "step_ms": 1e3 * seconds / steps,
                "tables_per_s": sum(self.tables[lo:hi]) / seconds, "tokens_per_s": sum(self.tokens[lo:hi]) / seconds,
                "prior_ms": 1e3 * prior_s / (hi - lo), "prior_share": prior_s / seconds}


def tokens_of(model_cfg: ModelConfig, x: torch.Tensor, n_context: int) -> int:
    """The transformer positions (padding included) of a batch with inputs `x` (`B x N x F`) and `n_context`
    context slots under `model_cfg` (see the module docstring)."""
    b, n, f = x.shape
    if model_cfg.architecture == "dist":
        return b * (n_context + model_cfg.max_components)
    if model_cfg.feature_encoding == "per_feature":
        return b * n * (f + 1)
    return b * n


class RecordingPrior:
    """A prior whose `sample` is recorded in `calls` (start, end, tokens); all else is the wrapped prior's."""

    def __init__(self, prior: Any, model_cfg: ModelConfig) -> None:
        self._prior, self._model_cfg, self.calls = prior, model_cfg, Calls()

    def sample(self, *args: Any, **kwargs: Any) -> Any:
        """The wrapped prior's batch, its call recorded."""
        start = time.perf_counter()
        batch = self._prior.sample(*args, **kwargs)
        end = time.perf_counter()
        self.calls.add(start, end, tokens_of(self._model_cfg, batch.x, batch.n_context), batch.x.shape[0])
        return batch

    def __getattr__(self, name: str) -> Any:
        return getattr(self._prior, name)


@contextlib.contextmanager
def forced_bf16() -> Iterator[None]:
    """`pfn.train` with `amp: true` runs bf16 inside this block whatever the CPU (elsewhere it falls back to fp32
    where `pfn.device.bf16_is_fast` says no): the bf16 columns time bf16 itself, also where it is slow."""
    with unittest.mock.patch("pfn.training.bf16_is_fast", return_value=(True, "forced by benchmarks/throughput.py")):
        yield


def measure_ours(prior: Any, model_cfg: ModelConfig, train_cfg: TrainConfig, amp: bool, warmup: int,
                 steps: int, compile: bool = False) -> dict[str, Any]:
    """Trains `warmup + steps + 1` steps with `pfn.training.train` on the CPU (with `compile`, at least
    `COMPILE_WARMUP` warm-up steps; with `amp`, in bf16 on any CPU: `forced_bf16`); returns the window's
    timings (`Calls.window`), the final training loss and the record's "amp_used"."""
    warmup = max(warmup, COMPILE_WARMUP) if compile else warmup
    total = warmup + steps + 1
    cfg = TrainConfig.from_dict({**train_cfg.to_dict(), "device": "cpu", "amp": amp, "compile": compile, "steps": total,
                                 "init_from": None,  # a continuation stage is timed from a fresh model (same cost)
                                 "checkpoint_every": total + 1, "val_every": total + 1, "val_batches": 1,
                                 "border_samples": min(train_cfg.border_samples, BORDER_SAMPLES)})
    recorder = RecordingPrior(prior, model_cfg)
    with forced_bf16() if amp else contextlib.nullcontext():
        model = train(recorder, model_cfg, cfg, None, progress=False)
    first = len(recorder.calls.starts) - total * cfg.accumulate
    return {**recorder.calls.window(first, warmup, steps, cfg.accumulate),
            "train_loss": model.info["record"]["train_loss"], "amp_used": model.info["record"]["amp_used"]}


def max_tokens_per_table(model_cfg: ModelConfig, train_cfg: TrainConfig) -> int:
    """The most transformer positions one table of `train_cfg`'s batches can have (see `tokens_of`)."""
    if model_cfg.architecture == "dist":
        return train_cfg.max_context + model_cfg.max_components
    if model_cfg.feature_encoding == "per_feature":
        return train_cfg.n_points * (train_cfg.max_features + 1)
    return train_cfg.n_points


def measure_config(name: str, warmup: int, steps: int, max_step_tokens: int) -> dict[str, Any]:
    """fp32 and bf16 timings of the shipped training config `name`, its batch cut to at most `max_step_tokens`
    positions per forward pass; returns them with the config's shapes."""
    _, cfg = load_run_config(name)
    prior = prior_from_dict(cfg["prior"])
    model_cfg = ModelConfig.from_dict(cfg["model"])
    shipped = TrainConfig.from_dict(cfg["train"])
    batch = max(1, min(shipped.batch_size, max_step_tokens // max_tokens_per_table(model_cfg, shipped)))
    train_cfg = TrainConfig.from_dict({**shipped.to_dict(), "batch_size": batch})
    arch = "dist" if model_cfg.architecture == "dist" else model_cfg.feature_encoding
    row = {"config": name, "architecture": arch, "d_model": model_cfg.d_model, "n_layers": model_cfg.n_layers,
           "batch_size": batch * train_cfg.accumulate, "shipped_batch_size": shipped.batch_size * shipped.accumulate,
           "n_points": train_cfg.n_points, "features": [train_cfg.min_features, train_cfg.max_features],
           "shipped_amp": train_cfg.amp}
    if batch < shipped.batch_size:
        print(f"  {name}: batch {batch} instead of {shipped.batch_size} (--max-step-tokens {max_step_tokens})",
              flush=True)
    for precision, amp in (("fp32", False), ("bf16", True)):
        row[precision] = measure_ours(prior, model_cfg, train_cfg, amp, warmup, steps)
        r = row[precision]
        print(f"  {name} {precision}: {r['step_ms']:.0f} ms/step, {r['tables_per_s']:.3g} tables/s, "
              f"{r['tokens_per_s']:.0f} tokens/s, prior {100 * r['prior_share']:.0f}%", flush=True)
    row["bf16_speedup"] = row["bf16"]["tokens_per_s"] / row["fp32"]["tokens_per_s"]
    return row


def anchor_ours(width: int) -> tuple[Any, ModelConfig, TrainConfig]:
    """Our prior, model and train configs of the anchor job at `d_model=width` (fp32; `amp` set per run)."""
    job = ANCHOR_JOB
    prior = GPPrior(lengthscale=Fixed(ANCHOR_GP["lengthscale"]), outputscale=Fixed(ANCHOR_GP["outputscale"]),
                    noise=Fixed(ANCHOR_GP["noise"]), kernels=("rbf",), noisy_targets=True)
    model_cfg = ModelConfig(max_features=job["n_features"], d_model=width, n_layers=job["n_layers"],
                            n_heads=job["n_heads"], d_ff=job["d_ff"], n_buckets=job["n_buckets"])
    train_cfg = TrainConfig(batch_size=job["batch_size"], n_points=job["n_points"], min_context=1,
                            max_context=job["n_points"] - 1, min_features=job["n_features"],
                            max_features=job["n_features"], lr=job["lr"], warmup_steps=0, device="cpu")
    return prior, model_cfg, train_cfg


def import_pfns() -> types.ModuleType:
    """Imports `pfns` (with the tensorboard stub of the module docstring where tensorboard is missing);
    returns the package. Raises ImportError when it is not installed."""
    if importlib.util.find_spec("pfns") is None:
        raise ImportError(f"pfns is not installed (pip install pfns=={PFNS_VERSION} --no-deps)")
    if importlib.util.find_spec("tensorboard") is None and "torch.utils.tensorboard" not in sys.modules:
        stub = types.ModuleType("torch.utils.tensorboard")

        class SummaryWriter:
            def __init__(self, *args: Any, **kwargs: Any) -> None:
                raise RuntimeError("tensorboard is not installed (stub of benchmarks/throughput.py)")

        stub.SummaryWriter = SummaryWriter
        sys.modules["torch.utils.tensorboard"] = stub
    import pfns
    import pfns.priors.fast_gp  # noqa: F401
    import pfns.train  # noqa: F401

    return pfns


def measure_theirs(width: int, mixed_precision: bool, warmup: int, steps: int) -> dict[str, Any]:
    """Trains the anchor job with `pfns.train.train` for `warmup + steps + 1` steps; returns the window's
    timings (`Calls.window`) and its reported loss."""
    import_pfns()
    from pfns.model import bar_distribution
    from pfns.priors import fast_gp
    from pfns.priors.prior import AdhocPriorConfig
    from pfns.train import BatchShapeSamplerConfig, MainConfig, OptimizerConfig, TransformerConfig
    from pfns.train import train as pfns_train

    job, total = ANCHOR_JOB, warmup + steps + 1
    hyperparameters = dict(ANCHOR_GP)
    calls = Calls()

    def recorded_get_batch(**kwargs: Any) -> Any:
        start = time.perf_counter()
        batch = fast_gp.get_batch(**kwargs)
        end = time.perf_counter()
        calls.add(start, end, batch.x.shape[0] * batch.x.shape[1], batch.x.shape[0])
        return batch

    torch.manual_seed(0)
    ys = torch.cat([fast_gp.get_batch(batch_size=job["batch_size"], seq_len=job["n_points"],
                                      num_features=job["n_features"], device="cpu",
                                      hyperparameters=hyperparameters).target_y.flatten()
                    for _ in range(BORDER_SAMPLES // (job["batch_size"] * job["n_points"]) + 1)])
    borders = bar_distribution.get_bucket_borders(job["n_buckets"], ys=ys)
    config = MainConfig(
        priors=[AdhocPriorConfig(get_batch_methods=recorded_get_batch,
                                 prior_kwargs={"hyperparameters": hyperparameters})],
        optimizer=OptimizerConfig("adamw", lr=job["lr"], weight_decay=0.0),
        scheduler="constant",
        model=TransformerConfig(
            criterion=bar_distribution.BarDistributionConfig(borders.tolist(), full_support=True),
            emsize=width, nhid=job["d_ff"], nlayers=job["n_layers"], nhead=job["n_heads"],
            features_per_group=1, attention_between_features=False),
        batch_shape_sampler=BatchShapeSamplerConfig(batch_size=job["batch_size"], max_seq_len=job["n_points"],
                                                    min_num_features=job["n_features"],
                                                    max_num_features=job["n_features"]),
        epochs=1, steps_per_epoch=total, warmup_epochs=0, num_workers=0,
        train_mixed_precision=mixed_precision, verbose=False, progress_bar=False)
    with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*GradScaler.*")
        result = pfns_train(config, device="cpu", reusable_config=False)
    return {**calls.window(len(calls.starts) - total, warmup, steps, 1), "train_loss": float(result["total_loss"])}


def measure_anchor_run(label: str, width: int, warmup: int, steps: int) -> dict[str, Any]:
    """One run of `ANCHOR_RUNS` at `d_model=width`; returns its timings (`Calls.window`) and loss."""
    trainer, precision, *compiled = label.split()
    if trainer == "pfns":
        return measure_theirs(width, precision == "bf16", warmup, steps)
    prior, model_cfg, train_cfg = anchor_ours(width)
    return measure_ours(prior, model_cfg, train_cfg, precision == "bf16", warmup, steps, compile=bool(compiled))


def measure_anchor(warmup: int, steps: int) -> dict[str, Any]:
    """The anchor job at each width: ours (fp32, bf16) and theirs (fp32, their mixed precision = bf16)."""
    pfns = import_pfns()
    version = getattr(pfns, "__version__", None) or importlib.metadata.version("pfns")
    if version != PFNS_VERSION:
        print(f"  note: pfns {version} is installed; this benchmark was written for {PFNS_VERSION}", flush=True)
    rows = []
    for width in ANCHOR_WIDTHS:
        row: dict[str, Any] = {"d_model": width}
        for label in ANCHOR_RUNS:
            row[label] = r = measure_anchor_run(label, width, warmup, steps)
            print(f"  anchor d_model={width} {label}: {r['step_ms']:.0f} ms/step, {r['tokens_per_s']:.0f} tokens/s, "
                  f"prior {100 * r['prior_share']:.0f}%", flush=True)
        base = row["pfns fp32"]["tokens_per_s"]
        row["ratio_vs_pfns_fp32"] = {label: row[label]["tokens_per_s"] / base for label in ANCHOR_RUNS}
        row["best_ours"] = max(OURS, key=lambda label: row["ratio_vs_pfns_fp32"][label])
        row["target_met"] = row["ratio_vs_pfns_fp32"][row["best_ours"]] >= TARGET_RATIO
        rows.append(row)
    return {"pfns_version": version, "job": {**ANCHOR_JOB, "gp": ANCHOR_GP}, "target_ratio": TARGET_RATIO,
            "tensorboard_stub": importlib.util.find_spec("tensorboard") is None, "widths": rows}


def cpu_bf16() -> dict[str, Any]:
    """What decides the CPU's bf16 speed: torch's `capability` and the CPU's bf16 `instructions`
    (`pfn.device.BF16_CPU_FLAGS` found in /proc/cpuinfo; none: bf16 is emulated, and slow)."""
    return {"capability": torch.backends.cpu.get_cpu_capability(),
            "instructions": sorted(cpu_flags() & set(BF16_CPU_FLAGS))}


def report(record: dict[str, Any]) -> str:
    """The markdown report of a run's `record`."""
    machine = record["machine"]
    lines = [f"# Training throughput{' (quick)' if record['quick'] else ''}", "",
             f"{describe_machine(machine)}. "
             f"Load average before {machine['load'][0]:.2f}, after {machine['load_after'][0]:.2f}. "
             f"torch CPU capability {record['cpu_bf16']['capability']}, bf16 instructions: "
             f"{', '.join(record['cpu_bf16']['instructions']) or 'none (bf16 is emulated)'}. "
             f"{record['steps']} timed steps after {record['warmup']} warm-up steps, on the CPU. "
             "Tokens and timings as defined in `benchmarks/throughput.py`'s docstring.", ""]
    if record["configs"]:
        lines += ["## Shipped configs (our trainer)", "",
                  "| config | tokens | d_model x layers | tables x rows | fp32 ms/step | fp32 tables/s | fp32 tokens/s "
                  "| bf16 ms/step | bf16 tables/s | bf16 tokens/s | bf16 speed-up | prior ms/batch | prior share "
                  "fp32 / bf16 |", "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
        unit = {"pad": "row", "pad_standardised": "row", "per_feature": "cell + target",
                "dist": "measurement + component"}
        for r in record["configs"]:
            a, b = r["fp32"], r["bf16"]
            shipped = " (ships bf16)" if r["shipped_amp"] else ""
            cut = f" (of {r['shipped_batch_size']})" if r["batch_size"] < r["shipped_batch_size"] else ""
            lines.append(f"| {r['config']}{shipped} | {unit[r['architecture']]} | {r['d_model']} x {r['n_layers']} | "
                         f"{r['batch_size']}{cut} x {r['n_points']} | {a['step_ms']:.0f} | {a['tables_per_s']:.3g} | "
                         f"{a['tokens_per_s']:,.0f} | {b['step_ms']:.0f} | {b['tables_per_s']:.3g} | "
                         f"{b['tokens_per_s']:,.0f} | {r['bf16_speedup']:.2f}x | {a['prior_ms']:.1f} | "
                         f"{100 * a['prior_share']:.0f}% / {100 * b['prior_share']:.0f}% |")
        lines.append("")
    anchor = record["anchor"]
    if "skipped" in anchor:
        lines += ["## Against automl/PFNs", "", f"Skipped: {anchor['skipped']}", ""]
    elif anchor:
        job = anchor["job"]
        lines += ["## Against automl/PFNs", "",
                  f"pfns {anchor['pfns_version']}, the same job in both trainers: GP prior (RBF, lengthscale = "
                  f"outputscale = noise = 0.1), {job['n_features']} feature, batch {job['batch_size']} x "
                  f"{job['n_points']} points, {job['n_layers']} layers, {job['n_heads']} heads, ff {job['d_ff']}, "
                  f"{job['n_buckets']} buckets; tokens = rows. Target: ours bf16 >= {anchor['target_ratio']:g}x "
                  "pfns fp32." + (" (pfns ran with the tensorboard stub.)" if anchor["tensorboard_stub"] else ""),
                  "", "| d_model | trainer | ms/step | tables/s | tokens/s | prior share | vs pfns fp32 |",
                  "|---|---|---|---|---|---|---|"]
        for w in anchor["widths"]:
            for label, ratio in w["ratio_vs_pfns_fp32"].items():
                r = w[label]
                lines.append(f"| {w['d_model']} | {label} | {r['step_ms']:.0f} | {r['tables_per_s']:.3g} | "
                             f"{r['tokens_per_s']:,.0f} | {100 * r['prior_share']:.0f}% | {ratio:.2f}x |")
        met = ", ".join(f"d_model {w['d_model']}: {'met' if w['target_met'] else 'NOT met'} "
                        f"({w['best_ours']}: {w['ratio_vs_pfns_fp32'][w['best_ours']]:.2f}x)" for w in anchor["widths"])
        lines += ["", f"Target ours bf16 (eager or compiled) >= {anchor['target_ratio']:g}x pfns fp32: {met}.", ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Runs the benchmark of the command line `argv`; returns the record written."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true",
                        help="3 timed steps after 1 warm-up step; writes results/throughput_quick.*")
    parser.add_argument("--steps", type=int, help="timed steps per measurement (default 20; --quick 3)")
    parser.add_argument("--warmup", type=int, help="untimed warm-up steps before them (default 3; --quick 1)")
    parser.add_argument("--threads", type=int, help="torch threads (default: torch's default)")
    parser.add_argument("--configs", nargs="*", choices=config_names(), default=list(CONFIGS),
                        help="shipped training configs to time (default: all; none: only the anchor)")
    parser.add_argument("--max-step-tokens", type=int, default=MAX_STEP_TOKENS,
                        help="cut a config's batch so that a forward pass has at most this many positions (CPU "
                             f"memory; default {MAX_STEP_TOKENS:,}, about 5 GB for the per-feature model)")
    parser.add_argument("--no-anchor", action="store_true", help="skip the comparison with automl/PFNs")
    args = parser.parse_args(argv)
    steps = args.steps if args.steps is not None else (3 if args.quick else 20)
    warmup = args.warmup if args.warmup is not None else (1 if args.quick else 3)
    if steps < 1 or warmup < 0:
        parser.error("--steps must be >= 1 and --warmup >= 0")
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    record: dict[str, Any] = {"quick": args.quick, "steps": steps, "warmup": warmup, "machine": machine_record(),
                              "cpu_bf16": cpu_bf16(), "configs": [], "anchor": {}}
    print(f"{steps} timed steps after {warmup} warm-up steps, {torch.get_num_threads()} torch threads", flush=True)
    for name in args.configs:
        print(f"config {name}", flush=True)
        record["configs"].append(measure_config(name, warmup, steps, args.max_step_tokens))
    if args.no_anchor:
        record["anchor"] = {"skipped": "--no-anchor"}
    else:
        print("anchor: the GP job in our trainer and in automl/PFNs", flush=True)
        try:
            record["anchor"] = measure_anchor(warmup, steps)
        except ImportError as err:
            print(f"  skipping the anchor: {err}", flush=True)
            record["anchor"] = {"skipped": str(err)}
    record["machine"]["load_after"] = list(os.getloadavg())
    text = report(record)
    print(text)
    write_results("throughput_quick" if args.quick else "throughput", record, text)
    return record


if __name__ == "__main__":
    sys.exit(main() and 0)

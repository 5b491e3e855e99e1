"""Model size by measured quality per CPU-hour: train candidate sizes for the same time budget.

For a training config (a name in `pfn/configs/` or a JSON path) and a few candidate
architectures (overrides of its `model` section), each candidate is first timed for a few
steps; its step count is then set so that its whole schedule (warm-up and cosine decay) fits
the budget, and it is trained in `--evals` chunks (resuming from its run folder), with the
validation NLL on the config's fixed prior batches after each chunk. Every candidate sees the
same validation batches, so the curves of validation NLL against training time compare the
sizes at equal compute; the size to train long is the one ahead at the end of the budget
(with a curve still falling).

Times are the training loop's own wall time on this machine (other work on the machine
inflates them alike for all candidates run in one go, but not exactly: note the load).

Writes `benchmarks/results/size_<config>.{json,md,png}` (`--name` for another stem). Candidates
may differ in anything of the model section, the architecture included (e.g. a per-feature
table model against a row-token one with padded features: `{"feature_encoding": "pad"}`);
`--train` overrides the train section for all of them (e.g. a smaller batch or context for a
CPU study of a config made for a GPU), `--prior` the prior section (e.g. no missing values,
which only per-feature models read).

    python benchmarks/size_study.py lcpfn --budget-min 8 \\
        --candidate '{"d_model": 64, "n_layers": 3, "d_ff": 128}' \\
        --candidate '{"d_model": 128, "n_layers": 4, "d_ff": 256}'
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from results_io import RESULTS_DIR, describe_machine, machine_record, write_results  # noqa: E402  (sibling module)

from pfn.cli import load_run_config  # noqa: E402
from pfn.config import ModelConfig, TrainConfig  # noqa: E402
from pfn.training import train  # noqa: E402
from priors import prior_from_dict  # noqa: E402


def seconds_per_step(prior: Any, model_cfg: ModelConfig, train_cfg: TrainConfig, probe_steps: int,
                     folder: Path) -> float:
    """Measured training-loop seconds per step of a short probe run (after one warm-up step)."""
    probe = TrainConfig.from_dict({**train_cfg.to_dict(), "steps": probe_steps + 1, "val_batches": 1,
                                   "checkpoint_every": probe_steps + 1, "val_every": probe_steps + 1})
    first = train(prior, model_cfg, probe, folder / "probe", progress=False, stop_after=1).info["record"]
    done = train(prior, model_cfg, probe, folder / "probe", progress=False).info["record"]
    return (done["wall_time_s"] - first["wall_time_s"]) / probe_steps


def run_candidate(prior: Any, model_cfg: ModelConfig, base: TrainConfig, budget_s: float, n_evals: int,
                  folder: Path) -> dict[str, Any]:
    """Trains one candidate for about `budget_s` seconds; returns its curve of (seconds, val NLL)."""
    step_s = seconds_per_step(prior, model_cfg, base, probe_steps=5, folder=folder)
    steps = max(n_evals, int(budget_s / step_s))
    chunk = max(1, steps // n_evals)
    cfg = TrainConfig.from_dict({**base.to_dict(), "steps": steps, "warmup_steps": min(base.warmup_steps, steps // 10),
                                 "val_every": chunk, "checkpoint_every": chunk})
    curve = []
    for stop in range(chunk, steps + chunk, chunk):
        model = train(prior, model_cfg, cfg, folder / "run", progress=False, stop_after=min(stop, steps))
        rec = model.info["record"]
        curve.append({"step": min(stop, steps), "seconds": rec["wall_time_s"], "val_nll": rec["val_loss"]})
        print(f"  step {curve[-1]['step']:>6}  {rec['wall_time_s']:7.0f} s  val NLL {rec['val_loss']:.4f}", flush=True)
    n_params = sum(p.numel() for p in model.parameters())
    return {"model": model_cfg.to_dict(), "parameters": n_params, "seconds_per_step": step_s, "steps": steps,
            "datasets_seen": steps * cfg.batch_size * cfg.accumulate, "curve": curve}


def report(config_name: str, budget_min: float, results: list[dict[str, Any]], machine: dict[str, Any],
           overrides: dict[str, Any] | None = None) -> str:
    given = "".join(f" {part} overrides: `{json.dumps(o)}`." for part, o in (overrides or {}).items() if o)
    lines = [f"# Model size study: `{config_name}`, {budget_min:g} min of training each",
             "", f"Machine: {describe_machine(machine)}. Validation NLL on the config's fixed prior batches.{given}",
             "",
             "| encoding | d_model | layers | d_ff | parameters | s/step | steps | datasets | final val NLL |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in results:
        m = r["model"]
        lines.append(f"| {m.get('feature_encoding', 'pad')} | {m['d_model']} | {m['n_layers']} | {m['d_ff']} | "
                     f"{r['parameters']:,} | "
                     f"{r['seconds_per_step']:.3f} | {r['steps']} | {r['datasets_seen']:,} | "
                     f"{r['curve'][-1]['val_nll']:.4f} |")
    return "\n".join(lines) + "\n"


def plot(results: list[dict[str, Any]], path: Path) -> None:
    fig, ax = plt.subplots(figsize=(6, 4))
    for r in results:
        m = r["model"]
        ax.plot([p["seconds"] / 60 for p in r["curve"]], [p["val_nll"] for p in r["curve"]], marker="o",
                label=f"{m.get('feature_encoding', 'pad')} {m['n_layers']} x {m['d_model']} "
                      f"({r['parameters'] / 1e6:.2f}M)")
    ax.set_xlabel("training time (min)")
    ax.set_ylabel("validation NLL")
    ax.legend()
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("config", help="training config: a name in pfn/configs or a JSON path")
    parser.add_argument("--candidate", action="append", required=True,
                        help="JSON overrides of the config's model section (repeat for each candidate)")
    parser.add_argument("--budget-min", type=float, default=8.0, help="training minutes per candidate")
    parser.add_argument("--evals", type=int, default=6, help="validation points per candidate")
    parser.add_argument("--work", default="runs/size_study", help="folder for the candidates' runs")
    parser.add_argument("--train", default="{}", help="JSON overrides of the config's train section (all candidates)")
    parser.add_argument("--prior", default="{}", help="JSON overrides of the config's prior section (all candidates; "
                                                     "e.g. '{\"missing_prob\": 0.0}' for row-token candidates)")
    parser.add_argument("--name", help="stem of the results files (default: size_<config>)")
    args = parser.parse_args(argv)
    _, cfg = load_run_config(args.config)
    prior = prior_from_dict({**cfg["prior"], **json.loads(args.prior)})
    base = TrainConfig.from_dict({**cfg["train"], **json.loads(args.train)})
    name = Path(args.config).stem
    stem = args.name or f"size_{name}"
    results = []
    for i, overrides in enumerate(args.candidate):
        model_cfg = ModelConfig.from_dict({**cfg["model"], **json.loads(overrides)})
        print(f"candidate {i}: {model_cfg}", flush=True)
        folder = Path(args.work) / name / f"{i}-{int(time.time())}"
        results.append(run_candidate(prior, model_cfg, base, args.budget_min * 60, args.evals, folder))
    record = {"config": name, "prior_overrides": json.loads(args.prior), "train_overrides": json.loads(args.train),
              "budget_min": args.budget_min,
              "machine": machine_record(), "candidates": results}
    write_results(stem, record, report(name, args.budget_min, results, record["machine"],
                                       {"Prior": record["prior_overrides"], "Train": record["train_overrides"]}))
    plot(results, RESULTS_DIR / f"{stem}.png")


if __name__ == "__main__":
    main(sys.argv[1:])

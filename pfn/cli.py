"""The `pfn` command: `train`, `ship`, `list`, `refit-tails`, `demo`.

A user error (a bad config, a refused resume, a damaged checkpoint) ends the command with a
one-line message and exit status 1, not a traceback.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path
from typing import Any

CONFIG_DIR = Path(__file__).resolve().parent / "configs"


def load_run_config(name_or_path: str) -> tuple[Path, dict[str, Any]]:
    """Reads a training config (JSON with `prior`, `model`, `train`) by path or by name in `pfn/configs/`.

    Returns:
        The file's path and its content.
    """
    path = Path(name_or_path)
    if not path.is_file():
        path = CONFIG_DIR / f"{name_or_path}.json"
    if not path.is_file():
        known = sorted(p.stem for p in CONFIG_DIR.glob("*.json"))
        raise SystemExit(f"pfn train: no config file {name_or_path!r} (a path, or one of {known})")
    try:
        cfg = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise SystemExit(f"pfn train: {path} is not a valid JSON config: {err}") from None
    if not isinstance(cfg, dict):
        raise SystemExit(f"pfn train: {path} must hold a JSON object with the sections prior, model and train")
    missing = {"prior", "model", "train"} - set(cfg)
    if missing:
        raise SystemExit(f"pfn train: {path} lacks the sections {sorted(missing)}")
    return path, cfg


def cmd_train(args: argparse.Namespace) -> None:
    from pfn.config import ModelConfig, TrainConfig
    from pfn.run_state import describe_record
    from pfn.training import train
    from priors import prior_from_dict

    path, cfg = load_run_config(args.config)
    overrides = {k: v for k, v in (("steps", args.steps), ("device", args.device), ("init_from", args.init_from),
                                   ("init_parts", args.init_parts)) if v is not None}
    try:
        prior = prior_from_dict(cfg["prior"])
        model_cfg = ModelConfig.from_dict(cfg["model"])
        train_cfg = TrainConfig.from_dict({**cfg["train"], **overrides})
    except (AttributeError, TypeError, ValueError) as err:
        given = f" (with the command-line overrides {overrides})" if overrides else ""
        raise SystemExit(f"pfn train: {path}{given} is not a valid config: {err}") from None
    out = Path(args.out or Path("runs") / path.stem)
    allow = [name for item in args.allow_change or [] for name in item.split(",") if name]
    model = train(prior, model_cfg, train_cfg, out, stop_after=args.stop_after, allow_change=allow)
    rec = model.info["record"]
    if rec["steps"] >= train_cfg.steps:
        print(f"run {out} is complete ({rec['steps']} of {train_cfg.steps} steps): {describe_record(rec)}")
    else:
        print(f"stopped run {out} at step {rec['steps']} of {train_cfg.steps}; the same command resumes it: "
              f"{describe_record(rec)}")


def cmd_list(args: argparse.Namespace) -> None:
    from pfn.checkpoint import PRETRAINED_DIR, CheckpointError, read_checkpoint, read_manifest, verify_shipped
    from pfn.run_state import cpu_hours, stages, tables_of

    models = read_manifest()["models"]
    if not models:
        print(f"no shipped models in {PRETRAINED_DIR}")
    broken = []
    for name, entry in sorted(models.items()):
        try:
            config, _ = read_checkpoint(verify_shipped(name))
        except CheckpointError as err:
            broken.append(name)
            print(f"{name}: BROKEN: {err}")
            continue
        size = sum(f["size"] for f in entry["files"])
        rec, lineage = config.get("record", {}), stages(config)
        val = "-" if rec.get("val_loss") is None else f"{rec['val_loss']:.4f}"
        print(f"{name}: {size / 2**20:.1f} MiB, prior {config.get('prior', {}).get('type')}, "
              f"{config['model']['n_layers']} layers x {config['model']['d_model']}, steps {rec.get('steps')}, "
              f"val NLL {val}; {len(lineage)} stage(s), {sum(tables_of(s) for s in lineage)} tables, "
              f"{cpu_hours(lineage):.2f} CPU hours in all (last on {rec.get('device')})")
        if "command" in config:
            print(f"  reproduce: {config['command']}")
    if broken:
        raise SystemExit(f"pfn list: {len(broken)} shipped model(s) failed verification: {', '.join(broken)}")


def cmd_ship(args: argparse.Namespace) -> None:
    from pfn.checkpoint import NAME_PATTERN, PRETRAINED_DIR, load, read_manifest, save_checkpoint, write_manifest

    if not NAME_PATTERN.fullmatch(args.name):
        raise SystemExit(f"pfn ship: {args.name!r} is not a model name: use lowercase letters, digits, '-' and '_', "
                         "starting with a letter or digit (e.g. gp-large)")
    dest = PRETRAINED_DIR / args.name
    if (dest.exists() or args.name in read_manifest()["models"]) and not args.force:
        raise SystemExit(f"pfn ship: a shipped model {args.name!r} exists already ({dest}); pass --force to replace it")
    model = load(Path(args.run))  # verifies the run before anything is written
    model.info["command"] = args.command or (f"pfn train {args.config or args.name} --out {args.run} && "
                                             f"pfn ship {args.run} {args.name}")
    shutil.rmtree(dest, ignore_errors=True)
    save_checkpoint(model, dest)
    write_manifest([args.name])
    print(f"shipped {args.run} as {dest} and updated {PRETRAINED_DIR / 'MANIFEST.json'}")


def cmd_refit_tails(args: argparse.Namespace) -> None:
    import torch

    from pfn.checkpoint import load, save_checkpoint
    from pfn.config import TrainConfig
    from pfn.riemann import tail_borders
    from pfn.training import prior_targets
    from priors import prior_from_dict

    out = Path(args.out)
    if out.exists() and any(out.iterdir()):
        raise SystemExit(f"pfn refit-tails: {out} exists and is not empty; choose a new folder")
    model = load(args.model)
    if model.config.head != "bar" or not {"prior", "train"} <= set(model.info):
        raise SystemExit(f"pfn refit-tails: {args.model} is not a bar-head model with its training prior "
                         f"(head {model.config.head!r})")
    cfg = TrainConfig.from_dict({**model.info["train"], "device": "cpu"})
    samples = prior_targets(prior_from_dict(model.info["prior"]), cfg, torch.device("cpu"), args.samples)
    before = model.head.borders.clone()
    model.head.borders.copy_(tail_borders(samples, before))
    after = model.head.borders
    model.info["record"] = {**model.info.get("record", {}), "tail_refit": {
        "samples": int(samples.numel()), "outer_borders_before": [float(before[0]), float(before[-1])],
        "outer_borders_after": [float(after[0]), float(after[-1])]}}
    save_checkpoint(model, out)
    print(f"refitted the tails of {args.model} on {samples.numel()} prior targets: outer borders "
          f"{float(before[0]):.4g}, {float(before[-1]):.4g} -> {float(after[0]):.4g}, {float(after[-1]):.4g} "
          f"(inner borders and weights unchanged); wrote {out}")


def cmd_demo(args: argparse.Namespace) -> None:
    from pfn.checkpoint import read_manifest
    from pfn.curves.demo import run_curves_demo
    from pfn.demo import run_demo
    from pfn.dist.demo import run_dist_demo
    from pfn.linreg.demo import run_linreg_demo
    from pfn.tabular.demo import run_tabular_demo

    run_demo(Path(args.out))
    run_tabular_demo()
    shipped = read_manifest()["models"]
    if "lcpfn" in shipped:
        run_curves_demo(Path(args.out))
    else:
        print("\nLearning curves: skipped, pretrained/lcpfn is not shipped")
    if "bo" in shipped:
        from bo.demo import run_bo_demo

        run_bo_demo(Path(args.out))
    else:
        print("\nBayesian optimisation: skipped, pretrained/bo is not shipped")
    run_linreg_demo(Path(args.out))  # these two say so and skip themselves when their model is not shipped
    run_dist_demo(Path(args.out))


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="pfn", description="Prior-data fitted networks.")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("train", help="train a PFN from a JSON config (resumes the run in --out)")
    p.add_argument("config", help="path to a JSON config, or a name in pfn/configs (e.g. gp)")
    p.add_argument("--out", help="run folder (default runs/<config name>); resumes the run it holds, which must "
                                 "have the same config (see --allow-change)")
    p.add_argument("--steps", type=int, help="override the number of steps")
    p.add_argument("--device", help="override the device (auto, cpu, cuda)")
    p.add_argument("--stop-after", type=int, help="stop (with a resumable checkpoint) after this many steps")
    p.add_argument("--init-from", help="start from a trained model: a shipped name or a checkpoint or run folder "
                                       "(fresh optimiser and warm-up; its lineage is kept)")
    p.add_argument("--init-parts", choices=("auto", "all", "transformer", "deepen"),
                   help="with --init-from: take the whole model (all: same architecture), only its transformer, or "
                        "the whole model into one of more layers (deepen); auto (default): all where the head kind "
                        "is the same")
    p.add_argument("--allow-change", action="append", metavar="FIELD",
                   help="resume the run in --out although FIELD (a train field such as steps or lr, or prior) "
                        "differs; recorded in the run's record (repeat or comma-separate for several)")
    p.set_defaults(func=cmd_train)
    p = sub.add_parser("list", help="list shipped models (verified) with their training records")
    p.set_defaults(func=cmd_list)
    p = sub.add_parser("ship", help="copy a trained checkpoint into pretrained/ and update the manifest")
    p.add_argument("run", help="checkpoint or run folder written by pfn train")
    p.add_argument("name", help="name of the shipped model (folder in pretrained/): lowercase letters, digits, - and _")
    p.add_argument("--force", action="store_true", help="replace a shipped model of the same name")
    p.add_argument("--config", help="config the run was trained with (default: NAME)")
    p.add_argument("--command", help="the full command that reproduces the run, if not the default "
                                     "'pfn train CONFIG --out RUN && pfn ship RUN NAME'")
    p.set_defaults(func=cmd_ship)
    p = sub.add_parser("refit-tails", help="refit a bar-head model's two tail scales to the mean of its prior's "
                                           "targets beyond the outer buckets (weights unchanged)")
    p.add_argument("model", help="shipped model name, or checkpoint or run folder")
    p.add_argument("--out", required=True, help="new checkpoint folder (ship it with pfn ship)")
    p.add_argument("--samples", type=int, help="prior targets to draw (default: the config's border_samples)")
    p.set_defaults(func=cmd_refit_tails)
    p = sub.add_parser("demo", help="the shipped models at work: GP-PFN on a signal, tabular classifier on a table, "
                                   "LC-PFN on training runs, PFN-BO on a tuning task, in-context linear regression "
                                   "against ridge and OLS, Distribution Transformer against the exact posterior "
                                   "(plots in --out)")
    p.add_argument("--out", default="demo_output", help="folder for the plot")
    p.set_defaults(func=cmd_demo)
    return parser


def main(argv: list[str] | None = None) -> None:
    """Runs the `pfn` command line; a user error raises `SystemExit` with a one-line message."""
    from pfn.checkpoint import CheckpointError

    args = _parser().parse_args(argv)
    try:
        args.func(args)
    except (CheckpointError, ValueError, OSError) as err:
        raise SystemExit(f"pfn {args.command}: {err}") from None


if __name__ == "__main__":
    main(sys.argv[1:])

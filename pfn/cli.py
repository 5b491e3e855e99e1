"""The `pfn` command: `train`, `reproduce`, `ship`, `list`, `refit-tails`, `demo`.

A user error (a bad config, a refused resume, a damaged checkpoint) ends the command with a
one-line message and exit status 1, not a traceback. The engine's command line imports none of
its uses: `pfn demo` runs the parts that the wings register under the entry-point group
`pfn.demos` (pyproject.toml), in the order of their names.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import sys
from pathlib import Path
from typing import Any

CONFIG_DIR = Path(__file__).resolve().parent / "configs"
EXPERIMENT_DIR = CONFIG_DIR / "experiments"  # configs that no shipped model came from
DEMO_GROUP = "pfn.demos"


def config_names() -> list[str]:
    """The names `pfn train NAME` knows: the configs of `pfn/configs/` and `pfn/configs/experiments/`, sorted."""
    return sorted(p.stem for folder in (CONFIG_DIR, EXPERIMENT_DIR) for p in folder.glob("*.json"))


def load_run_config(name_or_path: str) -> tuple[Path, dict[str, Any]]:
    """Reads a training config (JSON with `prior`, `model`, `train`) by path, or by name in `pfn/configs/`
    (the stages of the shipped models' recipes) or `pfn/configs/experiments/` (the others).

    Returns:
        The file's path and its content.
    """
    path = Path(name_or_path)
    if not path.is_file():
        named = (CONFIG_DIR / f"{name_or_path}.json", EXPERIMENT_DIR / f"{name_or_path}.json")
        path = next((candidate for candidate in named if candidate.is_file()), named[0])
    if not path.is_file():
        raise SystemExit(f"pfn train: no config file {name_or_path!r} (a path, or one of {config_names()})")
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
    if args.init_parts is not None and train_cfg.init_from is None:
        raise SystemExit(f"pfn train: --init-parts {args.init_parts} says which parts of a trained model to start "
                         f"from, but {path} names none: add --init-from NAME|PATH (or init_from in its train section)")
    if path.resolve().parent == EXPERIMENT_DIR:
        print(f"{path.stem} is an experiment (pfn/configs/experiments/): no shipped model came from it; "
              "`pfn reproduce NAME` replays a shipped model's recipe")
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
        print(f"  reproduce: {reproduce_line(name, config)}")
    if broken:
        raise SystemExit(f"pfn list: {len(broken)} shipped model(s) failed verification: {', '.join(broken)}")


def reproduce_line(name: str, config: dict[str, Any]) -> str:
    """How `pfn list` says to reproduce the shipped model `name`: its recipe's one command, or else the command
    recorded in its checkpoint `config` (or "-" without either)."""
    from pfn.recipe import find_recipe, load_recipe

    if find_recipe(name) is None:
        return config.get("command", "-")
    recipe = load_recipe(name)
    note = f"; {recipe.note}" if recipe.note else ""
    return (f"pfn reproduce {name}  # {len(recipe.stages)} commands from pfn/recipes/{recipe.path.name} "
            f"(--dry-run prints them){note}")


def cmd_reproduce(args: argparse.Namespace) -> None:
    from pfn.recipe import load_recipe, recipe_commands, replayed_past, stage_argv

    recipe = load_recipe(args.recipe)
    for stage in recipe.stages:  # every config resolves before anything runs
        if "train" in stage:
            load_run_config(stage["train"])
    if args.dry_run:
        note = f": {recipe.note}" if recipe.note else ""
        print("\n".join([f"# {recipe.path}{note}", *recipe_commands(recipe, args.device, args.force)]))
        return
    command = shlex.join(["pfn", "reproduce", args.recipe, *(["--device", args.device] if args.device else [])])
    for i, stage in enumerate(recipe.stages, 1):
        argv = stage_argv(recipe, stage, args.device, args.force)
        print(f"[{i}/{len(recipe.stages)}] pfn {shlex.join(argv)}", flush=True)
        step = replayed_past(stage)
        if step is not None:
            print(f"  done: {stage['out']} stands at step {step}, at or past this stage's --stop-after", flush=True)
            continue
        main(argv + (["--command", command] if argv[0] == "ship" else []))


def cmd_ship(args: argparse.Namespace) -> None:
    from pfn.checkpoint import NAME_PATTERN, PRETRAINED_DIR, load, read_manifest, save_checkpoint, write_manifest

    if not NAME_PATTERN.fullmatch(args.name):
        raise SystemExit(f"pfn ship: {args.name!r} is not a model name: use lowercase letters, digits, '-' and '_', "
                         "starting with a letter or digit (e.g. gp-large)")
    dest = PRETRAINED_DIR / args.name
    if (dest.exists() or args.name in read_manifest()["models"]) and not args.force:
        raise SystemExit(f"pfn ship: a shipped model {args.name!r} exists already ({dest}); pass --force to replace it")
    model = load(Path(args.run))  # verifies the run before anything is written
    config = f" --config {args.config}" if args.config else ""
    model.info["command"] = args.reproduce_command or (f"pfn train {args.config or args.name} --out {args.run} && "
                                                       f"pfn ship {args.run} {args.name}{config}")
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

    if args.samples is not None and args.samples < 1:
        raise SystemExit(f"pfn refit-tails: --samples {args.samples}: draw at least 1 prior target (default: the "
                         "config's border_samples)")
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


def demo_out_dir(out: str) -> Path:
    """The folder for the demo's plots, created if missing; a one-line error, before any part runs, when it
    is a file or cannot be created or written."""
    path = Path(out)
    if path.exists() and not path.is_dir():
        raise SystemExit(f"pfn demo: --out {out} is a file; give a folder for the demo's plots (created if missing)")
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise SystemExit(f"pfn demo: cannot create the folder --out {out} for the demo's plots: {err}") from None
    if not os.access(path, os.W_OK):
        raise SystemExit(f"pfn demo: the folder --out {out} is not writable; give another folder for the plots")
    return path


def demo_parts() -> list[Any]:
    """The installed `pfn demo` parts (entry points of the group `pfn.demos`), in the order of their names."""
    from importlib.metadata import entry_points

    parts = sorted(entry_points(group=DEMO_GROUP), key=lambda part: part.name)
    if not parts:
        raise SystemExit(f"pfn demo: no demo parts are installed (entry-point group {DEMO_GROUP!r}); "
                         "reinstall the package (pip install -e .)")
    return parts


def cmd_demo(args: argparse.Namespace) -> None:
    out = demo_out_dir(args.out)
    for part in demo_parts():
        part.load()(out)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="pfn", description="Prior-data fitted networks.")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("train", help="train a PFN from a JSON config (resumes the run in --out)")
    p.add_argument("config", help="path to a JSON config, or a name in pfn/configs or pfn/configs/experiments "
                                   "(e.g. gp)")
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
    p = sub.add_parser("reproduce", help="replay the recipe of a shipped model (pfn/recipes/NAME.json): every "
                                         "training stage and ship, as they were run, from committed configs")
    p.add_argument("recipe", help="a shipped model's name (e.g. gp), or the path of a recipe JSON file")
    p.add_argument("--dry-run", action="store_true", help="print the commands, one per stage, and run nothing")
    p.add_argument("--device", help="train every stage on this device (auto, cpu, cuda) instead of the configs'")
    p.add_argument("--force", action="store_true", help="let every ship stage replace a shipped model of the name")
    p.set_defaults(func=cmd_reproduce)
    p = sub.add_parser("list", help="list shipped models (verified) with their training records")
    p.set_defaults(func=cmd_list)
    p = sub.add_parser("ship", help="copy a trained checkpoint into pretrained/ and update the manifest")
    p.add_argument("run", help="checkpoint or run folder written by pfn train")
    p.add_argument("name", help="name of the shipped model (folder in pretrained/): lowercase letters, digits, - and _")
    p.add_argument("--force", action="store_true", help="replace a shipped model of the same name")
    p.add_argument("--config", help="config the run was trained with (default: NAME)")
    p.add_argument("--command", dest="reproduce_command",
                   help="the full command that reproduces the run, if not the default "
                        "'pfn train CONFIG --out RUN && pfn ship RUN NAME [--config CONFIG]'")
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
                                   "(the parts installed under the entry-point group pfn.demos, in the order of "
                                   "their names; plots in --out)")
    p.add_argument("--out", default="demo_output",
                   help="folder for the demo's plots, one PNG per part (created if missing; default demo_output)")
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

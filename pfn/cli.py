"""The `pfn` command: `train`, `ship`, `list`, `demo`."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

CONFIG_DIR = Path(__file__).resolve().parent / "configs"


def load_run_config(name_or_path: str) -> dict:
    """Reads a training config (JSON with `prior`, `model`, `train`) by path or by name in `pfn/configs/`."""
    path = Path(name_or_path)
    if not path.is_file():
        path = CONFIG_DIR / f"{name_or_path}.json"
    if not path.is_file():
        known = sorted(p.stem for p in CONFIG_DIR.glob("*.json"))
        raise SystemExit(f"pfn train: no config file {name_or_path!r} (a path, or one of {known})")
    cfg = json.loads(path.read_text())
    missing = {"prior", "model", "train"} - set(cfg)
    if missing:
        raise SystemExit(f"pfn train: {path} lacks the sections {sorted(missing)}")
    return cfg


def cmd_train(args: argparse.Namespace) -> None:
    from pfn.config import ModelConfig, TrainConfig
    from pfn.training import train
    from priors import prior_from_dict

    cfg = load_run_config(args.config)
    overrides = {k: v for k, v in (("steps", args.steps), ("device", args.device)) if v is not None}
    train_cfg = TrainConfig.from_dict({**cfg["train"], **overrides})
    out = Path(args.out or Path("runs") / Path(args.config).stem)
    model = train(prior_from_dict(cfg["prior"]), ModelConfig.from_dict(cfg["model"]), train_cfg, out,
                  stop_after=args.stop_after)
    rec = model.info.get("record", {})
    print(f"saved {out}: steps={rec.get('steps')} train_loss={rec.get('train_loss'):.4f} "
          f"val_loss={rec.get('val_loss') or float('nan'):.4f} wall_time={rec.get('wall_time_s', 0):.0f}s")


def cmd_list(args: argparse.Namespace) -> None:
    from pfn.checkpoint import PRETRAINED_DIR, read_manifest

    models = read_manifest()["models"]
    if not models:
        print(f"no shipped models in {PRETRAINED_DIR}")
    for name, entry in sorted(models.items()):
        config = json.loads((PRETRAINED_DIR / name / "config.json").read_text())
        size = sum(f["size"] for f in entry["files"])
        rec = config.get("record", {})
        print(f"{name}: {size / 2**20:.1f} MiB, prior {config.get('prior', {}).get('type')}, "
              f"{config['model']['n_layers']} layers x {config['model']['d_model']}, "
              f"steps {rec.get('steps')}, val NLL {rec.get('val_loss')}, "
              f"trained {rec.get('wall_time_s', 0) / 60:.1f} min on {rec.get('device')}")
        if "command" in config:
            print(f"  reproduce: {config['command']}")


def cmd_ship(args: argparse.Namespace) -> None:
    from pfn.checkpoint import CONFIG, PRETRAINED_DIR, WEIGHTS, load, write_manifest

    load(args.run)  # refuses a broken checkpoint before anything is copied
    dest = PRETRAINED_DIR / args.name
    dest.mkdir(parents=True, exist_ok=True)
    config = json.loads((Path(args.run) / CONFIG).read_text())
    config["command"] = args.command or (f"pfn train {args.config or args.name} --out {args.run} && "
                                         f"pfn ship {args.run} {args.name}")
    (dest / CONFIG).write_text(json.dumps(config, indent=1))
    (dest / WEIGHTS).write_bytes((Path(args.run) / WEIGHTS).read_bytes())
    write_manifest([args.name])
    print(f"shipped {args.run} as {dest} and updated {PRETRAINED_DIR / 'MANIFEST.json'}")


def cmd_demo(args: argparse.Namespace) -> None:
    from pfn.demo import run_demo
    from pfn.tabular.demo import run_tabular_demo

    run_demo(Path(args.out))
    run_tabular_demo()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="pfn", description="Prior-data fitted networks.")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("train", help="train a PFN from a JSON config")
    p.add_argument("config", help="path to a JSON config, or a name in pfn/configs (e.g. gp)")
    p.add_argument("--out", help="checkpoint folder (default runs/<config name>); resumes if it holds a run")
    p.add_argument("--steps", type=int, help="override the number of steps")
    p.add_argument("--device", help="override the device (auto, cpu, cuda)")
    p.add_argument("--stop-after", type=int, help="stop (with a resumable checkpoint) after this many steps")
    p.set_defaults(func=cmd_train)
    p = sub.add_parser("list", help="list shipped models")
    p.set_defaults(func=cmd_list)
    p = sub.add_parser("ship", help="copy a trained checkpoint into pretrained/ and update the manifest")
    p.add_argument("run", help="checkpoint folder written by pfn train")
    p.add_argument("name", help="name of the shipped model (folder in pretrained/)")
    p.add_argument("--config", help="config the run was trained with (default: NAME)")
    p.add_argument("--command", help="the full command that reproduces the run, if not the default "
                                     "'pfn train CONFIG --out RUN && pfn ship RUN NAME'")
    p.set_defaults(func=cmd_ship)
    p = sub.add_parser("demo", help="shipped GP-PFN on a real signal (with a plot), tabular classifier on a real table")
    p.add_argument("--out", default="demo_output", help="folder for the plot")
    p.set_defaults(func=cmd_demo)
    args = parser.parse_args(argv)
    args.func(args)


if __name__ == "__main__":
    main(sys.argv[1:])

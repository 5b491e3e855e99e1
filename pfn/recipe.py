"""Recipes: the whole making of a shipped model in one committed file, replayed by `pfn reproduce NAME`.

A recipe `pfn/recipes/NAME.json` lists, in order, the commands that made `pretrained/NAME`, exactly as
they were run (a schedule changed mid-run, a stage continued from the model shipped before it):

    {"note": "optional: where it was trained, what to add elsewhere",
     "stages": [{"train": "gp-deepen", "out": "runs/gp-deepen", "steps": 9000, "stop_after": 1250},
                {"train": "gp-deepen", "out": "runs/gp-deepen", "allow_change": ["steps"]},
                {"ship": "runs/gp-deepen", "config": "gp-deepen", "force": true}]}

A train stage is `pfn train CONFIG --out RUN [--steps N] [--stop-after N] [--allow-change F,G]` (CONFIG a
name in `pfn/configs/` or a path; `init_from` lives in the config); a ship stage is `pfn ship RUN NAME
[--config CONFIG] [--force]`, always under the recipe's name. The last stage ships. Replayed again (after an
interruption or to the end), a stage with `stop_after` whose run already stands at or past that step is
skipped (`replayed_past`); every other stage resumes its run or says it is complete. Configs that no
recipe uses are experiments and live in `pfn/configs/experiments/`.
"""

from __future__ import annotations

import json
import shlex
from dataclasses import dataclass
from pathlib import Path
from typing import Any

RECIPE_DIR = Path(__file__).resolve().parent / "recipes"
TRAIN_FIELDS = {"train": str, "out": str, "steps": int, "stop_after": int, "allow_change": list}
SHIP_FIELDS = {"ship": str, "config": str, "force": bool}


@dataclass(frozen=True)
class Recipe:
    """A validated recipe: `name` (the shipped model it makes), its file, its stages and an optional note."""

    name: str
    path: Path
    stages: tuple[dict[str, Any], ...]
    note: str | None = None


def recipe_names() -> list[str]:
    """The names of the committed recipes (one per shipped model), sorted."""
    return sorted(p.stem for p in RECIPE_DIR.glob("*.json"))


def find_recipe(name: str) -> Path | None:
    """The committed recipe of the shipped model `name`, or None if it has none."""
    path = RECIPE_DIR / f"{name}.json"
    return path if path.is_file() else None


def load_recipe(name_or_path: str) -> Recipe:
    """Reads and validates a recipe: a shipped model's name (`pfn/recipes/NAME.json`) or a JSON file's path,
    whose stem is then the shipped name.

    Raises:
        ValueError: naming the file (and stage) when it is missing, not JSON, or not a recipe.
    """
    path = Path(name_or_path)
    if not path.is_file():
        path = RECIPE_DIR / f"{name_or_path}.json"
    if not path.is_file():
        raise ValueError(f"no recipe {name_or_path!r}: give a shipped model's name (one of {recipe_names()}) "
                         "or the path of a recipe JSON file")
    try:
        content = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ValueError(f"{path} is not a valid JSON recipe: {err}") from None
    if not isinstance(content, dict) or not isinstance(content.get("stages"), list) or not content["stages"]:
        raise ValueError(f"{path} must hold a JSON object with a non-empty list 'stages' (see pfn/recipe.py)")
    if set(content) - {"stages", "note"} or not isinstance(content.get("note", ""), str):
        raise ValueError(f"{path}: a recipe holds 'stages' and optionally a text 'note', not {sorted(content)}")
    for i, stage in enumerate(content["stages"], 1):
        _check_stage(path, i, stage)
    if "ship" not in content["stages"][-1]:
        raise ValueError(f"{path}: the last stage must ship the model ({{\"ship\": RUN}})")
    return Recipe(path.stem, path, tuple(content["stages"]), content.get("note"))


def _check_stage(path: Path, index: int, stage: Any) -> None:
    """Raises a ValueError naming the file and the stage unless `stage` is a train or a ship stage."""
    kinds = [kind for kind in ("train", "ship") if isinstance(stage, dict) and kind in stage]
    if len(kinds) != 1:
        raise ValueError(f"{path}: stage {index} must be an object with either 'train' or 'ship', got {stage!r}")
    fields = TRAIN_FIELDS if kinds[0] == "train" else SHIP_FIELDS
    unknown = set(stage) - set(fields)
    if unknown:
        raise ValueError(f"{path}: stage {index} has unknown fields {sorted(unknown)}; a {kinds[0]} stage takes "
                         f"{sorted(fields)}")
    if kinds[0] == "train" and "out" not in stage:
        raise ValueError(f"{path}: train stage {index} needs 'out', the run folder")
    for key, value in stage.items():
        wrong_type = type(value) is not fields[key]  # exact: true is not a step count
        if wrong_type or (key == "allow_change" and not (value and all(isinstance(v, str) for v in value))):
            raise ValueError(f"{path}: stage {index} field {key!r}={value!r} must be "
                             f"{'a non-empty list of field names' if key == 'allow_change' else fields[key].__name__}")


def replayed_past(stage: dict[str, Any]) -> int | None:
    """The step at which the run of a train stage with `stop_after` already stands, when it is at or past that
    step (an earlier replay went on to the stages after it, e.g. with the schedule changed), else None.

    Such a stage is done: run again, its `--steps` would differ from the run's changed schedule and be refused.
    """
    if "train" not in stage or "stop_after" not in stage:
        return None
    from pfn.checkpoint import STEP_PATTERN, step_folders

    steps = step_folders(Path(stage["out"]))
    newest = int(STEP_PATTERN.fullmatch(steps[-1].name).group(1)) if steps else 0
    return newest if newest >= stage["stop_after"] else None


def stage_argv(recipe: Recipe, stage: dict[str, Any], device: str | None = None, force: bool = False) -> list[str]:
    """The `pfn` arguments of one stage (without the program name), in the order they were run.

    Args:
        device: Added as `--device` to a train stage (e.g. "cpu" for a recipe trained on a GPU).
        force: Adds `--force` to a ship stage that lacks it.
    """
    if "ship" in stage:
        argv = ["ship", stage["ship"], recipe.name]
        argv += ["--config", stage["config"]] if "config" in stage else []
        return argv + (["--force"] if stage.get("force") or force else [])
    argv = ["train", stage["train"], "--out", stage["out"]]
    argv += ["--steps", str(stage["steps"])] if "steps" in stage else []
    argv += ["--stop-after", str(stage["stop_after"])] if "stop_after" in stage else []
    argv += ["--allow-change", ",".join(stage["allow_change"])] if "allow_change" in stage else []
    return argv + (["--device", device] if device else [])


def recipe_commands(recipe: Recipe, device: str | None = None, force: bool = False) -> list[str]:
    """The recipe's stages as shell commands (`pfn train ...`, `pfn ship ...`), one per stage."""
    return [f"pfn {shlex.join(stage_argv(recipe, stage, device, force))}" for stage in recipe.stages]

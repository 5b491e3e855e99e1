"""A training run's folder: atomic checkpoints of the whole training state, resume checks, the lineage.

Layout of a run folder `out/` (`pfn.train(..., out_dir=out)`, `pfn train CONFIG --out out`):

    out/step-<n>/                    the newest complete checkpoint, n = steps done (8 digits)
        model.safetensors            the model: `pfn.load(out)` follows the run folder to here
        config.json                  architecture, head state, prior, train config, record (lineage)
        train_state.safetensors      AdamW moments
        train_state.json             step, AdamW param groups, number of ranks
        rng_rank<r>.safetensors      each rank's prior-sampling generator
        checksums.json               sha256 and size of every file above, written last
    out/.tmp-<n>/                    a checkpoint being written; never read, removed by the next save

Every checkpoint is written whole into `.tmp-<n>/` and then renamed to `step-<n>/`: the rename
is the commit, so a run killed at any moment resumes from its newest complete checkpoint and
never from a mix of two. Older checkpoints are removed after the rename.

A checkpoint's record (`config.json["record"]`) describes the current training stage (steps,
tables seen, wall time, device, final train/val loss, deliberate config changes) and keeps the
earlier stages of the model (`--init-from`) in `record["lineage"]`; `stages` lists them all.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Collection
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file
from torch import nn

from pfn import checkpoint
from pfn.checkpoint import step_folders
from pfn.config import ModelConfig, TrainConfig
from priors import prior_from_dict

STATE_TENSORS, STATE_JSON, TMP_PREFIX = "train_state.safetensors", "train_state.json", ".tmp-"
STAGE_KEYS = ("prior", "model", "train", "command")


def _rng_file(rank: int) -> str:
    return f"rng_rank{rank}.safetensors"


def open_run(out: Path) -> Path | None:
    """The newest checkpoint of the run in folder `out` (created if absent), or None for a new run.

    Raises:
        ValueError: if `out` is a file, or a folder that holds something other than a run.
    """
    if out.exists() and not out.is_dir():
        raise ValueError(f"the output folder {out} is a file; pass a folder for the run")
    out.mkdir(parents=True, exist_ok=True)
    steps = step_folders(out)
    if steps:
        return steps[-1]
    others = sorted(p.name for p in out.iterdir() if not p.name.startswith(TMP_PREFIX))
    if others:
        raise ValueError(f"the output folder {out} holds no training run but other files ({', '.join(others[:5])}); "
                         "pass an empty or new folder (to continue a checkpoint, use it as init_from / --init-from)")
    return None


# --- saving and restoring the training state ----------------------------------------------------

def save_run_checkpoint(out: Path, step: int, model: nn.Module, opt: torch.optim.Optimizer, gen: torch.Generator,
                        rank: int, world: int) -> None:
    """Writes the whole training state at `step` as `out/step-<step>/`, atomically (see the module doc).

    Every rank calls this; rank 0 writes all but the other ranks' generator states.
    """
    tmp, final = out / f"{TMP_PREFIX}{step:08d}", out / f"step-{step:08d}"
    if rank == 0:
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir()
    _barrier(world)
    checkpoint.write_tensors(tmp / _rng_file(rank), {"state": gen.get_state()})
    if rank == 0:
        checkpoint.write_model_files(model, tmp)
        sd = opt.state_dict()
        checkpoint.write_tensors(tmp / STATE_TENSORS, {
            f"opt.{i}.{k}": v for i, st in sd["state"].items() for k, v in st.items()})
        checkpoint.write_json(tmp / STATE_JSON, {"step": step, "param_groups": sd["param_groups"], "ranks": world})
    _barrier(world)
    if rank == 0:
        checkpoint.write_checksums(tmp)
        tmp.rename(final)
        remove_stale(out, keep=final)
    _barrier(world)


def remove_stale(out: Path, keep: Path) -> None:
    """Removes every checkpoint of the run in `out` but `keep`, and unfinished `.tmp-<n>/` folders."""
    stale = [p for p in step_folders(out) if p != keep] + [p for p in out.glob(f"{TMP_PREFIX}*") if p.is_dir()]
    for path in stale:
        shutil.rmtree(path)


def restore_train_state(folder: Path, opt: torch.optim.Optimizer, gen: torch.Generator, rank: int,
                        world: int) -> int:
    """Loads the optimiser and this rank's generator state of a verified run checkpoint; returns its step."""
    meta = json.loads((folder / STATE_JSON).read_text())
    if meta["ranks"] != world:
        raise ValueError(f"the run in {folder.parent} was trained with {meta['ranks']} rank(s); resume it with the "
                         f"same number (now {world})")
    state: dict[int, dict[str, torch.Tensor]] = {}
    for key, value in load_file(str(folder / STATE_TENSORS)).items():
        _, idx, name = key.split(".", 2)
        state.setdefault(int(idx), {})[name] = value
    opt.load_state_dict({"state": state, "param_groups": meta["param_groups"]})
    gen.set_state(load_file(str(folder / _rng_file(rank)))["state"])
    return meta["step"]


def _barrier(world: int) -> None:
    if world > 1:
        torch.distributed.barrier()


# --- resume checks ------------------------------------------------------------------------------

def _jsonable(obj: Any) -> Any:
    return json.loads(json.dumps(obj))


def _differences(section: str, old: dict[str, Any], new: dict[str, Any]) -> list[tuple[str, Any, Any]]:
    return [(f"{section}.{k}", old.get(k), new.get(k)) for k in sorted(set(old) | set(new)) if old.get(k) != new.get(k)]


def _describe(diffs: list[tuple[str, Any, Any]]) -> str:
    return "; ".join(f"{field}: {json.dumps(old)} -> {json.dumps(new)}" for field, old, new in diffs)


def _saved_prior(saved: dict[str, Any]) -> dict[str, Any]:
    """The saved prior config with the defaults of fields added since (as the prior's `to_dict` writes it)."""
    try:
        return _jsonable(prior_from_dict(saved["prior"]).to_dict())
    except (KeyError, TypeError, ValueError):
        return saved.get("prior") or {}


def _allowed(field: str, allow_change: Collection[str]) -> bool:
    section, _, name = field.partition(".")
    return (section == "prior" and "prior" in allow_change) or (section == "train" and name in allow_change)


def resume_changes(saved: dict[str, Any], prior: dict[str, Any], model_config: ModelConfig, cfg: TrainConfig,
                   allow_change: Collection[str], where: Path) -> list[dict[str, Any]]:
    """Compares a run's saved config with the one it is resumed with.

    Args:
        saved: The `config.json` of the run's newest checkpoint.
        prior, model_config, cfg: The configuration of the resumed run (`prior` as `to_dict()`).
        allow_change: Fields that may differ: `TrainConfig` field names, and "prior".
        where: The run's folder (for messages).

    Returns:
        The allowed differences, as `{"field", "old", "new"}` dicts (e.g. field "train.steps").

    Raises:
        ValueError: naming every differing field, if the architecture differs or another field does
            and is not allowed.
    """
    unknown = set(allow_change) - {"prior", *TrainConfig().to_dict()}
    if unknown:
        raise ValueError(f"cannot allow a change of {sorted(unknown)}: a run may change its prior or a train field "
                         f"({sorted(TrainConfig().to_dict())})")
    try:
        old_model = ModelConfig.from_dict(saved["model"]).to_dict()
        old_train = TrainConfig.from_dict(saved["train"]).to_dict()
    except (KeyError, TypeError, ValueError) as err:
        raise ValueError(f"{where} holds a run whose config cannot be read ({err}); pass another output "
                         "folder") from None
    model_diffs = _differences("model", old_model, model_config.to_dict())
    if model_diffs:
        raise ValueError(f"{where} holds a run of another architecture ({_describe(model_diffs)}); a run cannot "
                         "change its architecture: pass another output folder")
    diffs = _differences("train", old_train, _jsonable(cfg.to_dict()))
    diffs += _differences("prior", _saved_prior(saved), _jsonable(prior))
    refused = [d for d in diffs if not _allowed(d[0], allow_change)]
    if refused:
        names = sorted({"prior" if f.startswith("prior.") else f.removeprefix("train.") for f, _, _ in refused})
        raise ValueError(f"{where} holds a run with another configuration ({_describe(refused)}); resume it with the "
                         f"same configuration, pass another output folder for a new run, or continue it with the "
                         f"change: --allow-change {' '.join(names)} (allow_change={names}), recorded in its lineage")
    return [{"field": field, "old": old, "new": new} for field, old, new in diffs]


# --- record and lineage -------------------------------------------------------------------------

def stages(config: dict[str, Any]) -> list[dict[str, Any]]:
    """Every training stage of a checkpoint's model, oldest first.

    Args:
        config: A checkpoint's `config.json`.

    Returns:
        Dicts with the stage's "prior", "model", "train" (its configuration) and "record" (steps,
        tables, wall_time_s, device, train_loss, val_loss, ...). A record without "lineage"
        (models trained before lineages were kept) is a single stage.
    """
    record = dict(config.get("record") or {})
    earlier = record.pop("lineage", [])
    current = {k: config[k] for k in STAGE_KEYS if k in config}
    return [*earlier, {**current, "record": record}]


def tables_of(stage: dict[str, Any]) -> int:
    """Datasets a stage trained on (computed from its config for records that predate the count)."""
    record = stage["record"]
    if "tables" in record:
        return record["tables"]
    train = stage.get("train") or {}
    return (record.get("steps") or 0) * train.get("batch_size", 0) * train.get("accumulate", 1)


def cpu_hours(stage_list: list[dict[str, Any]]) -> float:
    """Wall-clock hours of the stages that ran on a CPU machine."""
    return sum(s["record"].get("wall_time_s", 0.0) for s in stage_list
               if str(s["record"].get("device", "")).startswith("cpu")) / 3600


def describe_record(record: dict[str, Any]) -> str:
    """One line: steps, tables, losses, wall time and device of a record (missing values as "-")."""
    def num(key: str, fmt: str) -> str:
        return "-" if record.get(key) is None else format(record[key], fmt)

    return (f"steps={record.get('steps', '-')} tables={record.get('tables', '-')} "
            f"train_loss={num('train_loss', '.4f')} val_loss={num('val_loss', '.4f')} "
            f"wall_time={num('wall_time_s', '.0f')}s device={record.get('device', '-')}")


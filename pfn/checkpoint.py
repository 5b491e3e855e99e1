"""Checkpoints: a folder with `model.safetensors`, `config.json` and `checksums.json`; never pickles.

`checksums.json` holds the sha256 and size of every other file of the folder and is written
last; every load verifies it, so a missing, truncated or modified file fails with a message
naming it, whether the folder is loaded by a shipped name or by its path. A record that leaves
out a file of the folder (or one that a load reads, such as `model.safetensors`) is refused
too: no file is read unverified.

A training run's folder (`pfn.train(..., out_dir)`, `pfn train --out`) keeps its newest
complete checkpoint in a subfolder `step-<n>/` (see `pfn.run_state`); `load` and
`load_folder` follow a run folder to it.

Shipped checkpoints live in `PRETRAINED_DIR/<name>/` and are listed, with the sha256 and size
of every file, in `PRETRAINED_DIR/MANIFEST.json`. A string that is a shipped name always
means the shipped model, even where the working directory has a folder of that name: load
such a folder by `Path("gp")` or `"./gp"`. `PRETRAINED_DIR` is `$PFN_PRETRAINED_DIR` if set,
else the repository's `pretrained/`, else the copy installed inside the package
(`pfn/_pretrained`, see `setup.py`).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Callable, Collection
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import nn

from pfn.architectures import build_model
from pfn.config import ModelConfig
from pfn.device import resolve_device

WEIGHTS, CONFIG, CHECKSUMS, MANIFEST = "model.safetensors", "config.json", "checksums.json", "MANIFEST.json"
NAME_PATTERN = re.compile(r"[a-z0-9][a-z0-9_-]*")
STEP_PATTERN = re.compile(r"step-(\d+)")


def _default_pretrained_dir() -> Path:
    if os.environ.get("PFN_PRETRAINED_DIR"):
        return Path(os.environ["PFN_PRETRAINED_DIR"])
    repo = Path(__file__).resolve().parent.parent / "pretrained"
    return repo if (repo / MANIFEST).is_file() else Path(__file__).resolve().parent / "_pretrained"


PRETRAINED_DIR = _default_pretrained_dir()


class CheckpointError(RuntimeError):
    """A checkpoint file is missing, truncated, tampered with or unreadable."""


def sha256_of(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


# --- writing ------------------------------------------------------------------------------------

def write_file(path: Path, write: Callable[[Path], None]) -> None:
    """Writes `path` by `write(tmp)` and a rename: a reader sees the old file or the new one, never a part.

    Every file of a checkpoint (and of a training run's state) is written through this function.
    """
    tmp = path.with_name(path.name + ".tmp")
    write(tmp)
    os.replace(tmp, path)


def write_json(path: Path, obj: Any) -> None:
    write_file(path, lambda p: p.write_text(json.dumps(obj, indent=1) + "\n"))


def write_tensors(path: Path, tensors: dict[str, torch.Tensor]) -> None:
    cpu = {k: v.detach().cpu().contiguous() for k, v in tensors.items()}
    write_file(path, lambda p: save_file(cpu, str(p)))


def write_model_files(model: nn.Module, folder: Path) -> None:
    """Writes `model.safetensors` and `config.json` (architecture, the head's state, `model.info`)."""
    config = {"model": model.config.to_dict(), "head_state": model.head.saved_state(), **model.info}
    write_tensors(folder / WEIGHTS, model.state_dict())
    write_json(folder / CONFIG, config)


def write_checksums(folder: str | Path) -> dict[str, dict[str, Any]]:
    """Records the sha256 and size of every file in `folder` in `folder/checksums.json`; returns the record."""
    folder = Path(folder)
    files = sorted(p for p in folder.iterdir() if p.is_file() and p.name != CHECKSUMS and p.suffix != ".tmp")
    record = {p.name: {"sha256": sha256_of(p), "size": p.stat().st_size} for p in files}
    write_json(folder / CHECKSUMS, record)
    return record


def save_checkpoint(model: nn.Module, folder: str | Path) -> Path:
    """Saves `model` as a checkpoint folder (weights, config, checksums written last); returns the folder."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    write_model_files(model, folder)
    write_checksums(folder)
    return folder


# --- verifying ----------------------------------------------------------------------------------

def _verify_file(path: Path, sha256: str, size: int, record: Path, remedy: str) -> None:
    if not path.is_file():
        raise CheckpointError(f"{path} is missing; {remedy}")
    actual = path.stat().st_size
    if actual != size:
        raise CheckpointError(f"{path} has {actual} bytes but {record} says {size}: the file is truncated or "
                              f"replaced; {remedy}")
    if sha256_of(path) != sha256:
        raise CheckpointError(f"{path} does not match its sha256 in {record}: the file was modified; {remedy}")


def _read_json(path: Path, what: str, remedy: str) -> Any:
    try:
        return json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise CheckpointError(f"{path} is not a valid {what} ({err}); {remedy}") from None


def _trust_remedy(folder: Path) -> str:
    return f"if you trust the folder, record its checksums with pfn.checkpoint.write_checksums({str(folder)!r})"


def _check_coverage(folder: Path, record: dict[str, Any], required: Collection[str]) -> None:
    """Raises `CheckpointError` naming every file of `folder` (and every name in `required`) that `record`
    leaves out."""
    present = {p.name for p in folder.iterdir() if p.is_file() and p.name != CHECKSUMS and p.suffix != ".tmp"}
    uncovered = sorted((present | set(required)) - set(record))
    if uncovered:
        names = ", ".join(str(folder / name) for name in uncovered)
        raise CheckpointError(f"{names} {'has' if len(uncovered) == 1 else 'have'} no entry in {folder / CHECKSUMS}, "
                              f"so the checkpoint cannot be verified; {_trust_remedy(folder)}")


def verify_checksums(folder: Path, required: Collection[str] = (CONFIG, WEIGHTS)) -> None:
    """Checks `folder/checksums.json` and every file it lists.

    The record must cover every file of the folder and every name in `required` (the files a
    load reads); a record that leaves one out (e.g. `{}`) is refused like a modified file.

    Raises:
        CheckpointError: naming the first bad file, or the files the record leaves out.
    """
    record_path = folder / CHECKSUMS
    remedy = "the checkpoint is damaged; restore it from where it came from (or retrain)"
    if not record_path.is_file():
        raise CheckpointError(f"{record_path} is missing, so the checkpoint cannot be verified; "
                              f"{_trust_remedy(folder)}")
    record = _read_json(record_path, "checksum record", remedy)
    if not isinstance(record, dict):
        raise CheckpointError(f"{record_path} is not a valid checksum record (not a JSON object); {remedy}")
    _check_coverage(folder, record, required)
    try:
        for name, entry in record.items():
            _verify_file(folder / name, entry["sha256"], entry["size"], record_path, remedy)
    except (KeyError, TypeError) as err:
        raise CheckpointError(f"{record_path} is not a valid checksum record ({err!r}); {remedy}") from None


def _root(root: str | Path | None) -> Path:
    # Resolved at call time, so that changing `PRETRAINED_DIR` (e.g. in tests) takes effect.
    return PRETRAINED_DIR if root is None else Path(root)


def read_manifest(root: str | Path | None = None) -> dict[str, Any]:
    """The manifest of the shipped models (`{"models": {name: {"files": [...]}}}`); empty if there is none."""
    path = _root(root) / MANIFEST
    if not path.exists():
        return {"models": {}}
    manifest = _read_json(path, "manifest", f"restore it from the repository (git checkout -- {path})")
    if not isinstance(manifest, dict) or not isinstance(manifest.get("models"), dict):
        raise CheckpointError(f"{path} is not a valid manifest (no 'models' table); restore it from the repository")
    return manifest


def write_manifest(names: list[str], root: str | Path | None = None) -> dict[str, Any]:
    """Records the sha256 and size of every file of the named shipped models."""
    root = _root(root)
    manifest = read_manifest(root)
    for name in names:
        files = sorted(p for p in (root / name).iterdir() if p.is_file())
        manifest["models"][name] = {"files": [
            {"path": f"{name}/{p.name}", "sha256": sha256_of(p), "size": p.stat().st_size} for p in files]}
    (root / MANIFEST).write_text(json.dumps(manifest, indent=1, sort_keys=True) + "\n")
    return manifest


def verify_shipped(name: str, root: str | Path | None = None) -> Path:
    """Checks every file of shipped model `name` against the manifest; returns its folder."""
    root = _root(root)
    entry = read_manifest(root)["models"].get(name)
    if entry is None:
        raise CheckpointError(f"no shipped model named {name!r} in {root / MANIFEST}")
    try:
        for item in entry["files"]:
            path = root / item["path"]
            _verify_file(path, item["sha256"], item["size"], root / MANIFEST,
                         f"restore it from the repository (git checkout -- {path})")
    except (KeyError, TypeError) as err:
        raise CheckpointError(f"{root / MANIFEST} has an invalid entry for {name!r} ({err!r}); restore it from "
                              "the repository") from None
    return root / name


# --- finding and loading ------------------------------------------------------------------------

def step_folders(run: Path) -> list[Path]:
    """The complete checkpoints `step-<n>/` of a training run's folder, oldest first."""
    found = [p for p in run.iterdir() if p.is_dir() and STEP_PATTERN.fullmatch(p.name)] if run.is_dir() else []
    return sorted(found, key=lambda p: int(STEP_PATTERN.fullmatch(p.name).group(1)))


def checkpoint_folder(path: Path) -> Path:
    """`path` itself if it is a checkpoint folder, else the newest checkpoint of the training run in `path`."""
    if (path / CONFIG).exists() or (path / CHECKSUMS).exists():
        return path
    steps = step_folders(path)
    if not steps:
        raise CheckpointError(f"{path} is neither a checkpoint folder (no {CONFIG}) nor a training run's folder "
                              "(no step-<n>/ checkpoint)")
    return steps[-1]


def _shipped_name(folder: Path) -> str | None:
    """The shipped name of `folder` if it is one of the manifest's folders, else None."""
    root = PRETRAINED_DIR.resolve()
    if folder.resolve().parent != root or not (root / MANIFEST).is_file():
        return None
    return folder.name if folder.name in read_manifest()["models"] else None


def resolve(name_or_path: str | os.PathLike[str]) -> Path:
    """The verified-against-the-manifest folder of a shipped name, or the checkpoint folder at a path.

    A `str` that is a shipped name resolves to the shipped model; anything else is a path (a
    checkpoint folder or a training run's folder). A shipped folder given by its path is checked
    against the manifest too.

    Raises:
        TypeError: if `name_or_path` is neither a `str` nor a path (e.g. None).
        CheckpointError: if it names no shipped model and no checkpoint folder.
    """
    if not isinstance(name_or_path, (str, os.PathLike)):
        raise TypeError(f"name_or_path must be a shipped model's name (one of {sorted(read_manifest()['models'])}) "
                        f"or a folder's path (str or pathlib.Path), got {name_or_path!r}")
    if isinstance(name_or_path, str) and NAME_PATTERN.fullmatch(name_or_path):
        if name_or_path in read_manifest()["models"]:
            return verify_shipped(name_or_path)
    path = Path(name_or_path)
    if not path.is_dir():
        raise CheckpointError(f"{str(name_or_path)!r} is neither a checkpoint folder nor a shipped model "
                              f"(shipped: {sorted(read_manifest()['models'])})")
    folder = checkpoint_folder(path)
    shipped = _shipped_name(folder)
    if shipped is not None:
        verify_shipped(shipped)
    return folder


def load(name_or_path: str | os.PathLike[str], device: str | torch.device = "cpu") -> nn.Module:
    """Loads a shipped model by name or a checkpoint (or training run) folder, verifying its files first.

    Args:
        name_or_path: A shipped model's name (e.g. "gp"), or the path of a checkpoint or run folder.
        device: "cpu", "cuda", "cuda:1", ..., "auto" (the GPU where there is one), or a `torch.device`.

    Returns:
        The model in eval mode on `device`: a `PFN`, or the class its `config.architecture` names
        (e.g. a `pfn.DistributionTransformer`).

    Raises:
        TypeError: if `name_or_path` is neither a name nor a path.
        ValueError: if `device` is not a torch device or not available here (`pfn.device.resolve_device`).
        CheckpointError: if no such model exists, or a file of it is missing, damaged or unverified.
    """
    device = resolve_device(device)
    return load_folder(resolve(name_or_path), device)


def read_checkpoint(folder: Path) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """Verifies a checkpoint folder and reads it.

    Returns:
        Its `config.json` (a dict with at least "model" and "head_state") and its weights.
    """
    verify_checksums(folder)
    config = _read_json(folder / CONFIG, "checkpoint config", "it cannot be loaded")
    if not isinstance(config, dict) or not {"model", "head_state"} <= set(config):
        raise CheckpointError(f"{folder / CONFIG} is not a valid checkpoint config: it needs 'model' and "
                              "'head_state'")
    if not (folder / WEIGHTS).is_file():
        raise CheckpointError(f"{folder / WEIGHTS} is missing; a checkpoint folder needs {CONFIG} and {WEIGHTS}")
    try:
        state = load_file(str(folder / WEIGHTS))
    except (SafetensorError, OSError, ValueError) as err:
        raise CheckpointError(f"{folder / WEIGHTS} cannot be read ({err}); it may be truncated or corrupt") from None
    return config, state


def model_from(config: dict[str, Any], state: dict[str, torch.Tensor], folder: Path) -> nn.Module:
    """Builds the model of `config["model"]["architecture"]` (train mode, on the CPU) from a checkpoint's config
    and weights read from `folder`."""
    try:
        model = build_model(ModelConfig.from_dict(config["model"]), config["head_state"],
                            {k: v for k, v in config.items() if k not in ("model", "head_state")})
    except (TypeError, ValueError) as err:  # e.g. an unknown field, borders that do not match n_buckets
        raise CheckpointError(f"{folder / CONFIG} is not a valid checkpoint config: {err}") from None
    try:
        model.load_state_dict(state)
    except RuntimeError as err:
        raise CheckpointError(f"{folder / WEIGHTS} does not fit the architecture in {folder / CONFIG}: {err}") from None
    return model


def load_folder(folder: str | Path, device: str | torch.device = "cpu") -> nn.Module:
    """Loads the checkpoint in `folder` (or the newest one of the training run in `folder`), verified, on
    `device` (as `load` takes it); returns the model in eval mode."""
    device = resolve_device(device)
    folder = checkpoint_folder(Path(folder))
    return model_from(*read_checkpoint(folder), folder).to(device).eval()

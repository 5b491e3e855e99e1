"""Checkpoints: a folder with `model.safetensors` and `config.json`; never pickles.

Shipped checkpoints live in `pretrained/<name>/` and are listed with the sha256 and size
of every file in `pretrained/MANIFEST.json`; loading one verifies them first.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from pfn.config import ModelConfig
from pfn.model import PFN

WEIGHTS, CONFIG = "model.safetensors", "config.json"
PRETRAINED_DIR = Path(os.environ.get("PFN_PRETRAINED_DIR", Path(__file__).resolve().parent.parent / "pretrained"))
MANIFEST = "MANIFEST.json"


class CheckpointError(RuntimeError):
    """A checkpoint file is missing, truncated, tampered with or unreadable."""


def sha256_of(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def save_checkpoint(model: PFN, folder: str | Path) -> Path:
    """Writes `model.safetensors` and `config.json` (architecture, the head's state, `model.info`)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    config = {"model": model.config.to_dict(), "head_state": model.head.saved_state(), **model.info}
    _atomic_write(folder / WEIGHTS, lambda p: save_file(state, str(p)))
    _atomic_write(folder / CONFIG, lambda p: p.write_text(json.dumps(config, indent=1)))
    return folder


def _atomic_write(path: Path, write) -> None:
    tmp = path.with_name(path.name + ".tmp")
    write(tmp)
    os.replace(tmp, path)


def _root(root: str | Path | None) -> Path:
    # Resolved at call time, so that changing `PRETRAINED_DIR` (e.g. in tests) takes effect.
    return PRETRAINED_DIR if root is None else Path(root)


def read_manifest(root: str | Path | None = None) -> dict[str, Any]:
    path = _root(root) / MANIFEST
    if not path.exists():
        return {"models": {}}
    return json.loads(path.read_text())


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
    for item in entry["files"]:
        path = root / item["path"]
        if not path.is_file():
            raise CheckpointError(f"{path} is missing; restore it from the repository (git checkout -- {path})")
        size = path.stat().st_size
        if size != item["size"]:
            raise CheckpointError(f"{path} has {size} bytes but the manifest says {item['size']}: the file is "
                                  "truncated or replaced; restore it from the repository")
        if sha256_of(path) != item["sha256"]:
            raise CheckpointError(f"{path} does not match its sha256 in {root / MANIFEST}: the file was modified; "
                                  "restore it from the repository")
    return root / name


def load(name_or_path: str | Path, device: str | torch.device = "cpu") -> PFN:
    """Loads a shipped model by name (verified against the manifest) or a checkpoint folder.

    Returns:
        The `PFN` in eval mode on `device`.
    """
    path = Path(name_or_path)
    if not path.is_dir():
        if str(name_or_path) not in read_manifest()["models"]:
            shipped = sorted(read_manifest()["models"])
            raise CheckpointError(f"{name_or_path!r} is neither a checkpoint folder nor a shipped model "
                                  f"(shipped: {shipped})")
        path = verify_shipped(str(name_or_path))
    return load_folder(path, device)


def load_folder(folder: Path, device: str | torch.device = "cpu") -> PFN:
    """Builds a `PFN` from `folder/config.json` and `folder/model.safetensors`."""
    for fname in (CONFIG, WEIGHTS):
        if not (folder / fname).is_file():
            raise CheckpointError(f"{folder / fname} is missing; a checkpoint folder needs {CONFIG} and {WEIGHTS}")
    try:
        config = json.loads((folder / CONFIG).read_text())
        model_config = ModelConfig.from_dict(config["model"])
        head_state = config["head_state"]
    except (json.JSONDecodeError, KeyError, TypeError, ValueError) as err:
        raise CheckpointError(f"{folder / CONFIG} is not a valid checkpoint config: {err}") from None
    try:
        state = load_file(str(folder / WEIGHTS))
    except (SafetensorError, OSError, ValueError) as err:
        raise CheckpointError(f"{folder / WEIGHTS} cannot be read ({err}); it may be truncated or corrupt") from None
    info = {k: v for k, v in config.items() if k not in ("model", "head_state")}
    try:
        model = PFN(model_config, head_state, info)
    except ValueError as err:  # e.g. borders that do not match n_buckets
        raise CheckpointError(f"{folder / CONFIG} is not a valid checkpoint config: {err}") from None
    try:
        model.load_state_dict(state)
    except RuntimeError as err:
        raise CheckpointError(f"{folder / WEIGHTS} does not fit the architecture in {folder / CONFIG}: {err}") from None
    return model.to(device).eval()

"""Training a PFN on a prior: one loop, readable in one sitting.

`train(prior, model_config, train_config, out_dir)` draws fresh prior batches each step
and minimises the negative log density of the query targets. It supports AdamW with
warm-up and cosine decay, gradient clipping and accumulation, bf16 autocast on GPU, a
progress bar, a held-out validation NLL on fixed prior batches, periodic checkpoints with
exact resume, and DistributedDataParallel under `torchrun` (each rank its own batches).
"""

from __future__ import annotations

import json
import math
import os
import time
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from safetensors.torch import load_file, save_file
from torch.nn.parallel import DistributedDataParallel
from tqdm.auto import tqdm

from pfn.checkpoint import WEIGHTS, _atomic_write, save_checkpoint
from pfn.config import ModelConfig, TrainConfig
from pfn.heads import head_class
from pfn.model import PFN
from priors.batch import Batch

STATE_TENSORS, STATE_JSON = "train_state.safetensors", "train_state.json"


def resolve_device(name: str | torch.device) -> torch.device:
    """`"auto"` is the GPU where there is one, else the CPU; any other name as torch reads it."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def lr_factor(step: int, cfg: TrainConfig) -> float:
    """Linear warm-up to 1, then cosine decay to 0 at `cfg.steps`."""
    if step < cfg.warmup_steps:
        return (step + 1) / cfg.warmup_steps
    progress = (step - cfg.warmup_steps) / max(1, cfg.steps - cfg.warmup_steps)
    return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))


def draw_batch(prior: Any, cfg: TrainConfig, generator: torch.Generator, device: torch.device) -> Batch:
    """One training batch: feature count and context size drawn from `generator`."""
    n_features = int(torch.randint(cfg.min_features, cfg.max_features + 1, (1,), generator=generator, device=device))
    n_context = int(torch.randint(cfg.min_context, cfg.max_context + 1, (1,), generator=generator, device=device))
    return prior.sample(cfg.batch_size, cfg.n_points, n_features, generator=generator, device=device,
                        n_context=n_context)


def initial_head_state(prior: Any, model_cfg: ModelConfig, cfg: TrainConfig,
                       device: torch.device) -> dict[str, Any] | None:
    """The state a fresh head starts from (e.g. bucket borders at quantiles of `cfg.border_samples`
    prior targets, seeded by `cfg.seed`); None for a head without state."""
    def draw_targets() -> torch.Tensor:
        gen = torch.Generator(device=device).manual_seed(cfg.seed + 7919)
        values, n_done = [], 0
        while n_done < cfg.border_samples:
            b = draw_batch(prior, cfg, gen, device)
            values.append(b.target_y.flatten().cpu())
            n_done += b.target_y.numel()
        return torch.cat(values)

    return head_class(model_cfg.head).initial_state(model_cfg, draw_targets)


def init_transformer(model: PFN, folder: Path) -> None:
    """Copies the transformer weights of the checkpoint in `folder` into `model` (same architecture)."""
    prefix = "transformer."
    state = {k[len(prefix):]: v for k, v in load_file(str(folder / WEIGHTS)).items() if k.startswith(prefix)}
    try:
        model.transformer.load_state_dict(state)
    except RuntimeError as err:
        raise ValueError(f"init_from={str(folder)!r}: its transformer does not match this architecture: "
                         f"{err}") from None


def validation_batches(prior: Any, cfg: TrainConfig, device: torch.device) -> list[Batch]:
    gen = torch.Generator(device=device).manual_seed(cfg.seed + 104729)
    return [draw_batch(prior, cfg, gen, device) for _ in range(cfg.val_batches)]


@torch.no_grad()
def validation_nll(model: PFN, batches: list[Batch], autocast) -> float:
    model.eval()
    with autocast():
        losses = [float(model.loss(b)) for b in batches]
    model.train()
    return sum(losses) / max(1, len(losses))


def _rng_file(rank: int) -> str:
    return f"rng_rank{rank}.safetensors"


def _save_train_state(out_dir: Path, step: int, opt: torch.optim.Optimizer, gen: torch.Generator,
                      record: dict[str, Any], rank: int) -> None:
    """Optimizer state (rank 0) and each rank's RNG state, as safetensors + JSON (no pickles)."""
    _atomic_write(out_dir / _rng_file(rank), lambda p: save_file({"state": gen.get_state().cpu()}, str(p)))
    if rank != 0:
        return
    sd = opt.state_dict()
    tensors = {f"opt.{i}.{k}": v.detach().cpu().contiguous() for i, st in sd["state"].items() for k, v in st.items()}
    _atomic_write(out_dir / STATE_TENSORS, lambda p: save_file(tensors, str(p)))
    meta = {"step": step, "param_groups": sd["param_groups"], "record": record}
    _atomic_write(out_dir / STATE_JSON, lambda p: p.write_text(json.dumps(meta)))


def _load_train_state(out_dir: Path, opt: torch.optim.Optimizer, gen: torch.Generator, rank: int) -> tuple[int, dict]:
    meta = json.loads((out_dir / STATE_JSON).read_text())
    state: dict[int, dict[str, torch.Tensor]] = {}
    for key, value in load_file(str(out_dir / STATE_TENSORS)).items():
        _, idx, name = key.split(".", 2)
        state.setdefault(int(idx), {})[name] = value
    opt.load_state_dict({"state": state, "param_groups": meta["param_groups"]})
    gen.set_state(load_file(str(out_dir / _rng_file(rank)))["state"])
    return meta["step"], meta["record"]


def train(
    prior: Any, model_config: ModelConfig, train_config: TrainConfig, out_dir: str | Path | None = None,
    *, progress: bool = True, stop_after: int | None = None,
) -> PFN:
    """Trains a PFN on `prior`; returns the trained model (also saved to `out_dir`).

    If `out_dir` holds the state of an interrupted run of the same config, training
    resumes from it exactly. `stop_after` ends the run early after that many total steps
    (with a checkpoint), as an interruption would.
    """
    cfg = train_config
    distributed = int(os.environ.get("WORLD_SIZE", "1")) > 1
    device = resolve_device(cfg.device)
    rank, world = 0, 1
    if distributed:
        if device.type == "cuda":
            device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
            torch.cuda.set_device(device)
        if not dist.is_initialized():
            dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
        rank, world = dist.get_rank(), dist.get_world_size()
    torch.manual_seed(cfg.seed)  # identical initial weights on every rank
    head_state = initial_head_state(prior, model_config, cfg, device)
    info = {"prior": prior.to_dict(), "train": cfg.to_dict()}
    model = PFN(model_config, head_state, info).to(device)
    ddp = DistributedDataParallel(model) if distributed else model
    decay = [p for n, p in model.named_parameters() if p.dim() >= 2]
    no_decay = [p for n, p in model.named_parameters() if p.dim() < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": cfg.weight_decay},
                             {"params": no_decay, "weight_decay": 0.0}], lr=cfg.lr)
    gen = torch.Generator(device=device).manual_seed(cfg.seed + 1_000_003 * (rank + 1))
    use_amp = cfg.amp and device.type == "cuda"

    def autocast():
        return torch.autocast("cuda", dtype=torch.bfloat16) if use_amp else nullcontext()

    out = Path(out_dir) if out_dir is not None else None
    step, record = 0, {"wall_time_s": 0.0, "train_loss": None, "val_loss": None}
    if out is not None and (out / STATE_JSON).exists():
        model.load_state_dict(load_file(str(out / WEIGHTS)))
        step, record = _load_train_state(out, opt, gen, rank)
    elif cfg.init_from is not None:
        init_transformer(model, Path(cfg.init_from))
    val = validation_batches(prior, cfg, device)
    last = min(cfg.steps, stop_after) if stop_after is not None else cfg.steps
    bar = tqdm(total=cfg.steps, initial=step, disable=not progress or rank != 0, desc="train", unit="step")
    ema, t0, wall0 = None, time.perf_counter(), record["wall_time_s"]
    model.train()
    while step < last:
        for group in opt.param_groups:
            group["lr"] = cfg.lr * lr_factor(step, cfg)
        opt.zero_grad(set_to_none=True)
        total = 0.0
        for micro in range(cfg.accumulate):
            batch = draw_batch(prior, cfg, gen, device)
            sync = micro == cfg.accumulate - 1 or not distributed
            with (nullcontext() if sync else ddp.no_sync()), autocast():
                c = batch.n_context
                logits = ddp(batch.x, batch.y[:, :c], batch.context_mask)
                loss = model.batch_loss(logits, batch)
            (loss / cfg.accumulate).backward()
            total += float(loss.detach()) / cfg.accumulate
        torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        opt.step()
        step += 1
        ema = total if ema is None else 0.98 * ema + 0.02 * total
        record["train_loss"] = ema
        if step % cfg.val_every == 0 or step == cfg.steps:
            record["val_loss"] = validation_nll(model, val, autocast)
        record["wall_time_s"] = wall0 + time.perf_counter() - t0
        bar.update(1)
        val_text = "-" if record["val_loss"] is None else f"{record['val_loss']:.3f}"
        rate = step * cfg.batch_size * cfg.accumulate * world / max(1e-9, record["wall_time_s"])
        bar.set_postfix(loss=f"{ema:.3f}", val=val_text, datasets_per_s=f"{rate:.0f}", refresh=False)
        if out is not None and (step % cfg.checkpoint_every == 0 or step == last):
            _checkpoint(model, out, step, opt, gen, record, device, rank, distributed)
    bar.close()
    if distributed:
        dist.barrier()
    return model.eval()


def _checkpoint(model: PFN, out: Path, step: int, opt, gen, record: dict[str, Any], device: torch.device,
                rank: int, distributed: bool) -> None:
    model.info["record"] = {**record, "steps": step, "device": _device_name(device)}
    if rank == 0:
        out.mkdir(parents=True, exist_ok=True)
        save_checkpoint(model, out)
    if distributed:
        dist.barrier()
    _save_train_state(out, step, opt, gen, record, rank)
    if distributed:
        dist.barrier()


def _device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"cpu ({os.cpu_count()} cores)"

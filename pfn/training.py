"""Training a PFN on a prior: one loop, readable in one sitting.

`train(prior, model_config, train_config, out_dir)` draws fresh prior batches each step
and minimises the negative log density of the query targets. It supports AdamW with
warm-up and cosine decay, gradient clipping and accumulation, bf16 autocast (CPU and GPU,
fp32 master weights; fp32 where the device has no fast bf16, see `choose_amp`), a progress bar,
a held-out validation NLL on fixed prior batches,
atomic checkpoints with exact resume (`pfn.run_state`), continuing a trained model
(`TrainConfig.init_from`) with its lineage, and DistributedDataParallel under `torchrun`
(each rank its own batches).
"""

from __future__ import annotations

import math
import os
import sys
import time
from collections.abc import Collection
from contextlib import nullcontext
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from tqdm.auto import tqdm

from pfn.architectures import build_model
from pfn.checkpoint import model_from, read_checkpoint, resolve
from pfn.config import ModelConfig, TrainConfig
from pfn.device import bf16_is_fast, resolve_device
from pfn.heads import head_class
from pfn.layouts import layout_names, layout_properties
from pfn.run_state import open_run, restore_train_state, resume_changes, save_run_checkpoint, stages
from priors.batch import Batch

VAL_SEED_OFFSET = 104729  # validation batches are drawn with seed + this unless `val_seed` is set


def check_configs(model_config: ModelConfig, train_config: TrainConfig) -> None:
    """Refuses a train config whose batches the model cannot read whole.

    Raises:
        ValueError: if `train_config.max_features` exceeds `model_config.max_features`.
    """
    if train_config.max_features > model_config.max_features:
        raise ValueError(f"train.max_features={train_config.max_features} exceeds model.max_features="
                         f"{model_config.max_features}: the model would drop the extra features; raise "
                         "model.max_features or lower train.max_features")


def check_prior_fits_model(model: nn.Module, prior: Any, batches: list[Batch]) -> None:
    """Refuses a prior whose batches lack what the model's head needs (e.g. `meta["n_classes"]`), or
    hold missing values (NaN) that the model cannot read (only the layouts with `reads_missing` read them)."""
    try:
        model.head.task_of_batch(batches[0])
    except KeyError as err:
        raise ValueError(f"prior {type(prior).__name__} does not produce what head {model.config.head!r} needs: "
                         f"{err.args[0]}") from None
    if (model.config.architecture == "pfn" and not layout_properties(model.config.feature_encoding).reads_missing
            and any(torch.isnan(b.x).any() for b in batches)):
        raise ValueError(f"prior {type(prior).__name__} draws missing values (NaN), which feature_encoding="
                         f"{model.config.feature_encoding!r} cannot read; use one of "
                         f"{layout_names(reads_missing=True)}")


def check_finite_loss(loss: float, step: int) -> None:
    """Stops training (before the update, so the last checkpoint stays sound) if the step's loss is NaN or
    infinite."""
    if not math.isfinite(loss):
        raise FloatingPointError(f"the training loss is {loss} at step {step + 1}; the weights were not updated "
                                 "(lower lr, or check the prior's batches for NaN or huge values)")


def choose_amp(requested: bool, device: torch.device) -> tuple[bool, str]:
    """Whether to train under bf16 autocast: where `requested` (`TrainConfig.amp`) and `device` does bf16
    fast (`pfn.device.bf16_is_fast`: a GPU with bf16, a CPU with bf16 instructions).

    Returns:
        The choice and its reason, kept in the run's record as "amp_used" and "amp_reason".
    """
    if not requested:
        return False, "amp is off in the train config"
    fast, reason = bf16_is_fast(device)
    return fast, reason if fast else f"{reason}; trains in fp32 instead"


def lr_factor(step: int, cfg: TrainConfig) -> float:
    """Linear warm-up to 1, then cosine decay to 0 at `cfg.steps`."""
    if step < cfg.warmup_steps:
        return (step + 1) / cfg.warmup_steps
    progress = (step - cfg.warmup_steps) / max(1, cfg.steps - cfg.warmup_steps)
    return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))


def draw_batch(prior: Any, cfg: TrainConfig, generator: torch.Generator, device: torch.device) -> Batch:
    """One training batch: feature count and context size drawn from `generator`.

    With `cfg.mixed_context`, each dataset draws its own context size; the batch's `n_context`
    is the largest and the slots past a dataset's size are padding (`Batch.context_mask`).
    """
    n_features = int(torch.randint(cfg.min_features, cfg.max_features + 1, (1,), generator=generator, device=device))
    n_sizes = cfg.batch_size if cfg.mixed_context else 1
    sizes = torch.randint(cfg.min_context, cfg.max_context + 1, (n_sizes,), generator=generator, device=device)
    batch = prior.sample(cfg.batch_size, cfg.n_points, n_features, generator=generator, device=device,
                         n_context=int(sizes.max()))
    return batch.with_context_sizes(sizes) if cfg.mixed_context else batch


def prior_targets(prior: Any, cfg: TrainConfig, device: torch.device, n: int | None = None) -> torch.Tensor:
    """At least `n` (default `cfg.border_samples`) query targets of training batches (flattened, on the
    CPU), drawn as training draws them, seeded by `cfg.seed` (the same values for the same config)."""
    gen = torch.Generator(device=device).manual_seed(cfg.seed + 7919)
    values, n_done = [], 0
    while n_done < (cfg.border_samples if n is None else n):
        b = draw_batch(prior, cfg, gen, device)
        values.append(b.target_y.flatten().cpu())
        n_done += b.target_y.numel()
    return torch.cat(values)


def initial_head_state(prior: Any, model_cfg: ModelConfig, cfg: TrainConfig,
                       device: torch.device) -> dict[str, Any] | None:
    """The state a fresh head starts from (e.g. bucket borders at quantiles of `prior_targets`);
    None for a head without state."""
    return head_class(model_cfg.head).initial_state(model_cfg, lambda: prior_targets(prior, cfg, device))


def initial_model(prior: Any, model_cfg: ModelConfig, cfg: TrainConfig,
                  device: torch.device) -> tuple[nn.Module, dict[str, Any]]:
    """A fresh model, or one initialised from `cfg.init_from` (see `TrainConfig`).

    Returns:
        The model (on the CPU) and the record entries of its origin: "init_from", "init_parts"
        and "lineage" (the source's stages), empty for a fresh model.
    """
    if cfg.init_from is None:
        return build_model(model_cfg, initial_head_state(prior, model_cfg, cfg, device)), {}
    folder = resolve(cfg.init_from)
    config, state = read_checkpoint(folder)
    source = model_from(config, state, folder)
    parts = cfg.init_parts
    if parts == "auto":
        parts = "all" if source.config.head == model_cfg.head else "transformer"
    if parts == "deepen":
        check_deepen(source.config, model_cfg, cfg.init_from)  # before the head takes the source's borders
        model = build_model(model_cfg, source.head.saved_state())
        model.load_state_dict(deepened_state(source, model))
    elif parts == "all":
        if source.config != model_cfg:
            diffs = architecture_differences(source.config, model_cfg)
            raise ValueError(f"init_from={cfg.init_from!r} has another architecture ({'; '.join(diffs)}); continue "
                             "it with its own model config, or take only its transformer with init_parts='transformer'")
        model = build_model(model_cfg, source.head.saved_state())
        model.load_state_dict(source.state_dict())
    else:
        model = build_model(model_cfg, initial_head_state(prior, model_cfg, cfg, device))
        try:
            model.transformer.load_state_dict(source.transformer.state_dict())
        except RuntimeError as err:
            raise ValueError(f"init_from={cfg.init_from!r}: its transformer does not match this architecture: "
                             f"{err}") from None
    return model, {"init_from": str(cfg.init_from), "init_parts": parts, "lineage": stages(config)}


def architecture_differences(old: ModelConfig, new: ModelConfig) -> list[str]:
    """Every field in which `new` differs from `old`, as "field: old -> new"."""
    return [f"{k}: {v} -> {getattr(new, k)}" for k, v in old.to_dict().items() if getattr(new, k) != v]


def check_deepen(source: ModelConfig, target: ModelConfig, init_from: str | None = None) -> None:
    """Refuses to deepen a model of architecture `source` into `target` unless `target` has more layers
    and is otherwise the same (buckets, widths, head, ...).

    Raises:
        ValueError: naming every field that differs (e.g. "n_buckets: 1000 -> 500"), and `init_from`.
    """
    diffs = architecture_differences(source, replace(target, n_layers=source.n_layers))
    if diffs or target.n_layers <= source.n_layers:
        origin = f"init_from={init_from!r}: " if init_from is not None else ""
        raise ValueError(f"{origin}init_parts='deepen' needs a model of more layers and otherwise the source's "
                         f"architecture; got n_layers {source.n_layers} -> {target.n_layers}"
                         f"{'; ' if diffs else ''}{'; '.join(diffs)}; give the new model the source's values of "
                         "every field but n_layers (and more layers than the source)")


def deepened_state(source: nn.Module, model: nn.Module) -> dict[str, torch.Tensor]:
    """`model`'s state dict with every weight of `source`, a model of fewer layers and otherwise the
    same architecture: source layer `k` of `L` becomes layer `k * L' // L` of `model`'s `L'`; the
    other layers keep their fresh (identity) weights.

    Raises:
        ValueError: if the architectures differ in more than a greater number of layers (`check_deepen`).
    """
    check_deepen(source.config, model.config)
    n_source, n_target = source.config.n_layers, model.config.n_layers
    state = model.state_dict()
    prefix = "transformer.layers."
    for name, value in source.state_dict().items():
        if name.startswith(prefix):
            index, rest = name.removeprefix(prefix).split(".", 1)
            name = f"{prefix}{int(index) * n_target // n_source}.{rest}"
        state[name] = value
    return state


def validation_batches(prior: Any, cfg: TrainConfig, device: torch.device) -> list[Batch]:
    """`cfg.val_batches` fixed prior batches, the same for every run of a config: seeded by `cfg.val_seed`,
    or by `cfg.seed + VAL_SEED_OFFSET` where that is None."""
    seed = cfg.seed + VAL_SEED_OFFSET if cfg.val_seed is None else cfg.val_seed
    gen = torch.Generator(device=device).manual_seed(seed)
    return [draw_batch(prior, cfg, gen, device) for _ in range(cfg.val_batches)]


@torch.no_grad()
def validation_nll(model: nn.Module, batches: list[Batch]) -> float:
    """Mean NLL of the query targets of `batches`, in fp32 whatever the training precision (so that
    validation NLLs compare across `amp` settings and with earlier records)."""
    model.eval()
    losses = [float(model.loss(b)) for b in batches]
    model.train()
    return sum(losses) / len(losses)


def _setup_distributed(device: torch.device) -> tuple[torch.device, int, int]:
    """Joins the `torchrun` process group if there is one; returns (device of this rank, rank, world size)."""
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return device, 0, 1
    if device.type == "cuda":
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return device, dist.get_rank(), dist.get_world_size()


def _device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"cpu ({os.cpu_count()} cores)"


def _starting_point(prior: Any, model_config: ModelConfig, cfg: TrainConfig, device: torch.device,
                    saved: Path | None, allow_change: Collection[str]) -> tuple[nn.Module, dict[str, Any]]:
    """The model and record a run starts from: its newest checkpoint `saved` (after the resume
    checks, see `train`) or `initial_model`."""
    if saved is None:
        model, origin = initial_model(prior, model_config, cfg, device)
        return model, {"steps": 0, "tables": 0, "wall_time_s": 0.0, "train_loss": None, "val_loss": None, **origin}
    config, state = read_checkpoint(saved)
    changes = resume_changes(config, prior.to_dict(), model_config, cfg, allow_change, saved.parent)
    record = config["record"]
    if changes:
        record["changes"] = record.get("changes", []) + [{"step": record["steps"], **c} for c in changes]
    return model_from(config, state, saved), record


def train(
    prior: Any, model_config: ModelConfig, train_config: TrainConfig, out_dir: str | Path | None = None,
    *, progress: bool = True, stop_after: int | None = None, allow_change: Collection[str] = (),
) -> nn.Module:
    """Trains the model of `model_config.architecture` (a `PFN` by default) on `prior`; returns the trained model
    (also saved to `out_dir`, see `pfn.run_state`).

    If `out_dir` holds a run, training resumes from its newest checkpoint exactly, provided the
    configuration is the same: a different architecture is refused, and so is any other
    difference unless its field is in `allow_change` (`TrainConfig` field names, or "prior"),
    in which case the run continues with the change, recorded in its record's "changes".
    `stop_after` ends the run early after that many total steps (with a checkpoint), as an
    interruption would.
    """
    cfg = train_config
    check_configs(model_config, cfg)
    if stop_after is not None and stop_after < 0:
        raise ValueError(f"stop_after={stop_after} must be >= 0")
    device, rank, world = _setup_distributed(resolve_device(cfg.device))
    out = Path(out_dir) if out_dir is not None else None
    saved = open_run(out) if out is not None else None
    torch.manual_seed(cfg.seed)  # identical initial weights on every rank
    model, record = _starting_point(prior, model_config, cfg, device, saved, allow_change)
    model.info = {"prior": prior.to_dict(), "train": cfg.to_dict(), "record": record}
    model.to(device).train()
    ddp = DistributedDataParallel(model) if world > 1 else model
    forward = torch.compile(ddp, dynamic=True) if cfg.compile else ddp  # same parameters, compiled graph
    decay = [p for n, p in model.named_parameters() if p.dim() >= 2]
    no_decay = [p for n, p in model.named_parameters() if p.dim() < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": cfg.weight_decay},
                             {"params": no_decay, "weight_decay": 0.0}], lr=cfg.lr)
    gen = torch.Generator(device=device).manual_seed(cfg.seed + 1_000_003 * (rank + 1))
    step = restore_train_state(saved, opt, gen, rank, world) if saved is not None else 0
    first, saved_step = step, (step if saved is not None else None)
    val = validation_batches(prior, cfg, device)
    check_prior_fits_model(model, prior, val)
    last = min(cfg.steps, stop_after) if stop_after is not None else cfg.steps
    amp, amp_reason = choose_amp(cfg.amp, device)
    if cfg.amp and not amp and rank == 0:
        print(f"pfn.train: amp=True falls back to fp32: {amp_reason}", file=sys.stderr, flush=True)
    bar = tqdm(total=cfg.steps, initial=step, disable=not progress or rank != 0, desc="train", unit="step")
    t0, wall0, tables_per_step = time.perf_counter(), record["wall_time_s"], cfg.batch_size * cfg.accumulate * world
    record.update(device=_device_name(device), amp_used=amp, amp_reason=amp_reason)
    while step < last:
        for group in opt.param_groups:
            group["lr"] = cfg.lr * lr_factor(step, cfg)
        opt.zero_grad(set_to_none=True)
        total = 0.0
        for micro in range(cfg.accumulate):
            batch = draw_batch(prior, cfg, gen, device)
            sync = micro == cfg.accumulate - 1 or world == 1
            with (nullcontext() if sync else ddp.no_sync()), \
                    torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp):
                logits = forward(batch.x, batch.y[:, :batch.n_context], batch.context_mask)
                loss = model.batch_loss(logits, batch)
            (loss / cfg.accumulate).backward()
            total += float(loss.detach()) / cfg.accumulate
        check_finite_loss(total, step)
        torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        opt.step()
        step += 1
        ema = record["train_loss"]
        record["train_loss"] = total if ema is None else 0.98 * ema + 0.02 * total
        if step % cfg.val_every == 0 or step == cfg.steps:
            record["val_loss"] = validation_nll(model, val)
        record.update(steps=step, tables=record["tables"] + tables_per_step,
                      wall_time_s=wall0 + time.perf_counter() - t0)
        bar.update(1)
        val_text = "-" if record["val_loss"] is None else f"{record['val_loss']:.3f}"
        rate = (step - first) * tables_per_step / max(1e-9, record["wall_time_s"] - wall0)
        bar.set_postfix(loss=f"{record['train_loss']:.3f}", val=val_text, datasets_per_s=f"{rate:.0f}", refresh=False)
        if out is not None and (step % cfg.checkpoint_every == 0 or step == last):
            save_run_checkpoint(out, step, model, opt, gen, rank, world)
            saved_step = step
    bar.close()
    if out is not None and saved_step != step:  # e.g. stop_after=0 on a new run: its initial state
        save_run_checkpoint(out, step, model, opt, gen, rank, world)
    if world > 1:
        dist.barrier()
    return model.eval()

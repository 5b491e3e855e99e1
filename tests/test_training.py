"""Training: a tiny run learns, resumes exactly (also after a kill at any point of a checkpoint),
checks its configs, follows its schedule, continues a trained model with its lineage."""

from __future__ import annotations

import json
import math
import re
import shutil
from dataclasses import replace
from pathlib import Path

import pytest
import torch

import pfn
import pfn.checkpoint as ckpt
import pfn.device
from pfn import run_state
from pfn.config import ModelConfig, TrainConfig
from pfn.run_state import stages
from pfn.training import (
    VAL_SEED_OFFSET,
    check_configs,
    draw_batch,
    lr_factor,
    resolve_device,
    train,
    validation_batches,
    validation_nll,
)
from priors import GPPrior, MixturePrior, SCMPrior
from priors.batch import Batch

PRIOR = GPPrior()
MODEL = ModelConfig(d_model=32, n_layers=2, n_heads=2, d_ff=64, n_buckets=50, max_features=4)
TRAIN = TrainConfig(steps=12, batch_size=8, n_points=20, max_context=10, border_samples=2000, checkpoint_every=4,
                    val_every=4, val_batches=2, warmup_steps=3, lr=1e-3, device="cpu", seed=0, amp=False)
RUN_FILES = {"model.safetensors", "config.json", "checksums.json", "train_state.safetensors", "train_state.json",
             "rng_rank0.safetensors"}


def state_of(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def assert_same_weights(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key


def without_wall_time(record: dict) -> dict:
    return {k: v for k, v in record.items() if k != "wall_time_s"}


@pytest.fixture(scope="module")
def run_a(tmp_path_factory):
    """The reference run: 12 uninterrupted steps."""
    out = tmp_path_factory.mktemp("run_a")
    model = train(PRIOR, MODEL, TRAIN, out, progress=False)
    return out, model


# --- a run and its folder -----------------------------------------------------------------------

def test_tiny_training_run_has_finite_losses_and_saves_one_complete_checkpoint(run_a):
    out, model = run_a
    record = model.info["record"]
    assert record["steps"] == 12 and record["tables"] == 12 * TRAIN.batch_size
    assert math.isfinite(record["train_loss"]) and math.isfinite(record["val_loss"])
    assert record["wall_time_s"] > 0 and record["device"].startswith("cpu")
    assert sorted(p.name for p in out.iterdir()) == ["step-00000012"]
    assert {p.name for p in (out / "step-00000012").iterdir()} == RUN_FILES
    config = json.loads((out / "step-00000012" / "config.json").read_text())
    assert config["model"] == MODEL.to_dict()
    assert config["prior"] == PRIOR.to_dict()
    assert config["train"] == TRAIN.to_dict()
    assert config["record"] == record
    assert len(config["head_state"]["borders"]) == MODEL.n_buckets + 1
    assert not model.training


def test_a_run_folder_loads_as_its_newest_checkpoint(run_a):
    out, model = run_a
    assert_same_weights(state_of(model), state_of(pfn.load(out)))
    assert_same_weights(state_of(model), state_of(ckpt.load_folder(out)))


def test_tiny_training_run_lowers_the_validation_nll(run_a):
    _, model = run_a
    untrained = train(PRIOR, MODEL, TRAIN, None, progress=False, stop_after=0)
    val = validation_batches(PRIOR, TRAIN, torch.device("cpu"))
    before, after = validation_nll(untrained, val), validation_nll(model, val)
    assert math.isfinite(before) and math.isfinite(after)
    assert after < before
    assert after == pytest.approx(model.info["record"]["val_loss"], rel=1e-5)


def test_val_seed_fixes_the_validation_batches_across_training_seeds():
    cpu = torch.device("cpu")
    first = validation_batches(PRIOR, TRAIN, cpu)
    same = validation_batches(PRIOR, replace(TRAIN, seed=TRAIN.seed + 1, val_seed=TRAIN.seed + VAL_SEED_OFFSET), cpu)
    other = validation_batches(PRIOR, replace(TRAIN, seed=TRAIN.seed + 1), cpu)
    assert all(torch.equal(a.x, b.x) and torch.equal(a.y, b.y) and a.n_context == b.n_context
               for a, b in zip(first, same, strict=True))
    assert not torch.equal(first[0].y, other[0].y)


def test_training_borders_are_increasing_prior_quantiles(run_a):
    _, model = run_a
    borders = model.head.borders
    assert borders.shape == (MODEL.n_buckets + 1,)
    assert (borders[1:] > borders[:-1]).all()
    targets = PRIOR.sample(200, 20, 2, generator=torch.Generator().manual_seed(3)).target_y
    inside = ((targets > borders[0]) & (targets < borders[-1])).float().mean()
    assert inside > 0.9


def test_training_is_reproducible_from_the_seed(run_a, tmp_path):
    _, model = run_a
    again = train(PRIOR, MODEL, TRAIN, tmp_path / "again", progress=False)
    assert_same_weights(state_of(model), state_of(again))
    other = train(PRIOR, MODEL, replace(TRAIN, seed=1), None, progress=False)
    assert not torch.equal(other.head.proj.weight, model.head.proj.weight)


# --- exact resume -------------------------------------------------------------------------------

def test_interrupted_run_resumes_exactly(run_a, tmp_path):
    _, model_a = run_a
    out = tmp_path / "run_b"
    stopped = train(PRIOR, MODEL, TRAIN, out, progress=False, stop_after=7)
    assert stopped.info["record"]["steps"] == 7
    state = json.loads((out / "step-00000007" / "train_state.json").read_text())
    assert state["step"] == 7
    # The schedule was applied: the last step (index 6) ran at lr * lr_factor(6).
    assert [g["lr"] for g in state["param_groups"]] == pytest.approx([TRAIN.lr * lr_factor(6, TRAIN)] * 2)
    assert not torch.equal(stopped.head.proj.weight, model_a.head.proj.weight)
    resumed = train(PRIOR, MODEL, TRAIN, out, progress=False)
    assert_same_weights(state_of(model_a), state_of(resumed))
    assert without_wall_time(resumed.info["record"]) == without_wall_time(model_a.info["record"])
    assert_same_weights(state_of(model_a), state_of(pfn.load(out)))
    # Resuming a finished run changes nothing.
    finished = train(PRIOR, MODEL, TRAIN, out, progress=False)
    assert_same_weights(state_of(model_a), state_of(finished))
    assert sorted(p.name for p in out.iterdir()) == ["step-00000012"]


def test_resume_restores_optimizer_state_and_gradient_accumulation(tmp_path):
    cfg = replace(TRAIN, steps=6, batch_size=4, accumulate=2, weight_decay=0.01, checkpoint_every=2, val_every=3)
    whole = train(PRIOR, MODEL, cfg, tmp_path / "whole", progress=False)
    train(PRIOR, MODEL, cfg, tmp_path / "parts", progress=False, stop_after=3)
    parts = train(PRIOR, MODEL, cfg, tmp_path / "parts", progress=False)
    assert_same_weights(state_of(whole), state_of(parts))


def test_stop_after_zero_saves_the_initial_state_and_resumes_exactly(run_a, tmp_path):
    out = tmp_path / "zero"
    train(PRIOR, MODEL, TRAIN, out, progress=False, stop_after=0)
    record = json.loads((out / "step-00000000" / "config.json").read_text())["record"]
    assert record["steps"] == 0 and record["train_loss"] is None and record["val_loss"] is None
    assert_same_weights(state_of(run_a[1]), state_of(train(PRIOR, MODEL, TRAIN, out, progress=False)))


def _count_writes(monkeypatch) -> list[Path]:
    written: list[Path] = []
    real = ckpt.write_file

    def counting(path, write):
        real(path, write)
        written.append(path)

    monkeypatch.setattr(ckpt, "write_file", counting)
    return written


class Killed(Exception):
    """Stands for SIGKILL: the run ends at once, leaving its files as they are."""


@pytest.fixture(scope="module")
def writes_per_checkpoint(tmp_path_factory) -> int:
    with pytest.MonkeyPatch.context() as mp:
        written = _count_writes(mp)
        train(PRIOR, MODEL, TRAIN, tmp_path_factory.mktemp("count"), progress=False, stop_after=4)
    return len(written)


KILL_POINTS = [(where, k) for k in range(1, len(RUN_FILES) + 1) for where in ("during", "after")] + [("commit", 0)]


@pytest.mark.parametrize("where, k", KILL_POINTS, ids=[f"{w}-{k}" for w, k in KILL_POINTS])
def test_a_kill_at_any_point_of_a_checkpoint_resumes_bitwise_identically(run_a, tmp_path, monkeypatch, where, k,
                                                                         writes_per_checkpoint):
    """The run is killed during its second checkpoint (step 8): while or after writing its k-th
    file, or after the commit (the rename), before the older checkpoint is removed."""
    assert writes_per_checkpoint == len(RUN_FILES)
    out, calls = tmp_path / "run", []
    real_write, real_remove = ckpt.write_file, run_state.remove_stale

    def dying_write(path, write):
        calls.append(path)
        if where == "commit" or len(calls) != writes_per_checkpoint + k:
            return real_write(path, write)
        if where == "during":  # half a file, never renamed into place
            tmp = path.with_name(path.name + ".tmp")
            write(tmp)
            tmp.write_bytes(tmp.read_bytes()[: tmp.stat().st_size // 2])
        else:
            real_write(path, write)
        raise Killed

    def dying_remove(run, keep):
        if where == "commit" and len(calls) == 2 * writes_per_checkpoint:
            raise Killed
        real_remove(run, keep)

    monkeypatch.setattr(ckpt, "write_file", dying_write)
    monkeypatch.setattr(run_state, "remove_stale", dying_remove)
    with pytest.raises(Killed):
        train(PRIOR, MODEL, TRAIN, out, progress=False)
    monkeypatch.undo()
    assert pfn.load(out).info["record"]["steps"] == (8 if where == "commit" else 4)
    resumed = train(PRIOR, MODEL, TRAIN, out, progress=False)
    assert_same_weights(state_of(run_a[1]), state_of(resumed))
    assert without_wall_time(resumed.info["record"]) == without_wall_time(run_a[1].info["record"])
    assert sorted(p.name for p in out.iterdir()) == ["step-00000012"]


def test_resume_refuses_a_damaged_checkpoint(tmp_path):
    out = tmp_path / "run"
    train(PRIOR, MODEL, TRAIN, out, progress=False, stop_after=4)
    path = out / "step-00000004" / "train_state.safetensors"
    data = bytearray(path.read_bytes())
    data[-3] ^= 1
    path.write_bytes(bytes(data))
    with pytest.raises(ckpt.CheckpointError, match="train_state.safetensors does not match its sha256"):
        train(PRIOR, MODEL, TRAIN, out, progress=False)


# --- resume checks the configuration ------------------------------------------------------------

@pytest.fixture
def stopped_run(tmp_path) -> Path:
    out = tmp_path / "run"
    train(PRIOR, MODEL, TRAIN, out, progress=False, stop_after=4)
    return out


@pytest.mark.parametrize(
    "prior, model_config, cfg, match",
    [
        (PRIOR, MODEL, replace(TRAIN, lr=2e-3), r"train\.lr: 0\.001 -> 0\.002.*--allow-change lr"),
        (GPPrior(noisy_targets=True), MODEL, TRAIN, r"prior\.noisy_targets: false -> true.*--allow-change prior"),
        (PRIOR, replace(MODEL, d_model=16, d_ff=32), TRAIN, r"another architecture \(model\.d_ff: 64 -> 32; "
                                                           r"model\.d_model: 32 -> 16\)"),
    ],
    ids=["lr", "prior", "architecture"],
)
def test_resume_refuses_another_configuration_naming_the_fields(stopped_run, prior, model_config, cfg, match):
    before = sorted(p.name for p in stopped_run.rglob("*"))
    with pytest.raises(ValueError, match=match):
        train(prior, model_config, cfg, stopped_run, progress=False)
    assert sorted(p.name for p in stopped_run.rglob("*")) == before


def test_allowed_change_continues_the_run_and_is_recorded(stopped_run):
    longer = replace(TRAIN, steps=16, lr=2e-3)
    with pytest.raises(ValueError, match="--allow-change lr steps"):
        train(PRIOR, MODEL, longer, stopped_run, progress=False)
    with pytest.raises(ValueError, match="cannot allow a change of \\['d_model'\\]"):
        train(PRIOR, MODEL, longer, stopped_run, progress=False, allow_change=["d_model"])
    model = train(PRIOR, MODEL, longer, stopped_run, progress=False, allow_change=["steps", "lr"])
    record = model.info["record"]
    assert record["steps"] == 16
    assert record["changes"] == [{"step": 4, "field": "train.lr", "old": 1e-3, "new": 2e-3},
                                 {"step": 4, "field": "train.steps", "old": 12, "new": 16}]
    assert pfn.load(stopped_run).info["train"] == longer.to_dict()
    # The changed run resumes with its new configuration without a flag.
    assert train(PRIOR, MODEL, longer, stopped_run, progress=False).info["record"]["changes"] == record["changes"]


def test_a_folder_that_holds_something_else_is_never_overwritten(tmp_path, tiny_pfn):
    folder = ckpt.save_checkpoint(tiny_pfn, tmp_path / "ckpt")
    before = {p.name: p.read_bytes() for p in folder.iterdir()}
    with pytest.raises(ValueError, match="holds no training run but other files"):
        train(PRIOR, MODEL, TRAIN, folder, progress=False)
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == before
    (tmp_path / "file").write_text("x")
    with pytest.raises(ValueError, match="is a file"):
        train(PRIOR, MODEL, TRAIN, tmp_path / "file", progress=False)


# --- config checks ------------------------------------------------------------------------------

def test_train_refuses_more_features_than_the_model_reads(tmp_path):
    cfg = replace(TRAIN, max_features=6)
    with pytest.raises(ValueError, match="train.max_features=6 exceeds model.max_features=4"):
        check_configs(MODEL, cfg)
    with pytest.raises(ValueError, match="would drop the extra features"):
        train(PRIOR, MODEL, cfg, tmp_path / "run", progress=False)
    assert not (tmp_path / "run").exists()


def test_a_classifier_trains_on_a_mixture_of_classification_priors(tmp_path):
    """The mixture keeps `n_classes` under its plain key, so the classification loss finds it."""
    clf = replace(MODEL, head="classification", max_classes=6, feature_encoding="per_feature")
    prior = MixturePrior((SCMPrior(max_classes=2), SCMPrior(binary_fraction=0.0, max_classes=6)))
    model = train(prior, clf, replace(TRAIN, steps=2), tmp_path / "run", progress=False)
    assert math.isfinite(model.info["record"]["train_loss"]) and math.isfinite(model.info["record"]["val_loss"])


def test_a_row_token_model_refuses_a_prior_with_missing_values(tmp_path):
    clf = replace(MODEL, head="classification", max_classes=6)
    with pytest.raises(ValueError, match="draws missing values.*use one of"):
        train(SCMPrior(max_classes=6, missing_prob=1.0), clf, replace(TRAIN, steps=2), tmp_path / "run",
              progress=False)
    assert not run_state.step_folders(tmp_path / "run")


def test_a_non_finite_loss_stops_training_before_the_update(tmp_path):
    class HugePrior(GPPrior):
        def sample(self, *args, **kwargs):
            batch = super().sample(*args, **kwargs)
            training = kwargs["generator"].initial_seed() >= 1_000_003  # the training draws' generator
            return replace(batch, y=batch.y * float("inf")) if training else batch

    with pytest.raises(FloatingPointError, match="training loss is (nan|inf) at step 1; the weights were not updated"):
        train(HugePrior(), MODEL, TRAIN, tmp_path / "run", progress=False)


def test_a_classifier_refuses_a_prior_without_class_counts(tmp_path):
    clf = replace(MODEL, head="classification", max_classes=5)
    with pytest.raises(ValueError, match="prior GPPrior does not produce what head 'classification' needs.*n_classes"):
        train(PRIOR, clf, TRAIN, tmp_path / "run", progress=False)
    assert not run_state.step_folders(tmp_path / "run")
    train(SCMPrior(max_classes=5), replace(clf, feature_encoding="per_feature"), replace(TRAIN, steps=1), None,
          progress=False)


@pytest.mark.parametrize(
    "overrides, match",
    [
        ({"max_context": 20}, "at least one query"),
        ({"min_context": 0}, "min_context"),
        ({"min_context": 5, "max_context": 4}, "min_context"),
        ({"min_features": 3, "max_features": 2}, "min_features"),
        ({"steps": 0}, "steps=0"),
        ({"accumulate": 0}, "accumulate=0"),
        ({"checkpoint_every": 0}, "checkpoint_every=0"),
        ({"val_every": 0, "val_batches": 0}, "val_every=0 must be >= 1; val_batches=0 must be >= 1"),
        ({"warmup_steps": -1}, "warmup_steps=-1 must be >= 0"),
        ({"weight_decay": -0.1}, "weight_decay=-0.1 must be >= 0"),
        ({"lr": 0.0}, "lr > 0"),
        ({"init_parts": "head"}, "init_parts='head'"),
    ],
)
def test_train_config_rejects_bad_values(overrides, match):
    with pytest.raises(ValueError, match=match):
        replace(TRAIN, **overrides)


def test_train_config_from_dict_rejects_unknown_fields():
    with pytest.raises(ValueError, match="unknown TrainConfig fields"):
        TrainConfig.from_dict({"step": 10})


INTEGER_FIELDS = [(TrainConfig, name) for name in (
    "steps", "batch_size", "accumulate", "warmup_steps", "n_points", "min_context", "max_context", "min_features",
    "max_features", "seed", "checkpoint_every", "val_every", "val_batches", "val_seed", "border_samples")] + [
    (ModelConfig, name) for name in ("max_features", "d_model", "n_layers", "n_heads", "d_ff", "n_buckets",
                                     "max_classes", "max_components", "max_latent_dim")]


def _config_with(cls: type, name: str, value: object) -> object:
    return cls.from_dict({**(TRAIN if cls is TrainConfig else MODEL).to_dict(), name: value})


@pytest.mark.parametrize("cls, name", INTEGER_FIELDS, ids=[f"{c.__name__}.{n}" for c, n in INTEGER_FIELDS])
@pytest.mark.parametrize("value, error", [(60.5, ValueError), ("60", TypeError), (True, TypeError),
                                          (float("inf"), ValueError)])
def test_config_integer_fields_refuse_what_is_not_a_whole_number(cls, name, value, error):
    with pytest.raises(error, match=f"{cls.__name__}.{name} must be a whole number, got {value!r}"):
        _config_with(cls, name, value)


def test_config_takes_a_whole_float_as_its_int():
    cfg = _config_with(TrainConfig, "steps", 60.0)
    assert cfg.steps == 60 and type(cfg.steps) is int
    assert json.loads(json.dumps(cfg.to_dict()))["steps"] == 60
    assert type(_config_with(TrainConfig, "lr", 1).lr) is float


@pytest.mark.parametrize("name, value, error, match", [
    ("lr", "0.001", TypeError, "TrainConfig.lr must be a number, got '0.001'"),
    ("weight_decay", float("nan"), ValueError, "TrainConfig.weight_decay must be a finite number, got nan"),
    ("grad_clip", None, TypeError, "TrainConfig.grad_clip must be a number, got None"),
    ("amp", "false", TypeError, "TrainConfig.amp must be true or false, got 'false'"),
    ("mixed_context", 1, TypeError, "TrainConfig.mixed_context must be true or false, got 1"),
    ("compile", None, TypeError, "TrainConfig.compile must be true or false, got None"),
])
def test_train_config_refuses_numbers_and_switches_of_another_type(name, value, error, match):
    with pytest.raises(error, match=match):
        _config_with(TrainConfig, name, value)


@pytest.mark.parametrize("name, low", [("d_model", 1), ("n_heads", 1), ("n_layers", 1), ("d_ff", 1),
                                       ("max_features", 1), ("max_components", 1), ("max_latent_dim", 1),
                                       ("n_buckets", 3), ("max_classes", 2)])
def test_model_config_refuses_sizes_below_their_minimum_naming_them(name, low):
    for value in (0, -4, low - 1):
        with pytest.raises(ValueError, match=f"ModelConfig: {name}={value} must be >= {low}"):
            _config_with(ModelConfig, name, value)
    assert getattr(_config_with(ModelConfig, name, low if name not in ("d_model", "n_heads") else 2), name) >= low


def test_model_config_refuses_a_width_that_the_heads_do_not_divide():
    with pytest.raises(ValueError, match="d_model=30 must be divisible by n_heads=4"):
        ModelConfig.from_dict({**MODEL.to_dict(), "d_model": 30, "n_heads": 4})
    with pytest.raises(ValueError, match="ModelConfig: d_model=0 must be >= 1; n_heads=0 must be >= 1"):
        ModelConfig.from_dict({**MODEL.to_dict(), "d_model": 0, "n_heads": 0})


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without a GPU")
def test_resolve_device_refuses_an_unavailable_device():
    with pytest.raises(ValueError, match="device='cuda' but torch sees no CUDA GPU"):
        resolve_device("cuda")
    with pytest.raises(ValueError, match="device='gpu' is not a torch device"):
        resolve_device("gpu")
    assert resolve_device("auto") == torch.device("cpu") == resolve_device("cpu")


# --- schedule -----------------------------------------------------------------------------------

def test_lr_factor_warms_up_linearly_then_decays_by_cosine_to_zero():
    cfg = replace(TRAIN, steps=110, warmup_steps=10)
    factors = [lr_factor(s, cfg) for s in range(cfg.steps + 1)]
    assert factors[:10] == pytest.approx([(s + 1) / 10 for s in range(10)])
    assert factors[9] == pytest.approx(1.0) and factors[10] == pytest.approx(1.0)
    assert factors[60] == pytest.approx(0.5)  # half-way through the decay
    assert factors[35] == pytest.approx(0.5 * (1 + math.cos(math.pi * 0.25)))
    assert factors[-1] == pytest.approx(0.0, abs=1e-12)
    decay = factors[10:]
    assert all(b <= a for a, b in zip(decay[:-1], decay[1:], strict=True))
    assert all(0.0 <= f <= 1.0 for f in factors)
    assert lr_factor(500, cfg) == pytest.approx(0.0, abs=1e-12)  # stays at 0 past the end


def test_lr_factor_without_warmup_starts_at_one():
    cfg = replace(TRAIN, steps=20, warmup_steps=0)
    assert lr_factor(0, cfg) == pytest.approx(1.0)
    assert lr_factor(20, cfg) == pytest.approx(0.0, abs=1e-12)


# --- bf16 autocast on the CPU -------------------------------------------------------------------

def _cpu_reports(monkeypatch, capability: str, flags: set[str]) -> None:
    """Makes this machine's CPU look like one whose torch capability is `capability` with /proc/cpuinfo `flags`."""
    monkeypatch.setattr(torch.backends.cpu, "get_cpu_capability", lambda: capability)
    monkeypatch.setattr(pfn.device, "cpu_flags", lambda: set(flags))


def _linear_output_dtypes(monkeypatch) -> set[torch.dtype]:
    """The dtypes of every training-mode `nn.Linear` output from now on (collected into the returned set)."""
    dtypes = set()
    hook = torch.nn.Linear.forward

    def recording(self, x):
        out = hook(self, x)
        if self.training:
            dtypes.add(out.dtype)
        return out

    monkeypatch.setattr(torch.nn.Linear, "forward", recording)
    return dtypes


def test_amp_falls_back_to_fp32_on_a_cpu_without_bf16_says_so_and_records_it(run_a, monkeypatch, capsys):
    _cpu_reports(monkeypatch, "AVX2", {"fpu", "sse2", "avx", "avx2", "fma"})
    dtypes = _linear_output_dtypes(monkeypatch)
    model = train(PRIOR, MODEL, replace(TRAIN, steps=2, amp=True), None, progress=False)
    assert dtypes == {torch.float32}
    record = model.info["record"]
    assert record["amp_used"] is False and model.info["train"]["amp"] is True
    assert "no bf16 instructions (torch reports AVX2" in record["amp_reason"]
    assert "amp=True falls back to fp32: the CPU has no bf16 instructions" in capsys.readouterr().err
    assert run_a[1].info["record"]["amp_used"] is False
    assert run_a[1].info["record"]["amp_reason"] == "amp is off in the train config"


@pytest.mark.parametrize("capability, flags, found", [("AVX512", {"avx512f", "avx512_bf16"}, "avx512_bf16"),
                                                      ("AVX512", {"avx512f", "amx_tile", "amx_bf16"}, "amx_bf16"),
                                                      ("SVE256", {"fp", "asimd", "sve", "bf16"}, "bf16")])
def test_bf16_counts_as_fast_on_a_cpu_with_bf16_instructions(monkeypatch, capability, flags, found):
    _cpu_reports(monkeypatch, capability, flags)
    fast, reason = pfn.device.bf16_is_fast(torch.device("cpu"))
    assert fast and f"bf16 instructions ({found}; torch reports {capability})" in reason


def test_amp_runs_the_cpu_forward_in_bf16_and_still_learns(run_a, monkeypatch, capsys):
    _cpu_reports(monkeypatch, "AVX512", {"avx2", "avx512f", "avx512_bf16"})
    dtypes = _linear_output_dtypes(monkeypatch)
    model = train(PRIOR, MODEL, replace(TRAIN, amp=True), None, progress=False)
    monkeypatch.undo()
    assert dtypes == {torch.bfloat16}
    assert all(p.dtype == torch.float32 for p in model.parameters())  # fp32 master weights
    record = model.info["record"]
    assert record["amp_used"] is True and "avx512_bf16" in record["amp_reason"]
    assert "falls back" not in capsys.readouterr().err
    assert math.isfinite(record["train_loss"]) and math.isfinite(record["val_loss"])
    val = validation_batches(PRIOR, TRAIN, torch.device("cpu"))
    untrained = train(PRIOR, MODEL, TRAIN, None, progress=False, stop_after=0)
    assert validation_nll(model, val) < validation_nll(untrained, val) - 0.1
    assert validation_nll(model, val) == pytest.approx(record["val_loss"], rel=1e-6)  # validation in fp32
    assert not torch.equal(model.head.proj.weight, run_a[1].head.proj.weight)


# --- datasets of different context sizes in one batch -------------------------------------------

MIXED = replace(TRAIN, mixed_context=True, min_context=2)


def test_mixed_context_batches_draw_one_context_size_per_dataset():
    batch = draw_batch(PRIOR, MIXED, torch.Generator().manual_seed(0), torch.device("cpu"))
    sizes = batch.context_sizes
    assert batch.context_mask is not None and batch.n_context == int(sizes.max())
    assert len(set(sizes.tolist())) > 1 and int(sizes.min()) >= MIXED.min_context


def test_mixed_context_loss_is_the_mean_over_datasets_one_by_one(tiny_pfn):
    batch = draw_batch(PRIOR, MIXED, torch.Generator().manual_seed(1), torch.device("cpu"))
    c = batch.n_context
    with torch.no_grad():
        loss = tiny_pfn.loss(batch)
        alone = []
        for i, size in enumerate(batch.context_sizes.tolist()):
            rows = torch.cat([torch.arange(size), torch.arange(c, batch.n_points)])
            one = Batch(x=batch.x[i:i + 1, rows], y=batch.y[i:i + 1, rows],
                      target_y=batch.target_y[i:i + 1, rows], n_context=size)
            alone.append(tiny_pfn.loss(one))
    torch.testing.assert_close(loss, torch.stack(alone).mean(), rtol=1e-5, atol=1e-6)


def test_mixed_context_run_learns_and_resumes_exactly(tmp_path):
    whole = train(PRIOR, MODEL, MIXED, tmp_path / "whole", progress=False)
    train(PRIOR, MODEL, MIXED, tmp_path / "parts", progress=False, stop_after=5)
    parts = train(PRIOR, MODEL, MIXED, tmp_path / "parts", progress=False)
    assert_same_weights(state_of(whole), state_of(parts))
    val = validation_batches(PRIOR, MIXED, torch.device("cpu"))
    untrained = train(PRIOR, MODEL, MIXED, None, progress=False, stop_after=0)
    assert validation_nll(whole, val) < validation_nll(untrained, val)


# --- continuing a trained model -----------------------------------------------------------------

def test_init_from_continues_the_whole_model_with_its_lineage(run_a, tmp_path):
    source_dir, source = run_a
    cfg = replace(TRAIN, steps=3, lr=1e-12, border_samples=500, init_from=str(source_dir))
    model = train(PRIOR, MODEL, cfg, tmp_path / "next", progress=False)
    assert torch.equal(model.head.borders, source.head.borders)  # the head's state came along
    for name, value in source.state_dict().items():
        torch.testing.assert_close(model.state_dict()[name], value, atol=1e-6, rtol=1e-5, msg=name)
    record = model.info["record"]
    assert record["init_from"] == str(source_dir) and record["init_parts"] == "all"
    lineage = stages(json.loads((tmp_path / "next" / "step-00000003" / "config.json").read_text()))
    assert [s["record"]["steps"] for s in lineage] == [12, 3]
    assert lineage[0]["record"] == source.info["record"] and lineage[0]["train"] == TRAIN.to_dict()
    assert lineage[1]["train"] == cfg.to_dict()
    # A third stage keeps both earlier ones.
    third = train(PRIOR, MODEL, replace(cfg, init_from=str(tmp_path / "next")), None, progress=False)
    assert [s["record"]["steps"] for s in stages({**third.info, "model": MODEL.to_dict()})] == [12, 3, 3]


def test_init_from_a_shipped_name_with_a_single_stage_record(tmp_path, tiny_pfn, monkeypatch):
    tiny_pfn.info = {"prior": PRIOR.to_dict(), "train": TRAIN.to_dict(),
                     "record": {"steps": 7, "wall_time_s": 3600.0, "device": "cpu (2 cores)", "train_loss": 1.0,
                                "val_loss": 1.1}}
    ckpt.save_checkpoint(tiny_pfn, tmp_path / "pretrained" / "tiny")
    ckpt.write_manifest(["tiny"], root=tmp_path / "pretrained")
    monkeypatch.setattr(ckpt, "PRETRAINED_DIR", tmp_path / "pretrained")
    model = train(PRIOR, MODEL, replace(TRAIN, steps=2, init_from="tiny"), None, progress=False)
    lineage = stages({**model.info, "model": MODEL.to_dict()})
    assert len(lineage) == 2 and lineage[0]["record"] == tiny_pfn.info["record"]
    assert run_state.tables_of(lineage[0]) == 7 * TRAIN.batch_size
    assert run_state.cpu_hours(lineage) == pytest.approx(1.0, rel=1e-3)


def test_init_from_refuses_another_architecture_and_a_missing_source(run_a, tmp_path):
    wider = replace(MODEL, n_buckets=40)
    with pytest.raises(ValueError, match="another architecture \\(n_buckets: 50 -> 40\\).*init_parts='transformer'"):
        train(PRIOR, wider, replace(TRAIN, init_from=str(run_a[0])), None, progress=False)
    taken = train(PRIOR, wider, replace(TRAIN, steps=1, init_from=str(run_a[0]), init_parts="transformer"), None,
                  progress=False)
    assert taken.info["record"]["init_parts"] == "transformer"
    with pytest.raises(ckpt.CheckpointError, match="neither a checkpoint folder nor a shipped model"):
        train(PRIOR, MODEL, replace(TRAIN, init_from=str(tmp_path / "missing")), None, progress=False)


def test_deepen_starts_a_deeper_model_with_its_sources_predictions(run_a, tmp_path):
    source_dir, source = run_a
    deeper = replace(MODEL, n_layers=MODEL.n_layers + 2)
    cfg = replace(TRAIN, steps=4, init_from=str(source_dir), init_parts="deepen")
    start = train(PRIOR, deeper, cfg, None, progress=False, stop_after=0)
    assert len(start.transformer.layers) == MODEL.n_layers + 2
    batch = validation_batches(PRIOR, TRAIN, torch.device("cpu"))[0]
    start.eval(), source.eval()
    with torch.no_grad():
        torch.testing.assert_close(start.loss(batch), source.loss(batch), rtol=1e-5, atol=1e-6)
    trained = train(PRIOR, deeper, cfg, tmp_path / "deeper", progress=False)
    assert trained.info["record"]["init_parts"] == "deepen"
    assert [s["record"]["steps"] for s in stages(json.loads(
        (tmp_path / "deeper" / "step-00000004" / "config.json").read_text()))] == [12, 4]
    with pytest.raises(ValueError, match="init_parts='deepen' needs a model of more layers.*d_ff: 64 -> 32"):
        train(PRIOR, replace(deeper, d_ff=32), cfg, None, progress=False)
    with pytest.raises(ValueError, match="n_layers 2 -> 2"):
        train(PRIOR, MODEL, cfg, None, progress=False)


@pytest.mark.parametrize("change, diffs", [
    ({"n_buckets": 40}, "n_buckets: 50 -> 40"),
    ({"d_model": 64, "d_ff": 128}, "d_model: 32 -> 64; d_ff: 64 -> 128"),
    ({"head": "classification"}, "head: bar -> classification"),
])
def test_deepen_into_other_buckets_or_widths_is_refused_before_training_naming_them(run_a, tmp_path, change, diffs):
    deeper = replace(MODEL, n_layers=MODEL.n_layers + 2, **change)
    cfg = replace(TRAIN, steps=4, init_from=str(run_a[0]), init_parts="deepen")
    with pytest.raises(ValueError, match=f"init_from={re.escape(repr(str(run_a[0])))}: init_parts='deepen' needs .*"
                                         f"n_layers 2 -> 4; {diffs}; give the new model the source's"):
        train(PRIOR, deeper, cfg, tmp_path / "run", progress=False)
    assert not run_state.step_folders(tmp_path / "run")


@pytest.mark.skipif(shutil.which("cc") is None and shutil.which("gcc") is None,
                    reason="torch.compile on the CPU needs a C compiler")
def test_a_compiled_run_trains_the_same_model_as_an_eager_one(tmp_path):
    cfg = TrainConfig.from_dict({**TRAIN.to_dict(), "steps": 3, "checkpoint_every": 3, "val_every": 3})
    eager = train(PRIOR, MODEL, cfg, tmp_path / "eager", progress=False)
    compiled = train(PRIOR, MODEL, TrainConfig.from_dict({**cfg.to_dict(), "compile": True}), tmp_path / "compiled",
                     progress=False)
    assert compiled.info["train"]["compile"] and not eager.info["train"]["compile"]
    for (name, a), b in zip(state_of(eager).items(), state_of(compiled).values(), strict=True):
        torch.testing.assert_close(b, a, rtol=1e-4, atol=1e-5, msg=name)
    assert compiled.info["record"]["val_loss"] == pytest.approx(eager.info["record"]["val_loss"], rel=1e-4)

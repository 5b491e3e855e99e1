"""Training: a tiny run learns, resumes exactly, follows its schedule; the `pfn train` CLI."""

from __future__ import annotations

import json
import math
from contextlib import nullcontext
from dataclasses import replace

import pytest
import torch
from safetensors.torch import load_file

import pfn
from pfn.cli import main as cli_main
from pfn.config import ModelConfig, TrainConfig
from pfn.training import lr_factor, train, validation_batches, validation_nll
from priors import GPPrior

PRIOR = GPPrior()
MODEL = ModelConfig(d_model=32, n_layers=2, n_heads=2, d_ff=64, n_buckets=50, max_features=4)
TRAIN = TrainConfig(steps=12, batch_size=8, n_points=20, max_context=10, border_samples=2000, checkpoint_every=4,
                    val_every=4, val_batches=2, warmup_steps=3, lr=1e-3, device="cpu", seed=0)


def state_of(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def assert_same_weights(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key


@pytest.fixture(scope="module")
def run_a(tmp_path_factory):
    """The reference run: 12 uninterrupted steps."""
    out = tmp_path_factory.mktemp("run_a")
    model = train(PRIOR, MODEL, TRAIN, out, progress=False)
    return out, model


def test_tiny_training_run_has_finite_losses_and_saves_a_checkpoint(run_a):
    out, model = run_a
    record = model.info["record"]
    assert record["steps"] == 12
    assert math.isfinite(record["train_loss"]) and math.isfinite(record["val_loss"])
    assert record["wall_time_s"] > 0 and record["device"].startswith("cpu")
    for name in ("model.safetensors", "config.json", "train_state.safetensors", "train_state.json",
                 "rng_rank0.safetensors"):
        assert (out / name).is_file(), name
    config = json.loads((out / "config.json").read_text())
    assert config["model"] == MODEL.to_dict()
    assert config["prior"] == PRIOR.to_dict()
    assert config["train"] == TRAIN.to_dict()
    assert config["record"]["steps"] == 12
    assert len(config["head_state"]["borders"]) == MODEL.n_buckets + 1
    assert not model.training


def test_tiny_training_run_lowers_the_validation_nll(run_a):
    _, model = run_a
    untrained = train(PRIOR, MODEL, TRAIN, None, progress=False, stop_after=0)
    val = validation_batches(PRIOR, TRAIN, torch.device("cpu"))
    before, after = validation_nll(untrained, val, nullcontext), validation_nll(model, val, nullcontext)
    assert math.isfinite(before) and math.isfinite(after)
    assert after < before
    assert after == pytest.approx(model.info["record"]["val_loss"], rel=1e-5)


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


def test_interrupted_run_resumes_exactly(run_a, tmp_path):
    _, model_a = run_a
    out = tmp_path / "run_b"
    stopped = train(PRIOR, MODEL, TRAIN, out, progress=False, stop_after=7)
    assert stopped.info["record"]["steps"] == 7
    state = json.loads((out / "train_state.json").read_text())
    assert state["step"] == 7
    # The schedule was applied: the last step (index 6) ran at lr * lr_factor(6).
    assert [g["lr"] for g in state["param_groups"]] == pytest.approx([TRAIN.lr * lr_factor(6, TRAIN)] * 2)
    assert not torch.equal(stopped.head.proj.weight, model_a.head.proj.weight)
    resumed = train(PRIOR, MODEL, TRAIN, out, progress=False)
    assert resumed.info["record"]["steps"] == 12
    assert_same_weights(state_of(model_a), state_of(resumed))
    # The saved checkpoint holds the same weights.
    assert_same_weights(state_of(model_a), load_file(str(out / "model.safetensors")))
    # Resuming a finished run changes nothing.
    finished = train(PRIOR, MODEL, TRAIN, out, progress=False)
    assert_same_weights(state_of(model_a), state_of(finished))


def test_resume_restores_optimizer_state_and_gradient_accumulation(tmp_path):
    cfg = replace(TRAIN, steps=6, batch_size=4, accumulate=2, weight_decay=0.01, checkpoint_every=2, val_every=3)
    whole = train(PRIOR, MODEL, cfg, tmp_path / "whole", progress=False)
    train(PRIOR, MODEL, cfg, tmp_path / "parts", progress=False, stop_after=3)
    parts = train(PRIOR, MODEL, cfg, tmp_path / "parts", progress=False)
    assert_same_weights(state_of(whole), state_of(parts))


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


@pytest.mark.parametrize(
    "overrides, match",
    [
        ({"max_context": 20}, "at least one query"),
        ({"min_context": 0}, "min_context"),
        ({"min_context": 5, "max_context": 4}, "min_context"),
        ({"min_features": 3, "max_features": 2}, "min_features"),
        ({"steps": 0}, "steps"),
        ({"accumulate": 0}, "accumulate"),
    ],
)
def test_train_config_rejects_bad_values(overrides, match):
    with pytest.raises(ValueError, match=match):
        replace(TRAIN, **overrides)


def test_train_config_from_dict_rejects_unknown_fields():
    with pytest.raises(ValueError, match="unknown TrainConfig fields"):
        TrainConfig.from_dict({"step": 10})


def test_cli_train_writes_a_loadable_checkpoint(tmp_path, capsys):
    config = {"prior": PRIOR.to_dict(), "model": MODEL.to_dict(), "train": {**TRAIN.to_dict(), "steps": 5}}
    path = tmp_path / "tiny.json"
    path.write_text(json.dumps(config))
    out = tmp_path / "out"
    cli_main(["train", str(path), "--out", str(out)])
    assert f"saved {out}: steps=5" in capsys.readouterr().out
    model = pfn.load(out)
    assert model.info["record"]["steps"] == 5
    assert model.config == MODEL
    # --steps overrides and resumes the same run.
    cli_main(["train", str(path), "--out", str(out), "--steps", "6"])
    assert "steps=6" in capsys.readouterr().out


def test_cli_train_stop_after_then_resume(tmp_path, capsys):
    config = {"prior": PRIOR.to_dict(), "model": MODEL.to_dict(), "train": {**TRAIN.to_dict(), "steps": 6}}
    path = tmp_path / "tiny.json"
    path.write_text(json.dumps(config))
    cli_main(["train", str(path), "--out", str(tmp_path / "a")])
    cli_main(["train", str(path), "--out", str(tmp_path / "b"), "--stop-after", "4"])
    assert "steps=4" in capsys.readouterr().out.splitlines()[-1]
    cli_main(["train", str(path), "--out", str(tmp_path / "b")])
    assert_same_weights(load_file(str(tmp_path / "a" / "model.safetensors")),
                        load_file(str(tmp_path / "b" / "model.safetensors")))


def test_cli_train_reports_missing_configs_and_sections(tmp_path):
    with pytest.raises(SystemExit, match="no config file"):
        cli_main(["train", str(tmp_path / "missing.json")])
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"prior": PRIOR.to_dict()}))
    with pytest.raises(SystemExit, match="lacks the sections"):
        cli_main(["train", str(bad)])

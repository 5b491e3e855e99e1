"""The `pfn` command line, in-process: train/resume/continue, ship, list, and one-line errors."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import torch
from test_training import MODEL, PRIOR, TRAIN, assert_same_weights, state_of

import pfn
import pfn.checkpoint as ckpt
from pfn.cli import _parser, config_names, load_run_config, main
from pfn.riemann import tail_borders
from pfn.training import prior_targets


def write_config(tmp_path: Path, name: str = "tiny", **train: object) -> Path:
    path = tmp_path / f"{name}.json"
    path.write_text(json.dumps({"prior": PRIOR.to_dict(), "model": MODEL.to_dict(),
                                "train": {**TRAIN.to_dict(), "steps": 5, **train}}))
    return path


def fails(argv: list[str], match: str) -> str:
    """Runs `pfn argv`, which must exit with a one-line message matching `match`; returns it."""
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    message = exit_info.value.code
    assert isinstance(message, str) and "\n" not in message, message
    assert re.search(match, message), message
    return message


@pytest.fixture
def pretrained(tmp_path, monkeypatch) -> Path:
    """An empty temporary `PRETRAINED_DIR`."""
    root = tmp_path / "pretrained"
    root.mkdir()
    monkeypatch.setattr(ckpt, "PRETRAINED_DIR", root)
    return root


# --- train, resume, continue --------------------------------------------------------------------

def test_train_writes_a_loadable_run_and_says_when_it_is_complete(tmp_path, capsys):
    config, out = write_config(tmp_path), tmp_path / "out"
    main(["train", str(config), "--out", str(out)])
    assert f"run {out} is complete (5 of 5 steps): steps=5 tables=40 " in capsys.readouterr().out
    model = pfn.load(out)
    assert model.info["record"]["steps"] == 5 and model.config == MODEL
    main(["train", str(config), "--out", str(out)])  # a finished run: its record again, nothing trained
    assert f"run {out} is complete (5 of 5 steps): steps=5" in capsys.readouterr().out
    assert_same_weights(state_of(model), state_of(pfn.load(out)))


def test_stop_after_then_resume_and_stop_after_zero(tmp_path, capsys):
    config = write_config(tmp_path, steps=6)
    main(["train", str(config), "--out", str(tmp_path / "a")])
    main(["train", str(config), "--out", str(tmp_path / "b"), "--stop-after", "4"])
    assert "stopped run" in capsys.readouterr().out.splitlines()[-1]
    main(["train", str(config), "--out", str(tmp_path / "b")])
    assert_same_weights(state_of(pfn.load(tmp_path / "a")), state_of(pfn.load(tmp_path / "b")))
    main(["train", str(config), "--out", str(tmp_path / "c"), "--stop-after", "0"])
    assert "at step 0 of 6; the same command resumes it: steps=0 tables=0 train_loss=- val_loss=-" in \
        capsys.readouterr().out


def test_resume_with_another_config_is_refused_unless_allowed(tmp_path, capsys):
    out = tmp_path / "out"
    main(["train", str(write_config(tmp_path)), "--out", str(out)])
    changed = write_config(tmp_path, name="changed", lr=2e-3)
    fails(["train", str(changed), "--out", str(out)], r"another configuration \(train\.lr: 0\.001 -> 0\.002\).*"
                                                      r"--allow-change lr")
    fails(["train", str(write_config(tmp_path)), "--out", str(out), "--steps", "8"], "--allow-change steps")
    main(["train", str(changed), "--out", str(out), "--steps", "8", "--allow-change", "steps,lr"])
    assert "is complete (8 of 8 steps)" in capsys.readouterr().out
    record = pfn.load(out).info["record"]
    assert [c["field"] for c in record["changes"]] == ["train.lr", "train.steps"]
    other = tmp_path / "other.json"
    other.write_text(json.dumps({**json.loads(changed.read_text()), "model": {**MODEL.to_dict(), "d_model": 16,
                                                                             "d_ff": 32}}))
    fails(["train", str(other), "--out", str(out)], r"another architecture \(model\.d_ff: 64 -> 32")


def test_init_from_a_shipped_name_continues_it_and_list_shows_the_lineage(tmp_path, pretrained, capsys):
    config = write_config(tmp_path)
    main(["train", str(config), "--out", str(tmp_path / "first")])
    main(["ship", str(tmp_path / "first"), "tiny", "--config", str(config)])
    main(["train", str(config), "--out", str(tmp_path / "second"), "--init-from", "tiny"])
    second = pfn.load(tmp_path / "second")
    assert second.info["record"]["init_from"] == "tiny" and second.info["record"]["init_parts"] == "all"
    assert torch.equal(second.head.borders, pfn.load("tiny").head.borders)
    main(["ship", str(tmp_path / "second"), "tiny-2"])
    capsys.readouterr()
    main(["list"])
    lines = capsys.readouterr().out.splitlines()
    assert any(line.startswith("tiny: ") and "1 stage(s), 40 tables" in line for line in lines)
    assert any(line.startswith("tiny-2: ") and "2 stage(s), 80 tables" in line and "CPU hours in all" in line
               for line in lines)


# --- one-line errors ----------------------------------------------------------------------------

def test_config_errors_name_the_file(tmp_path):
    fails(["train", str(tmp_path / "missing.json")], "no config file")
    bad = tmp_path / "bad.json"
    bad.write_text("{ not json")
    fails(["train", str(bad)], f"{bad} is not a valid JSON config")
    bad.write_text(json.dumps({"prior": PRIOR.to_dict()}))
    fails(["train", str(bad)], "lacks the sections")
    bad.write_text(json.dumps({"prior": {"type": "Nope"}, "model": {}, "train": {}}))
    fails(["train", str(bad)], f"{bad} is not a valid config: unknown prior type 'Nope'")
    fails(["train", str(write_config(tmp_path, max_features=6))], "train.max_features=6 exceeds model.max_features=4")


@pytest.mark.parametrize(
    "args, train, match",
    [
        (["--steps", "0"], {}, r"with the command-line overrides \{'steps': 0\}\) is not a valid config: .*steps=0"),
        ([], {"checkpoint_every": 0}, "checkpoint_every=0:? must be >= 1"),
        ([], {"val_every": 0}, "val_every=0:? must be >= 1"),
        (["--stop-after", "-1"], {}, "stop_after=-1 must be >= 0"),
        (["--init-from", "nowhere/model"], {}, "'nowhere/model' is neither a checkpoint folder nor a shipped model"),
        (["--init-parts", "all", "--init-from", "tiny"], {}, "'tiny' is neither a checkpoint folder nor a shipped"),
    ],
)
def test_bad_train_settings_exit_with_one_line(tmp_path, pretrained, args, train, match):
    fails(["train", str(write_config(tmp_path, **train)), "--out", str(tmp_path / "out"), *args], match)


def test_init_parts_without_init_from_is_refused_before_training(tmp_path):
    out = tmp_path / "out"
    for parts in ("deepen", "all"):
        fails(["train", str(write_config(tmp_path)), "--out", str(out), "--init-parts", parts],
              f"pfn train: --init-parts {parts} .* names none: add --init-from")
    assert not out.exists()


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without a GPU")
def test_cuda_on_a_cpu_build_exits_with_one_line(tmp_path):
    fails(["train", str(write_config(tmp_path)), "--out", str(tmp_path / "out"), "--device", "cuda"],
          "device='cuda' but torch sees no CUDA GPU here")


def test_out_must_be_a_run_folder(tmp_path, tiny_pfn):
    config = write_config(tmp_path)
    (tmp_path / "file").write_text("x")
    fails(["train", str(config), "--out", str(tmp_path / "file")], "is a file")
    folder = ckpt.save_checkpoint(tiny_pfn, tmp_path / "ckpt")
    before = {p.name: p.read_bytes() for p in folder.iterdir()}
    fails(["train", str(config), "--out", str(folder)], "holds no training run but other files")
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == before


# --- refit-tails ---------------------------------------------------------------------------------

def test_refit_tails_changes_only_the_outer_borders_to_the_priors_tail_means(tmp_path, tiny_pfn, capsys):
    main(["train", str(write_config(tmp_path)), "--out", str(tmp_path / "run")])
    model = pfn.load(tmp_path / "run")
    with torch.no_grad():  # tails as wide as the 0 and 1 quantiles of a heavy-tailed prior would give
        model.head.borders[0], model.head.borders[-1] = -100.0, 100.0
    wide = ckpt.save_checkpoint(model, tmp_path / "wide")
    main(["refit-tails", str(wide), "--out", str(tmp_path / "refit"), "--samples", "3000"])
    assert "outer borders -100, 100 -> " in capsys.readouterr().out
    refit = pfn.load(tmp_path / "refit")
    targets = prior_targets(PRIOR, TRAIN, torch.device("cpu"), 3000)
    expected = tail_borders(targets, model.head.borders)
    assert torch.equal(refit.head.borders, expected)
    assert torch.equal(refit.head.borders[1:-1], model.head.borders[1:-1])
    assert -100 < float(refit.head.borders[0]) < float(refit.head.borders[1])
    assert_same_weights({k: v for k, v in state_of(model).items() if k != "head.borders"},
                        {k: v for k, v in state_of(refit).items() if k != "head.borders"})
    assert refit.info["record"]["tail_refit"]["outer_borders_before"] == [-100.0, 100.0]
    fails(["refit-tails", str(wide), "--out", str(tmp_path / "refit")], "is not empty")
    bare = ckpt.save_checkpoint(tiny_pfn, tmp_path / "bare")  # no training prior recorded
    fails(["refit-tails", str(bare), "--out", str(tmp_path / "x")], "not a bar-head model with its training prior")


@pytest.mark.parametrize("samples", ["0", "-5"])
def test_refit_tails_refuses_fewer_than_one_sample(tmp_path, tiny_pfn, samples):
    run = ckpt.save_checkpoint(tiny_pfn, tmp_path / "run")
    fails(["refit-tails", str(run), "--out", str(tmp_path / "refit"), "--samples", samples],
          f"pfn refit-tails: --samples {samples}: draw at least 1 prior target")
    assert not (tmp_path / "refit").exists()


# --- ship and list ------------------------------------------------------------------------------

def test_ship_refuses_names_that_are_not_identifiers(tmp_path, tiny_pfn, pretrained):
    run = ckpt.save_checkpoint(tiny_pfn, tmp_path / "run")
    for name in ("../escape", "a/b", "Upper", "_under", ".hidden", ""):
        fails(["ship", str(run), name], "is not a model name")
    assert list(pretrained.iterdir()) == [] and not (tmp_path / "escape").exists()


def test_ship_replaces_a_shipped_model_only_with_force(tmp_path, tiny_pfn, pretrained):
    run = ckpt.save_checkpoint(tiny_pfn, tmp_path / "run")
    main(["ship", str(run), "tiny"])
    before = (pretrained / "tiny" / "model.safetensors").read_bytes()
    with torch.no_grad():
        tiny_pfn.head.proj.bias.add_(1.0)
    ckpt.save_checkpoint(tiny_pfn, run)
    fails(["ship", str(run), "tiny"], "exists already.*--force")
    assert (pretrained / "tiny" / "model.safetensors").read_bytes() == before
    main(["ship", str(run), "tiny", "--force"])
    assert torch.equal(pfn.load("tiny").head.proj.bias, tiny_pfn.head.proj.bias)


def test_ship_of_a_missing_run_says_which_command_and_path_failed(tmp_path, pretrained):
    message = fails(["ship", str(tmp_path / "nowhere"), "tiny"], "^pfn ship: ")
    assert "None" not in message and str(tmp_path / "nowhere") in message
    assert list(pretrained.iterdir()) == []


def test_ship_records_the_config_in_the_command_it_lists(tmp_path, tiny_pfn, pretrained, capsys):
    run = ckpt.save_checkpoint(tiny_pfn, tmp_path / "run")
    main(["ship", str(run), "tiny", "--config", "lcpfn-small"])
    assert pfn.load("tiny").info["command"] == (f"pfn train lcpfn-small --out {run} && "
                                                f"pfn ship {run} tiny --config lcpfn-small")
    main(["ship", str(run), "other", "--command", "make other"])
    assert pfn.load("other").info["command"] == "make other"
    capsys.readouterr()
    main(["list"])
    assert f"  reproduce: pfn train lcpfn-small --out {run} && pfn ship {run} tiny --config lcpfn-small" in \
        capsys.readouterr().out


def test_list_reports_a_corrupt_manifest_and_a_missing_model(tmp_path, tiny_pfn, pretrained, capsys):
    main(["ship", str(ckpt.save_checkpoint(tiny_pfn, tmp_path / "run")), "tiny"])
    main(["ship", str(tmp_path / "run"), "gone"])
    for path in (pretrained / "gone").iterdir():
        path.unlink()
    (pretrained / "gone").rmdir()
    capsys.readouterr()
    fails(["list"], "1 shipped model\\(s\\) failed verification: gone")
    out = capsys.readouterr().out
    assert "tiny: " in out and f"gone: BROKEN: {pretrained / 'gone'}/" in out and "is missing" in out
    (pretrained / "MANIFEST.json").write_text("{ not json")
    fails(["list"], f"pfn list: {pretrained / 'MANIFEST.json'} is not a valid manifest")


@pytest.mark.parametrize("config", config_names())
def test_every_shipped_training_config_builds_its_prior_model_and_a_batch(config):
    from pfn.architectures import build_model
    from pfn.config import ModelConfig, TrainConfig
    from pfn.training import draw_batch, initial_head_state
    from priors import prior_from_dict

    _, cfg = load_run_config(config)
    prior = prior_from_dict(cfg["prior"])
    model_cfg = ModelConfig.from_dict(cfg["model"])
    train_cfg = TrainConfig.from_dict({**cfg["train"], "batch_size": 2})
    assert train_cfg.max_features <= model_cfg.max_features
    batch = draw_batch(prior, train_cfg, torch.Generator().manual_seed(0), torch.device("cpu"))
    assert batch.x.shape[:2] == (2, train_cfg.n_points) and torch.isfinite(batch.y).all()
    border_cfg = TrainConfig.from_dict({**train_cfg.to_dict(), "border_samples": 4 * model_cfg.n_buckets})
    head_state = initial_head_state(prior, model_cfg, border_cfg, torch.device("cpu"))
    assert build_model(model_cfg, head_state).config == model_cfg


# --- demo ----------------------------------------------------------------------------------------

@pytest.fixture
def no_demo_parts(monkeypatch) -> list[str]:
    """`pfn demo` parts replaced by none; the list records any lookup of them."""
    import pfn.cli

    looked_up: list[str] = []
    monkeypatch.setattr(pfn.cli, "demo_parts", lambda: looked_up.append("parts") or [])
    return looked_up


def test_demo_refuses_an_out_that_is_a_file_before_running_any_part(tmp_path, no_demo_parts):
    (tmp_path / "plot.png").write_text("x")
    fails(["demo", "--out", str(tmp_path / "plot.png")], r"pfn demo: --out .*plot\.png is a file; give a folder")
    fails(["demo", "--out", str(tmp_path / "plot.png" / "sub")], "pfn demo: cannot create the folder --out")
    assert no_demo_parts == []
    main(["demo", "--out", str(tmp_path / "new" / "plots")])
    assert (tmp_path / "new" / "plots").is_dir() and no_demo_parts == ["parts"]


def test_demo_out_help_says_it_is_a_folder_of_plots():
    demo = next(a for a in _parser()._subparsers._group_actions[0].choices["demo"]._actions if a.dest == "out")
    assert demo.help.startswith("folder for the demo's plots")


# --- the README's command-line section ------------------------------------------------------------

def readme_usage(command: str) -> str:
    """The usage line of `pfn COMMAND` in the README's command-line section."""
    section = (Path(__file__).resolve().parent.parent / "README.md").read_text().split("## Command line")[1]
    match = re.search(rf"^- `pfn {command}( [^`]*)?`", section.split("\n## ")[0], flags=re.MULTILINE)
    assert match, f"the README's command-line section has no usage line for pfn {command}"
    return match.group(0)


@pytest.mark.parametrize("command", sorted(_parser()._subparsers._group_actions[0].choices))
def test_readme_usage_lists_every_option_of_every_command(command):
    options = [a.option_strings[-1] for a in _parser()._subparsers._group_actions[0].choices[command]._actions
               if a.option_strings and a.dest != "help"]
    usage = readme_usage(command)
    assert all(option in usage for option in options), (usage, options)

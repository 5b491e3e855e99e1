"""One recipe per shipped model: `pfn reproduce NAME` replays every stage that made it, from committed files."""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

import pytest
from test_cli import fails, pretrained, write_config  # noqa: F401  (pretrained is a fixture)

import pfn
from pfn.checkpoint import read_checkpoint, read_manifest, verify_shipped
from pfn.cli import CONFIG_DIR, EXPERIMENT_DIR, load_run_config, main
from pfn.recipe import find_recipe, load_recipe, recipe_commands, recipe_names

SHIPPED = sorted(read_manifest()["models"])


def recorded_command(name: str) -> str:
    """The command that `pretrained/NAME` records (what `pfn list` printed before recipes), comment dropped."""
    config, _ = read_checkpoint(verify_shipped(name))
    return config["command"].split("  # ")[0]


@pytest.mark.parametrize("name", SHIPPED)
def test_each_shipped_model_has_a_recipe_that_replays_its_recorded_commands(name):
    assert find_recipe(name) is not None, f"pretrained/{name} has no recipe pfn/recipes/{name}.json"
    expected = recorded_command(name)
    if expected.startswith("pfn reproduce "):  # shipped by replaying its recipe
        assert expected.split()[2] == name
        return
    if name == "lcpfn":  # `pfn ship` left --config out of the command it recorded (fixed); the recipe has it
        expected = expected.replace("pfn ship runs/lcpfn-small lcpfn", "pfn ship runs/lcpfn-small lcpfn --config "
                                    "lcpfn-small")
    assert " && ".join(recipe_commands(load_recipe(name))) == expected


def test_recipes_and_configs_are_apart_and_every_config_name_resolves():
    used = {stage["train"] for name in recipe_names() for stage in load_recipe(name).stages if "train" in stage}
    stages = {p.stem for p in CONFIG_DIR.glob("*.json")}
    experiments = {p.stem for p in EXPERIMENT_DIR.glob("*.json")}
    assert stages == used, "pfn/configs/ holds exactly the configs the recipes train; others go to experiments/"
    assert experiments and not experiments & (stages | used)
    assert set(recipe_names()) == set(SHIPPED)
    for name in stages | experiments:
        assert load_run_config(name)[0].stem == name


def test_the_bo_deepen_stage_in_training_keeps_its_name_and_content():
    path, _ = load_run_config("bo-deepen")  # `pfn train bo-deepen --out runs/bo-deepen` must resume
    assert hashlib.sha256(path.read_bytes()).hexdigest() == \
        "dacc250f59eed9dd5f052def158718c5b3e0d51fbda83d760a634b68cfb9be4b"


def test_list_shows_one_reproduce_command_per_shipped_model(capsys):
    main(["list"])
    lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith("  reproduce: ")]
    assert [re.match(r"  reproduce: pfn reproduce ([\w-]+)  # ", line).group(1) for line in lines] == SHIPPED
    assert all("&&" not in line for line in lines)


def test_dry_run_prints_the_stage_commands_and_runs_nothing(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    main(["reproduce", "tabular-clf", "--dry-run", "--device", "cpu"])
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("# ") and "(init_from)" in lines[0]
    assert lines[1:] == [
        "pfn train tabular-clf-row --out runs/tabular-clf-row --steps 40000 --stop-after 8000 --device cpu",
        "pfn train tabular-clf-row --out runs/tabular-clf-row --allow-change steps --device cpu",
        "pfn train tabular-clf-row-long --out runs/tabular-clf-row-long --device cpu",
        "pfn ship runs/tabular-clf-row-long tabular-clf --config tabular-clf-row-long --force"]
    assert list(tmp_path.iterdir()) == []


def write_recipe(tmp_path: Path, stages: list, name: str = "tiny") -> Path:
    path = tmp_path / f"{name}.json"
    path.write_text(json.dumps({"stages": stages}))
    return path


def test_a_two_stage_recipe_replays_for_real(tmp_path, pretrained, monkeypatch, capsys):  # noqa: F811
    monkeypatch.chdir(tmp_path)
    first = write_config(tmp_path, name="first", steps=6)
    second = tmp_path / "second.json"
    second.write_text(json.dumps({**json.loads(first.read_text()), "train": {
        **json.loads(first.read_text())["train"], "steps": 3, "init_from": "tiny"}}))
    recipe = write_recipe(tmp_path, [
        {"train": str(first), "out": "runs/first", "stop_after": 4},
        {"train": str(first), "out": "runs/first"},
        {"ship": "runs/first"},
        {"train": str(second), "out": "runs/second"},
        {"ship": "runs/second", "config": str(second), "force": True}])
    main(["reproduce", str(recipe)])
    out = capsys.readouterr().out
    assert "[1/5] pfn train" in out and "stopped run runs/first at step 4 of 6" in out and "[5/5] pfn ship" in out
    shipped = pfn.load("tiny")
    record = shipped.info["record"]
    assert [stage["record"]["steps"] for stage in record["lineage"]] == [6] and record["steps"] == 3
    assert record["init_from"] == "tiny" and shipped.info["command"] == f"pfn reproduce {recipe}"
    fails(["reproduce", str(recipe)], "'tiny' exists already")  # the first ship lacks --force
    main(["reproduce", str(recipe), "--force"])  # replayed again: every run is complete, nothing trained
    out = capsys.readouterr().out
    assert "run runs/first is complete (6 of 6 steps)" in out and "run runs/second is complete (3 of 3 steps)" in out
    assert pfn.load("tiny").info["record"] == record


def test_a_recipe_that_changes_its_schedule_replays_again_after_it_went_past_the_change(
        tmp_path, pretrained, monkeypatch, capsys):  # noqa: F811
    monkeypatch.chdir(tmp_path)
    config = write_config(tmp_path, name="sched", steps=5)
    recipe = write_recipe(tmp_path, [{"train": str(config), "out": "runs/sched", "steps": 8, "stop_after": 3},
                                     {"train": str(config), "out": "runs/sched", "allow_change": ["steps"]},
                                     {"ship": "runs/sched", "force": True}], name="resched")
    main(["reproduce", str(recipe)])
    capsys.readouterr()
    main(["reproduce", str(recipe)])  # the first stage's --steps 8 differs from the run's changed schedule
    out = capsys.readouterr().out
    assert "done: runs/sched stands at step 5, at or past this stage's --stop-after" in out
    assert "run runs/sched is complete (5 of 5 steps)" in out and "[3/3] pfn ship" in out


def test_replay_checks_every_config_before_running_a_stage(tmp_path, pretrained, monkeypatch):  # noqa: F811
    monkeypatch.chdir(tmp_path)
    recipe = write_recipe(tmp_path, [{"train": str(write_config(tmp_path, name="a")), "out": "runs/a"},
                                     {"train": "no-such-config", "out": "runs/b"}, {"ship": "runs/b"}])
    fails(["reproduce", str(recipe)], "pfn train: no config file 'no-such-config'")
    assert not (tmp_path / "runs").exists()


@pytest.mark.parametrize("content, match", [
    ("{ not json", "is not a valid JSON recipe"),
    (json.dumps({"stages": []}), "a non-empty list 'stages'"),
    (json.dumps({"stages": [{"ship": "runs/a"}], "notes": "x"}), r"not \['notes', 'stages'\]"),
    (json.dumps({"stages": [{"train": "gp", "out": "runs/a"}]}), "the last stage must ship"),
    (json.dumps({"stages": [{"train": "gp"}, {"ship": "runs/a"}]}), "train stage 1 needs 'out'"),
    (json.dumps({"stages": [{"train": "gp", "ship": "x"}]}), "stage 1 must be an object with either"),
    (json.dumps({"stages": [{"train": "gp", "out": "r", "stop-after": 3}, {"ship": "r"}]}),
     r"stage 1 has unknown fields \['stop-after'\]"),
    (json.dumps({"stages": [{"train": "gp", "out": "r", "steps": "60"}, {"ship": "r"}]}),
     "stage 1 field 'steps'='60' must be int"),
    (json.dumps({"stages": [{"train": "gp", "out": "r", "steps": True}, {"ship": "r"}]}), "must be int"),
    (json.dumps({"stages": [{"train": "gp", "out": "r", "allow_change": []}, {"ship": "r"}]}),
     "must be a non-empty list of field names"),
])
def test_a_bad_recipe_is_refused_naming_the_file_and_stage(tmp_path, content, match):
    path = tmp_path / "bad.json"
    path.write_text(content)
    message = fails(["reproduce", str(path)], f"^pfn reproduce: {re.escape(str(path))}")
    assert re.search(match, message), message
    fails(["reproduce", "no-such-model"], r"no recipe 'no-such-model': give a shipped model's name \(one of \[")

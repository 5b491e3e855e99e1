"""Saved optimiser states: verified by a sha256 of their content, one clear error for every bad file."""

from __future__ import annotations

import json
import warnings

import pytest

import bo
from bo.state import LEGACY_FORMAT, StateFileError, check_state

SPACE = {"x": bo.Float(0.0, 1.0), "act": bo.Categorical(["relu", "tanh"])}
FAST = bo.AcquisitionOptimizer(n_candidates=32, n_around_best=8, n_starts=2, maxiter=5)


@pytest.fixture
def saved(tmp_path):
    """A file saved by an optimiser with one complete, one failed and one pending trial."""
    opt = bo.Optimizer(SPACE, surrogate="gp", seed=3, n_initial=3, acquisition_optimizer=FAST)
    a, b, _ = opt.ask(3)
    opt.tell(a, 0.5)
    opt.tell(b, None)
    return opt.save(tmp_path / "run.json")


def _rewrite(path, edit) -> None:
    state = json.loads(path.read_text())
    edit(state)
    path.write_text(json.dumps(state, indent=1))


def test_a_state_file_with_an_edited_value_is_refused(saved):
    _rewrite(saved, lambda s: s["trials"][0].update(value=0.25))
    with pytest.raises(StateFileError, match=r"run\.json does not match its sha256"):
        bo.Optimizer.load(saved)


def test_reformatting_a_state_file_keeps_it_loadable(saved):
    saved.write_text(json.dumps(json.loads(saved.read_text()), indent=4, sort_keys=True))
    assert [t.state for t in bo.Optimizer.load(saved).trials] == ["complete", "failed", "pending"]


def test_a_state_file_without_its_checksum_is_refused(saved):
    _rewrite(saved, lambda s: s.pop("sha256"))
    with pytest.raises(StateFileError, match="no sha256"):
        bo.Optimizer.load(saved)


def test_a_state_file_of_the_format_before_checksums_loads_with_a_warning(saved):
    def legacy(state: dict) -> None:
        state.pop("sha256")
        state["format"] = LEGACY_FORMAT

    _rewrite(saved, legacy)
    with pytest.warns(UserWarning, match="cannot be verified"):
        opt = bo.Optimizer.load(saved)
    assert [t.value for t in opt.trials] == [0.5, None, None]
    opt.save(saved)  # saved again, it carries a checksum
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        bo.Optimizer.load(saved)


@pytest.mark.parametrize("content, match", [
    (b"", "the file is empty"),
    (b'{"format": "bo.Optimizer/2", "space": {"x": {"type": "fl', "not valid JSON"),
    (b"\x89PNG\r\n\x1a\n\x00\x00\xff\xfe", "not a UTF-8 text file"),
    (b"[1, 2, 3]", "holds a JSON list"),
    (b'"bo.Optimizer/2"', "holds a JSON str"),
    (b"{}", "not a saved optimizer state"),
    (b'{"space": {}, "trials": []}', "not a saved optimizer state"),
])
def test_a_broken_state_file_raises_one_clear_error_naming_it(tmp_path, content, match):
    path = tmp_path / "broken.json"
    path.write_bytes(content)
    with pytest.raises(StateFileError, match=match) as info:
        bo.Optimizer.load(path)
    assert str(path) in str(info.value) and isinstance(info.value, ValueError)


def test_a_missing_state_file_raises_the_same_error(tmp_path):
    with pytest.raises(StateFileError, match="cannot read the optimizer state"):
        bo.Optimizer.load(tmp_path / "nowhere.json")


def _state(saved) -> dict:
    state = json.loads(saved.read_text())
    state.pop("sha256")
    return state


@pytest.mark.parametrize("edit, match", [
    (lambda s: s.pop("trials"), "lacks trials"),
    (lambda s: s.update(n_initial="3"), "n_initial must be a positive integer"),
    (lambda s: s.update(seed=1.5), "seed must be an integer"),
    (lambda s: s.update(direction="up"), "direction"),
    (lambda s: s.update(surrogate=3), "surrogate must be a name"),
    (lambda s: s.update(space=[1]), "space"),
    (lambda s: s.update(rng={"bit_generator": "nope"}), "rng"),
    (lambda s: s["acquisition_optimizer"].update(n_starts="4"), "acquisition_optimizer"),
    (lambda s: s["trials"][0].update(value="0.5"), r"trials\[0\]: a complete trial's value must be a finite number"),
    (lambda s: s["trials"][1].update(value=2.0), r"trials\[1\]: a failed trial's value must be null"),
    (lambda s: s["trials"][2].update(state="running"), r"trials\[2\]: state must be one of"),
    (lambda s: s["trials"][0]["params"].update(x=2.0), r"trials\[0\]:.*outside"),
    (lambda s: s["trials"][0].update(number=5), r"trials\[0\]: number must be the trial's position 0"),
    (lambda s: s["trials"][0].pop("end"), r"trials\[0\]: a trial has the keys"),
    (lambda s: s["trials"][0].update(start="noon"), r"trials\[0\]: start must be a time"),
])
def test_a_state_with_a_field_of_the_wrong_type_is_refused_naming_the_field(saved, edit, match):
    state = _state(saved)
    edit(state)
    with pytest.raises(ValueError, match=match):
        check_state(state)
    opt = bo.Optimizer(SPACE, surrogate="gp", seed=3)
    with pytest.raises(ValueError, match=match):
        opt.load_state_dict(state)
    assert opt.trials == []  # a refused state changes nothing


def test_a_state_edited_on_purpose_goes_through_load_state_dict(saved):
    state = _state(saved)
    state["trials"][0]["value"] = 0.25
    opt = bo.Optimizer(SPACE, surrogate="gp")
    opt.load_state_dict(state)
    opt.save(saved)
    assert bo.Optimizer.load(saved).trials[0].value == 0.25

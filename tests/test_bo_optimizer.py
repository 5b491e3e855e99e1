"""`bo.Optimizer`: ask/tell, pending points, failed trials, directions, and exact resume from JSON."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

import bo
from bo.surrogates import PFNSurrogate

SPACE = {"x": bo.Float(0.0, 1.0), "lr": bo.Float(1e-4, 1e-1, log=True), "n": bo.Int(1, 6),
         "act": bo.Categorical(["relu", "tanh", "gelu"])}
FAST = bo.AcquisitionOptimizer(n_candidates=64, n_around_best=16, n_starts=2, maxiter=20)


def objective(p: dict) -> float:
    return (p["x"] - 0.3) ** 2 + (math.log10(p["lr"]) + 2.5) ** 2 / 4 + (p["n"] - 4) ** 2 / 10 + (p["act"] != "tanh")


def _optimizer(surrogate, **kwargs) -> bo.Optimizer:
    return bo.Optimizer(SPACE, surrogate=surrogate, seed=kwargs.pop("seed", 0), acquisition_optimizer=FAST, **kwargs)


def _run(opt: bo.Optimizer, n: int) -> None:
    for _ in range(n):
        (p,) = opt.ask()
        opt.tell(p, objective(p))


@pytest.fixture
def surrogate(tiny_pfn) -> PFNSurrogate:
    return PFNSurrogate(tiny_pfn)


# --- ask and tell ------------------------------------------------------------------------------

@pytest.mark.parametrize("kind", ["pfn", "gp"])
def test_pending_points_are_fantasised_so_a_batch_spreads_out(kind):
    """Each suggestion of a batch is made by the surrogate conditioned on the pending ones (its
    uncertainty there collapses), so the batch spreads out. Measured (seed 1, 2 floats, after 5
    trials): the 4 suggestions are at least 0.093 (shipped PFN) and 0.239 (GP) apart; with
    `condition` returning the surrogate unchanged, they all lie within 0.0005 of one point (the
    exclusion of exact repeats alone keeps them distinct)."""
    space = {"x": bo.Float(0.0, 1.0), "y": bo.Float(0.0, 1.0)}
    opt = bo.Optimizer(space, surrogate=PFNSurrogate("bo") if kind == "pfn" else "gp", seed=1, n_initial=4,
                       acquisition_optimizer=FAST)
    for _ in range(5):
        (p,) = opt.ask()
        opt.tell(p, (p["x"] - 0.3) ** 2 + (p["y"] - 0.6) ** 2)
    batch = opt.ask(3) + opt.ask()
    X = opt.space.encode(batch)
    assert float((torch.cdist(X, X) + torch.eye(4)).min()) > 0.03
    assert [t.state for t in opt.trials] == ["complete"] * 5 + ["pending"] * 4
    for p in batch:
        opt.tell(p, 1.0)
    assert all(t.state == "complete" for t in opt.trials) and opt.trials[-1].duration >= 0


def test_initial_design_is_a_sobol_sequence_then_model_based(surrogate):
    opt = _optimizer(surrogate, n_initial=3, seed=5)
    first = opt.ask(3)
    assert first == bo.Space(SPACE).sample(3, seed=5)
    for p in first:
        opt.tell(p, objective(p))
    assert opt.ask() != bo.Space(SPACE).sample(4, seed=5)[3:]
    assert bo.Optimizer(SPACE, surrogate=surrogate).n_initial == 5  # d + 1


def test_failed_trials_are_recorded_imputed_as_the_worst_and_never_fatal(surrogate):
    opt = _optimizer(surrogate, n_initial=3)
    params = opt.ask(6)
    results = [opt.tell(params[0], 2.0), opt.tell(params[1], float("nan")), opt.tell(params[2], math.inf),
               opt.tell(params[3], None), opt.tell(params[4], 0.5, failed=True), opt.tell(params[5], 1.0)]
    assert [t.state for t in results] == ["complete", "failed", "failed", "failed", "failed", "complete"]
    assert [t.value for t in results] == [2.0, None, None, None, None, 1.0]
    X, y, complete = opt.training_data()
    assert y.tolist() == [2.0, 2.0, 2.0, 2.0, 2.0, 1.0]
    assert complete.tolist() == [True, False, False, False, False, True]
    assert opt.best_value == 1.0 and opt.best_params == params[5]
    opt.ask(2)  # the model-based search goes on


def test_without_a_complete_trial_the_initial_design_goes_on(surrogate):
    opt = _optimizer(surrogate, n_initial=2)
    for _ in range(4):
        (p,) = opt.ask()
        opt.tell(p, math.nan)
    assert opt.best_trial is None and opt.best_value is None
    assert opt.ask() == bo.Space(SPACE).sample(5, seed=0)[4:]


def test_tell_accepts_unasked_points_and_rejects_bad_input(surrogate):
    opt = _optimizer(surrogate)
    trial = opt.tell({"x": 0.5, "lr": 0.01, "n": 2, "act": "relu"}, 3.0)
    assert trial.number == 0 and trial.state == "complete" and opt.trials == [trial]
    with pytest.raises(ValueError, match="outside"):
        opt.tell({"x": 1.5, "lr": 0.01, "n": 2, "act": "relu"}, 3.0)
    with pytest.raises(ValueError, match="missing"):
        opt.tell({"x": 0.5}, 3.0)
    with pytest.raises(TypeError, match="real number"):
        opt.tell({"x": 0.5, "lr": 0.01, "n": 2, "act": "relu"}, "3.0")
    with pytest.raises(ValueError, match="positive integer"):
        opt.ask(0)


def test_tell_matches_a_pending_trial_by_type_as_well_as_value(surrogate):
    opt = bo.Optimizer({"flag": bo.Categorical([True, 1])}, surrogate=surrogate, seed=0)
    first, second = opt.ask(2)
    assert {type(first["flag"]), type(second["flag"])} == {bool, int}  # the Sobol design asks both
    told = opt.tell(second, 0.5)  # equal to `first` by ==, which would complete trial 0
    assert told.number == 1 and opt.trials[0].state == "pending" and type(told.params["flag"]) is type(second["flag"])
    assert opt.tell(first, 0.7).number == 0


@pytest.mark.parametrize("value", [np.array([1.0, 2.0]), np.array([1.5]), torch.tensor([0.5, 1.0]), True])
def test_tell_takes_one_number_per_trial(surrogate, value):
    opt = _optimizer(surrogate)
    (p,) = opt.ask()
    with pytest.raises(TypeError, match="one number per trial|real number"):
        opt.tell(p, value)
    assert opt.trials[0].state == "pending"


@pytest.mark.parametrize("value", [np.float64(1.5), np.float32(1.5), np.array(1.5), torch.tensor(1.5), np.int64(2)])
def test_tell_takes_numpy_and_torch_scalars(surrogate, value):
    opt = _optimizer(surrogate)
    (p,) = opt.ask()
    trial = opt.tell(p, value)
    assert trial.state == "complete" and trial.value == float(value) and type(trial.value) is float


def test_every_count_takes_any_integer_but_not_a_bool_or_a_float(surrogate):
    opt = bo.Optimizer(SPACE, surrogate=surrogate, seed=np.int64(3), n_initial=np.int32(2), acquisition_optimizer=bo.
                       AcquisitionOptimizer(n_candidates=np.int64(16), n_around_best=np.int64(4), n_starts=np.int8(2),
                                            maxiter=np.int64(3)))
    assert len(opt.ask(np.int64(2))) == 2 and type(opt.seed) is int and type(opt.n_initial) is int
    json.dumps(opt.state_dict())  # every count is a Python int
    assert len(bo.Space(SPACE).sample(np.int64(2), seed=np.int64(0))) == 2
    for bad in (True, 2.0, "2"):
        with pytest.raises(TypeError, match="must be a positive integer"):
            opt.ask(bad)
        with pytest.raises(TypeError, match="n_initial must be a positive integer"):
            bo.Optimizer(SPACE, surrogate=surrogate, n_initial=bad)
        with pytest.raises(TypeError, match="n_starts must be a positive integer"):
            bo.AcquisitionOptimizer(n_starts=bad)


@pytest.mark.parametrize("kwargs, match", [
    ({"direction": "up"}, "direction"), ({"n_initial": 0}, "n_initial"), ({"seed": -1}, "seed"),
    ({"acquisition": "nope"}, "unknown acquisition"), ({"surrogate": "forest"}, "unknown surrogate"),
])
def test_optimizer_arguments_are_validated(surrogate, kwargs, match):
    with pytest.raises(ValueError, match=match):
        bo.Optimizer(SPACE, **{"surrogate": surrogate, **kwargs})


def test_maximize_flips_the_objective_for_the_surrogate(surrogate):
    opt = _optimizer(surrogate, direction="maximize", n_initial=3)
    for p, v in zip(opt.ask(3), (1.0, 5.0, 3.0), strict=True):
        opt.tell(p, v)
    assert opt.best_value == 5.0
    assert opt.training_data()[1].tolist() == [-1.0, -5.0, -3.0]


def test_history_is_a_dataframe_with_one_row_per_trial(surrogate):
    opt = _optimizer(surrogate, n_initial=2)
    params = opt.ask(3)
    opt.tell(params[0], 1.5)
    opt.tell(params[1], math.nan)
    frame = opt.history()
    assert list(frame.columns) == ["number", "params_x", "params_lr", "params_n", "params_act", "value", "state",
                                   "start", "end", "duration"]
    assert frame["state"].tolist() == ["complete", "failed", "pending"]
    assert frame["value"].iloc[0] == 1.5 and math.isnan(frame["value"].iloc[1])
    assert str(frame["start"].dtype).startswith("datetime64") and frame["duration"].iloc[0].total_seconds() >= 0
    assert frame["end"].isna().iloc[2]


# --- resume ------------------------------------------------------------------------------------

@pytest.mark.parametrize("kind", ["pfn", "gp"])
def test_a_run_killed_and_resumed_from_json_makes_the_same_trials(tmp_path, tiny_pfn, kind):
    n_initial, k, total = 3, 5, 8 if kind == "pfn" else 6

    def surrogate():
        return PFNSurrogate(tiny_pfn) if kind == "pfn" else "gp"

    straight = _optimizer(surrogate(), n_initial=n_initial, seed=11)
    _run(straight, total)

    killed = _optimizer(surrogate(), n_initial=n_initial, seed=11)
    _run(killed, k)
    killed.save(tmp_path / "run.json")
    del killed
    state = json.loads((tmp_path / "run.json").read_text())
    json.dumps(state, allow_nan=False)  # strict JSON
    resumed = bo.Optimizer.load(tmp_path / "run.json", surrogate=surrogate() if kind == "pfn" else None)
    _run(resumed, total - k)

    assert [t.params for t in resumed.trials] == [t.params for t in straight.trials]
    assert [t.value for t in resumed.trials] == [t.value for t in straight.trials]


def test_pending_trials_survive_a_resume(tmp_path, surrogate):
    opt = _optimizer(surrogate, n_initial=2)
    _run(opt, 2)
    pending = opt.ask(2)
    opt.save(tmp_path / "run.json")
    resumed = bo.Optimizer.load(tmp_path / "run.json", surrogate=surrogate)
    assert [t.state for t in resumed.trials] == ["complete", "complete", "pending", "pending"]
    assert resumed.tell(pending[1], 0.25).number == 3


def test_loading_checks_the_state(tmp_path, surrogate):
    opt = _optimizer(surrogate)
    opt.save(tmp_path / "run.json")
    with pytest.raises(ValueError, match="Surrogate instance"):
        bo.Optimizer.load(tmp_path / "run.json")
    other = bo.Optimizer({"x": bo.Float(0, 2)}, surrogate=surrogate)
    with pytest.raises(ValueError, match="different space"):
        other.load_state_dict(opt.state_dict())
    with pytest.raises(ValueError, match="not a saved optimizer state"):
        other.load_state_dict({"format": "something else"})


def test_suggestions_do_not_touch_global_random_state(surrogate):
    opt = _optimizer("gp", n_initial=2)
    _run(opt, 2)
    torch.manual_seed(0)
    expected = torch.rand(3)
    torch.manual_seed(0)
    opt.ask()
    torch.testing.assert_close(torch.rand(3), expected)

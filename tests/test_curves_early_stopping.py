"""Early stopping by learning curves: the hook's decisions, its wait and its record, on a stub model whose
predictive is known; and the Optuna pruner built on the same rule."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from pfn.checkpoint import read_manifest
from pfn.curves import LCPFN, CurvePredictive, EarlyStopping, Metric, StoppingRule
from pfn.curves.inputs import curve_matrix
from pfn.riemann import RiemannDistribution

K = 400  # buckets of the stub's predictive of z on [-0.5, 1.5]


class UniformGainModel(LCPFN):
    """A stub: the value at every unseen epoch is uniform on `[last + low, last + high]` (in metric units)."""

    def __init__(self, low: float, high: float, max_horizon: int = 100) -> None:
        self.low, self.high, self.max_horizon = low, high, max_horizon
        self.seen: list[np.ndarray] = []

    def predict(self, curves, horizon, direction="maximize", bounds=None) -> CurvePredictive:
        values = curve_matrix(curves, horizon)
        self.seen += [row.numpy() for row in values]
        scale = Metric(direction, bounds).fit(values)
        last = torch.stack([row[~torch.isnan(row)][-1] for row in values]).unsqueeze(-1)
        ends = torch.cat([scale.normalize(last + self.low), scale.normalize(last + self.high)], 1)
        borders = torch.linspace(-0.5, 1.5, K + 1, dtype=torch.float64)
        centers = (borders[1:] + borders[:-1]) / 2
        inside = (centers >= ends.amin(1, keepdim=True)) & (centers <= ends.amax(1, keepdim=True))
        logits = torch.where(inside, 0.0, -1e4).unsqueeze(1).expand(-1, horizon, -1)
        observed = torch.nn.functional.pad(~torch.isnan(values), (0, horizon - values.shape[1]))
        return CurvePredictive(RiemannDistribution(logits, borders), scale.expand(observed.shape), observed)


def run(hook: EarlyStopping, values: list[float]) -> int | None:
    """Reports `values` as epochs 1, 2, ... of a new run; returns the epoch it stopped at (None: ran to the end)."""
    hook.new_run()
    for epoch, value in enumerate(values, start=1):
        if hook.report(epoch, value):
            return epoch
    return None


def test_the_first_run_has_nothing_to_beat_and_sets_the_reference():
    hook = EarlyStopping(horizon=10, bounds=(0, 1), min_epochs=2, model=UniformGainModel(0.0, 0.1))
    assert run(hook, [0.1 * i for i in range(1, 11)]) is None
    assert hook.best == pytest.approx(1.0) and hook.reference == hook.best and hook.reason is None
    assert [d.prob for d in hook.history] == [None] * 10
    assert "nothing to beat yet" in hook.history[3].reason and "complete" in hook.history[-1].reason


def test_a_hopeless_run_waits_min_epochs_then_stops_with_its_reason():
    model = UniformGainModel(0.0, 0.1)
    hook = EarlyStopping(horizon=10, bounds=(0, 1), min_epochs=4, model=model)
    run(hook, [0.8] * 10)
    assert run(hook, [0.3] * 10) == 4  # it could reach at most 0.4 < 0.8, but waits for 4 epochs
    decisions = [d for d in hook.history if d.run == 1]
    assert [d.stop for d in decisions] == [False, False, False, True]
    assert all("waiting for min_epochs=4" in d.reason for d in decisions[:3])
    assert decisions[-1].prob == pytest.approx(0.0, abs=1e-6) and decisions[-1].reference == pytest.approx(0.8)
    assert hook.reason == decisions[-1].reason
    assert hook.reason.startswith("epoch 4: P(value at epoch 10 better than 0.8) = ")
    assert hook.reason.endswith(" < min_prob=0.05")
    assert hook.report(5, 0.3) and len(hook.history) == 14  # still stopped; nothing new recorded
    assert hook.best == pytest.approx(0.8)  # a stopped run never becomes the reference


def test_a_run_that_may_still_win_continues_and_records_its_probability():
    hook = EarlyStopping(horizon=10, bounds=(0, 1), min_epochs=1, model=UniformGainModel(0.0, 0.4))
    run(hook, [0.5] * 10)
    assert run(hook, [0.2] * 3 + [0.3] * 7) is None  # 0.3 + [0, 0.4] reaches above 0.5 with P = 0.5
    probs = [d.prob for d in hook.history if d.run == 1][3:-1]
    assert probs == pytest.approx([0.5] * 6, abs=0.01)
    assert run(hook, [0.11] * 10) == 1  # P(0.11 + U(0, 0.4) > 0.5) = 0.025
    assert hook.history[-1].prob == pytest.approx(0.025, abs=0.005)


def test_min_prob_sets_how_unlikely_a_win_must_be():
    for min_prob, stops_at in ((0.1, None), (0.2, 1)):
        hook = EarlyStopping(horizon=5, bounds=(0, 1), min_epochs=1, min_prob=min_prob, model=UniformGainModel(0, 0.4))
        run(hook, [0.5] * 5)
        assert run(hook, [0.16] * 5) == stops_at  # P(0.16 + U(0, 0.4) > 0.5) = 0.15


def test_a_threshold_replaces_the_best_run_and_minimisation_flips_better():
    hook = EarlyStopping(horizon=6, direction="minimize", bounds=(0, 1), min_epochs=2, threshold=0.2,
                         model=UniformGainModel(-0.05, 0.0))
    assert hook.reference == 0.2
    assert run(hook, [0.9, 0.6, 0.5, 0.4, 0.3, 0.25]) == 2  # a loss of 0.6 - U(0, 0.05) never gets below 0.2
    assert run(hook, [0.3, 0.21, 0.2, 0.2, 0.2, 0.2]) is None
    assert hook.best == pytest.approx(0.2) and hook.reference == 0.2


def test_a_diverged_run_stops_at_once_and_skipped_epochs_are_missing():
    model = UniformGainModel(0.0, 0.1)
    hook = EarlyStopping(horizon=10, bounds=(0, 1), min_epochs=5, model=model)
    hook.report(1, 0.2)
    assert hook.report(2, math.nan) and "not finite (the run diverged)" in hook.reason
    hook.new_run()
    run(hook, [0.8] * 10)
    hook.new_run()
    hook.report(2, 0.3)
    hook.report(6, 0.3)
    np.testing.assert_array_equal(model.seen[-1][:6], [np.nan, 0.3, np.nan, np.nan, np.nan, 0.3])


@pytest.mark.parametrize("epoch", [0, 11, 2.0, True])
def test_bad_epochs_are_rejected(epoch):
    hook = EarlyStopping(horizon=10, bounds=(0, 1), model=UniformGainModel(0.0, 0.1))
    with pytest.raises(ValueError, match="epoch must be an integer in"):
        hook.report(epoch, 0.5)


def test_epochs_must_increase_within_a_run():
    hook = EarlyStopping(horizon=10, bounds=(0, 1), model=UniformGainModel(0.0, 0.1))
    hook.report(3, 0.5)
    with pytest.raises(ValueError, match=r"call new_run\(\)"):
        hook.report(3, 0.6)


def test_rule_defaults_and_bad_settings():
    assert StoppingRule(horizon=50).min_epochs == 20 and StoppingRule(horizon=2).min_epochs == 1
    for kwargs, message in (({"min_prob": 1.0}, "min_prob"), ({"min_epochs": 0}, "min_epochs"),
                            ({"direction": "down"}, "direction")):
        with pytest.raises(ValueError, match=message):
            StoppingRule(horizon=10, **kwargs)
    with pytest.raises(ValueError, match="horizon=500 epochs is outside"):
        EarlyStopping(horizon=500, model=UniformGainModel(0.0, 0.1))


@pytest.mark.skipif("lcpfn" not in read_manifest()["models"], reason="pretrained/lcpfn is not shipped")
def test_the_shipped_model_stops_a_hopeless_run_and_keeps_a_better_one():
    # Run 0 (a loss falling from 2 to 0.5) completes and sets the reference 0.5. Run 1 stays at 3.0: hopeless, it
    # must stop at the first decision. Run 2 starts above 0.5 (0.91 at epoch 3) but falls fast: it must run to
    # the end and become the reference. A model that predicts the same whatever the curve gets both runs alike.
    hook = EarlyStopping(horizon=20, direction="minimize", bounds=(0, None), min_epochs=3, min_prob=0.05,
                         model="lcpfn")
    assert run(hook, list(np.linspace(2.0, 0.5, 20))) is None and hook.best == pytest.approx(0.5)
    assert run(hook, [3.0] * 20) == 3
    better = (0.15 + 1.6 * np.exp(-0.25 * np.arange(1, 21))).tolist()
    assert better[2] > 0.5
    assert run(hook, better) is None and hook.best == pytest.approx(better[-1])
    first_probs = [next(d.prob for d in hook.history if d.run == r and d.prob is not None) for r in (1, 2)]
    assert first_probs[0] < 0.01 and first_probs[1] > 0.3, first_probs


# --- the Optuna pruner --------------------------------------------------------------------

CURVES = {0: np.linspace(0.1, 0.9, 10).tolist(), 1: [0.3] * 10, 2: [0.5, 0.7, 0.85, 0.9] + [0.95] * 6, 3: [0.2] * 10}


def study_with(pruner, direction: str = "maximize", curves: dict[int, list[float]] = CURVES):
    optuna = pytest.importorskip("optuna")
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    sign = 1.0 if direction == "maximize" else -1.0

    def objective(trial):
        for step, value in enumerate(curves[trial.number]):
            trial.report(sign * value, step)
            if trial.should_prune():
                raise optuna.TrialPruned()
        return sign * curves[trial.number][-1]

    study = optuna.create_study(direction=direction, pruner=pruner)
    study.optimize(objective, n_trials=len(curves))
    return study, optuna


@pytest.mark.parametrize("direction", ["maximize", "minimize"])
def test_the_pruner_prunes_trials_that_cannot_beat_the_best_completed_one(direction):
    pytest.importorskip("optuna")
    from pfn.curves.optuna import LCPFNPruner

    bounds = (0, 1) if direction == "maximize" else (-1, 0)
    model = UniformGainModel(0.0, 0.1) if direction == "maximize" else UniformGainModel(-0.1, 0.0)
    pruner = LCPFNPruner(horizon=10, bounds=bounds, min_epochs=3, model=model)
    study, optuna = study_with(pruner, direction)
    states = [t.state for t in study.trials]
    assert states == [optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED,
                      optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED]
    assert max(study.trials[1].intermediate_values) == 2  # pruned at step 2 = epoch 3 = min_epochs
    pruned = [d for d in pruner.history if d.stop]
    assert [d.run for d in pruned] == [1, 3]
    sign = 1.0 if direction == "maximize" else -1.0
    assert pruned[0].reference == pytest.approx(sign * 0.9) and pruned[1].reference == pytest.approx(sign * 0.95)
    assert "min_prob=0.05" in pruned[0].reason


def test_the_pruner_takes_a_threshold_and_checks_the_steps():
    pytest.importorskip("optuna")
    from pfn.curves.optuna import LCPFNPruner

    pruner = LCPFNPruner(horizon=10, bounds=(0, 1), min_epochs=2, threshold=0.5, model=UniformGainModel(0.0, 0.1))
    study, optuna = study_with(pruner, curves={0: [0.2] * 10, 1: [0.45] * 10})
    assert [t.state for t in study.trials] == [optuna.trial.TrialState.PRUNED, optuna.trial.TrialState.COMPLETE]
    too_long = LCPFNPruner(horizon=5, bounds=(0, 1), model=UniformGainModel(0.0, 0.1))
    with pytest.raises(ValueError, match="reads steps 0..4 as epochs 1..5"):
        study_with(too_long, curves={0: [0.2] * 10})


# --- bad reports and settings -------------------------------------------------------------------

def test_a_rejected_out_of_bounds_report_changes_nothing():
    model = UniformGainModel(0.0, 0.1)
    hook = EarlyStopping(horizon=10, bounds=(0, 1), min_epochs=1, model=model)
    run(hook, [0.8] * 10)
    hook.new_run()
    assert not hook.report(1, 0.85)
    before = (list(hook.history), hook.best, hook.reason, len(model.seen))
    with pytest.raises(ValueError, match=r"run 1, epoch 2: value 1.5 is outside the declared bounds \(0.0, 1.0\)"):
        hook.report(2, 1.5)
    assert (list(hook.history), hook.best, hook.reason, len(model.seen)) == before  # nothing stored, nothing asked
    assert not hook.report(2, 0.9)  # the epoch can be reported again, and the run goes on
    assert hook.history[-1].epoch == 2 and hook.history[-1].value == 0.9


def test_an_out_of_bounds_value_is_refused_before_anything_can_be_compared():
    hook = EarlyStopping(horizon=10, direction="minimize", bounds=(0, None), model=UniformGainModel(-0.1, 0.0))
    with pytest.raises(ValueError, match="epoch 1: value -0.5 is outside the declared bounds"):
        hook.report(1, -0.5)  # no threshold, no completed run: nothing is predicted, the value is still checked
    with pytest.raises(ValueError, match="lies on the good bound"):
        hook.report(1, 0.0)
    assert hook.history == [] and not hook.report(1, 0.5)


@pytest.mark.parametrize("value", ["abc", None, np.array([0.5]), [0.5], True])
def test_a_report_that_is_not_one_number_is_refused(value):
    hook = EarlyStopping(horizon=10, bounds=(0, 1), model=UniformGainModel(0.0, 0.1))
    with pytest.raises(TypeError, match="value must be a number"):
        hook.report(1, value)
    assert hook.history == []


def test_zero_dimensional_arrays_and_tensors_are_reported_as_numbers():
    hook = EarlyStopping(horizon=10, bounds=(0, 1), model=UniformGainModel(0.0, 0.1))
    hook.report(1, np.float32(0.25))
    hook.report(2, np.array(0.5))
    hook.report(3, torch.tensor(0.75))
    assert [d.value for d in hook.history] == [0.25, 0.5, 0.75]


@pytest.mark.parametrize("kwargs, error, message", [
    ({"threshold": "x"}, TypeError, "threshold must be a number"),
    ({"threshold": math.nan}, ValueError, "threshold=nan must be a finite value inside"),
    ({"threshold": 2.0}, ValueError, r"threshold=2.0 must be a finite value inside the declared bounds \(0.0, 1.0\)"),
    ({"bounds": 1}, TypeError, r"bounds must be a pair \(lo, hi\)"),
    ({"bounds": ("a", "b")}, TypeError, "bounds: lo must be a number or None"),
    ({"bounds": (1, 0)}, ValueError, "lo < hi"),
    ({"min_prob": "x"}, TypeError, "min_prob must be a number"),
])
def test_bad_settings_are_refused_at_construction(kwargs, error, message):
    settings = {"bounds": (0, 1), **kwargs}
    with pytest.raises(error, match=message):
        EarlyStopping(horizon=10, model=UniformGainModel(0.0, 0.1), **settings)


@pytest.mark.parametrize("kwargs, error, message", [
    ({"bounds": 1}, TypeError, r"bounds must be a pair \(lo, hi\)"),
    ({"bounds": ("a", "b")}, TypeError, "bounds: lo must be a number or None"),
    ({"threshold": "x"}, TypeError, "threshold must be a number"),
])
def test_the_pruner_refuses_bad_settings_at_construction(kwargs, error, message):
    pytest.importorskip("optuna")
    from pfn.curves.optuna import LCPFNPruner

    with pytest.raises(error, match=message):
        LCPFNPruner(horizon=10, model=UniformGainModel(0.0, 0.1), **kwargs)


@pytest.mark.skipif("lcpfn" not in read_manifest()["models"], reason="pretrained/lcpfn is not shipped")
def test_the_default_pruner_keeps_the_best_trials_of_a_tpe_study():
    # Issue 20's study, recreated: 12 TPE trials, horizon 20, bounds (0, 1), curves top * (1 - exp(-2 lr e)). With
    # decisions from epoch 2 (the former 10% default) the pruner pruned the trials that would have ended at 0.908
    # and 0.802, at epoch 2, and the study's best completed trial ended at 0.786.
    optuna = pytest.importorskip("optuna")
    from pfn.curves.optuna import LCPFNPruner

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    horizon = 20

    def curve(params: dict[str, float]) -> np.ndarray:
        return params["top"] * (1 - np.exp(-2 * params["lr"] * np.arange(1, horizon + 1)))

    def objective(trial):
        values = curve({"top": trial.suggest_float("top", 0.5, 1.0),
                        "lr": trial.suggest_float("lr", 0.01, 1.0, log=True)})
        for step, value in enumerate(values):
            trial.report(float(value), step)
            if trial.should_prune():
                raise optuna.TrialPruned()
        return float(values[-1])

    pruner = LCPFNPruner(horizon=horizon, bounds=(0, 1))
    study = optuna.create_study(direction="maximize", sampler=optuna.samplers.TPESampler(seed=2), pruner=pruner)
    study.optimize(objective, n_trials=12)
    finals = np.array([curve(t.params)[-1] for t in study.trials])
    complete = np.array([t.state == optuna.trial.TrialState.COMPLETE for t in study.trials])
    assert np.round(finals[[5, 8]], 3).tolist() == [0.802, 0.908]  # random start-up trials: as in the old study
    assert complete[[5, 8]].all() and complete[finals.argmax()] and study.best_value == pytest.approx(finals.max())
    assert (~complete).sum() >= 3  # hopeless trials are still pruned
    assert min(d.epoch for d in pruner.history if d.stop) >= 8  # 40% of the horizon

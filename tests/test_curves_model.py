"""`LCPFN.predict`: many curves of different lengths in one pass equal curve-by-curve prediction;
shapes, units and every bad input's message."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

import pfn
from pfn.checkpoint import save_checkpoint
from pfn.config import ModelConfig, TrainConfig
from pfn.curves import LCPFN, CurvePredictive
from pfn.training import train
from priors import CurvePrior

HORIZON = 40


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> pfn.PFN:
    """A tiny PFN trained for 20 steps on `CurvePrior` (horizon 40), with its training record."""
    config = ModelConfig(d_model=32, n_layers=2, n_heads=2, d_ff=64, n_buckets=50, max_features=1)
    cfg = TrainConfig(steps=20, batch_size=16, lr=1e-3, warmup_steps=5, n_points=HORIZON, min_context=1,
                      max_context=HORIZON - 1, min_features=1, max_features=1, checkpoint_every=20, val_every=20,
                      val_batches=1, border_samples=20_000, device="cpu")
    torch.manual_seed(0)
    return train(CurvePrior(), config, cfg, tmp_path_factory.mktemp("lcpfn") / "run", progress=False)


@pytest.fixture(scope="module")
def perturbed(trained) -> LCPFN:
    """The trained model with every parameter perturbed, so that attention across the context matters."""
    model = copy.deepcopy(trained)
    gen = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.2 * torch.randn(p.shape, generator=gen))
    return LCPFN(model)


def curves_of(lengths: list[int], seed: int = 0) -> list[np.ndarray]:
    batch = CurvePrior().sample(len(lengths), HORIZON, 1, generator=torch.Generator().manual_seed(seed))
    return [batch.y[i, :n].double().numpy() for i, n in enumerate(lengths)]


def test_hundreds_of_curves_of_different_lengths_in_one_pass_equal_curve_by_curve(perturbed):
    rng = np.random.default_rng(0)
    lengths = rng.integers(1, HORIZON, size=200).tolist()
    curves = curves_of(lengths)
    together = perturbed.predict(curves, HORIZON, bounds=(0, 1))
    assert together.batch_shape == (200, HORIZON)
    for i in rng.choice(200, size=12, replace=False).tolist():
        alone = perturbed.predict([curves[i]], HORIZON, bounds=(0, 1))
        torch.testing.assert_close(together[i].normalized.log_probs, alone[0].normalized.log_probs,
                                   atol=2e-5, rtol=2e-5)
        torch.testing.assert_close(together[i].quantile(0.5), alone[0].quantile(0.5), atol=1e-5, rtol=1e-5,
                                   equal_nan=True)


def test_forward_calls_once_for_all_curves(perturbed, monkeypatch):
    calls = []
    original = perturbed.model.transformer.encode_context
    monkeypatch.setattr(perturbed.model.transformer, "encode_context",
                        lambda *a, **k: calls.append(a[0].shape) or original(*a, **k))
    perturbed.predict(curves_of([3, 30, 12, 1]), HORIZON)
    assert calls == [torch.Size([4, 30, 1])]


def test_curves_are_predicted_in_chunks_that_equal_one_pass(perturbed, monkeypatch):
    curves = curves_of([3, 30, 12, 1, 7])
    whole = perturbed.predict(curves, HORIZON, bounds=(0, 1))
    calls = []
    original = perturbed.model.transformer.encode_context
    monkeypatch.setattr(perturbed.model.transformer, "encode_context",
                        lambda *a, **k: calls.append(a[0].shape[0]) or original(*a, **k))
    chunked = perturbed.predict(curves, HORIZON, bounds=(0, 1), chunk_size=2 * HORIZON + 1)  # two curves a pass
    assert calls == [2, 2, 1]
    torch.testing.assert_close(chunked.normalized.log_probs, whole.normalized.log_probs, atol=2e-5, rtol=2e-5)
    torch.testing.assert_close(chunked.quantile(0.5), whole.quantile(0.5), atol=1e-5, rtol=1e-5, equal_nan=True)
    one = perturbed.predict(curves, HORIZON, bounds=(0, 1), chunk_size=1)  # fewer queries than a curve: one curve
    torch.testing.assert_close(one.normalized.log_probs, whole.normalized.log_probs, atol=2e-5, rtol=2e-5)
    with pytest.raises(ValueError, match="chunk_size must be a positive number of queries"):
        perturbed.predict(curves, HORIZON, chunk_size=0)


def test_a_2d_array_with_nan_for_unseen_epochs_equals_the_list_of_curves(perturbed):
    curves = curves_of([5, 17, 9])
    table = np.full((3, HORIZON), np.nan)
    for i, c in enumerate(curves):
        table[i, :len(c)] = c
    a = perturbed.predict(curves, HORIZON, direction="maximize", bounds=(0, 1))
    b = perturbed.predict(table, HORIZON, direction="maximize", bounds=(0, 1))
    torch.testing.assert_close(a.quantile(0.3), b.quantile(0.3), equal_nan=True)
    torch.testing.assert_close(a.observed, b.observed)


def test_observed_epochs_are_masked_and_the_rest_predicted(trained):
    model = LCPFN(trained)
    pred = model.predict(curves_of([4, 10]), 20, bounds=(0, 1))
    assert pred.batch_shape == (2, 20)
    assert pred.observed[0, :4].all() and not pred.observed[0, 4:].any() and pred.observed[1, :10].all()
    median = pred.quantile(0.5)
    assert torch.isnan(median[pred.observed]).all() and torch.isfinite(median[~pred.observed]).all()
    final = pred[:, -1]
    assert isinstance(final, CurvePredictive) and final.batch_shape == (2,)
    assert ((final.prob_above(-0.05) > 0.99) & (final.prob_above(1.05) < 0.01)).all()


def test_missing_epochs_inside_a_curve_are_left_out_of_the_context(perturbed):
    curve = curves_of([12])[0]
    holey = curve.copy()
    holey[[2, 7]] = np.nan
    pred = perturbed.predict([holey], HORIZON, bounds=(0, 1))
    assert not pred.observed[0, 2] and pred.observed[0, 3]
    keep = torch.ones(12, dtype=torch.bool)
    keep[[2, 7]] = False
    x = (torch.arange(1, 13, dtype=torch.float32) / HORIZON)[keep].unsqueeze(-1)
    direct = perturbed.model.predict(x, torch.as_tensor(curve[keep.numpy()], dtype=torch.float32),
                                     torch.arange(1, HORIZON + 1, dtype=torch.float32).unsqueeze(-1) / HORIZON)
    torch.testing.assert_close(pred.normalized.log_probs[0], direct.log_probs, atol=1e-5, rtol=1e-5)


def test_minimised_losses_come_back_in_their_own_units(trained):
    model = LCPFN(trained)
    loss = [np.array([2.3, 1.5, 1.1, 0.9, 0.8, 0.74])]
    pred = model.predict(loss, 30, direction="minimize", bounds=(0, None))[0, -1]
    q10, q90 = pred.quantile(0.1), pred.quantile(0.9)
    assert 0 < q10 < q90  # lower quantiles are lower losses, never below the bound 0
    assert float(pred.prob_above(q10)) == pytest.approx(0.1, abs=1e-3)  # better = lower
    assert (pred.sample(200) >= 0).all()  # the prior-scale mass above 1, if any, sits on the bound


def test_checkpoint_folders_and_pfn_lcpfn_load_the_same_model(trained, tmp_path):
    folder = save_checkpoint(trained, tmp_path / "ckpt")
    curves = curves_of([6, 9])
    a = pfn.LCPFN(folder).predict(curves, HORIZON, bounds=(0, 1)).quantile(0.5)
    b = LCPFN(trained).predict(curves, HORIZON, bounds=(0, 1)).quantile(0.5)
    torch.testing.assert_close(a, b, equal_nan=True)
    assert pfn.LCPFN is LCPFN and LCPFN(trained).max_horizon == HORIZON


# --- bad input ------------------------------------------------------------------------------

@pytest.mark.parametrize("curves, horizon, kwargs, error, message", [
    ([], 10, {}, ValueError, "curves is empty"),
    ([np.array([0.5, 0.6]), np.array([])], 10, {}, ValueError, "curve 1 is empty"),
    ([np.array([np.nan, np.nan])], 10, {}, ValueError, "curve 0 is empty"),
    ([np.arange(12) / 20], 10, {}, ValueError, "curve 0 has a value at epoch 12 but the horizon is 10"),
    ([np.array([0.5, np.inf])], 10, {}, ValueError, "curve 0 has an infinite value at epoch 2"),
    ([np.array([0.5, 1.4])], 10, {"bounds": (0, 1)}, ValueError, "curve 0, epoch 2: value 1.4 is outside"),
    ([np.array([0.5, 0.6])], HORIZON + 1, {}, ValueError, f"horizon={HORIZON + 1} epochs is outside what this model"),
    ([np.array([0.5, 0.6])], 0, {}, ValueError, "horizon=0 epochs is outside"),
    ([np.array([0.5, 0.6])], 10.0, {}, TypeError, "horizon must be an integer"),
    (np.array([0.5, 0.6]), 10, {}, ValueError, "must be 2-D"),
    ([0.5, 0.6], 10, {}, ValueError, "curve 0 must be 1-D"),
    ([np.array([0.5, 0.6])], 10, {"direction": "up"}, ValueError, "direction must be one of"),
    ([np.array([0.5, 0.6])], 10, {"bounds": 1}, TypeError, r"bounds must be a pair \(lo, hi\)"),
    ([np.array([0.5, 0.6])], 10, {"bounds": ("a", "b")}, TypeError, "bounds: lo must be a number or None"),
    ([np.array([0.5, 0.6])], 10, {"bounds": (0, "b")}, TypeError, "bounds: hi must be a number or None"),
    ("0.5, 0.6", 10, {}, TypeError, "curves must be a list"),
    ([["a", "b"]], 10, {}, TypeError, "curve 0 must be a 1-D array of numbers"),
])
def test_bad_input_is_rejected_with_a_message_that_says_what_to_do(trained, curves, horizon, kwargs, error, message):
    with pytest.raises(error, match=message):
        LCPFN(trained).predict(curves, horizon, **kwargs)


def test_a_model_without_a_training_horizon_or_bar_head_is_rejected(trained):
    bare = copy.deepcopy(trained)
    bare.info = {}
    with pytest.raises(ValueError, match="no training record of its horizon"):
        LCPFN(bare)
    clf = pfn.PFN(ModelConfig(d_model=16, n_layers=1, n_heads=2, d_ff=32, max_features=1, head="classification"))
    with pytest.raises(ValueError, match="bar"):
        LCPFN(clf)

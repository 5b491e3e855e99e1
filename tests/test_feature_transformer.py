"""The per-feature-token transformer and the classification head."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from pfn.checkpoint import load_folder, save_checkpoint
from pfn.config import ModelConfig, TrainConfig
from pfn.model import PFN
from pfn.tokens import context_statistics
from pfn.training import train
from priors.batch import Batch
from priors.scm import SCMPrior

CLF = ModelConfig(feature_encoding="per_feature", head="classification", max_classes=5, max_features=12,
                  d_model=32, n_layers=2, n_heads=2, d_ff=64)
REG = ModelConfig(feature_encoding="per_feature", head="bar", n_buckets=20, max_features=12,
                  d_model=32, n_layers=2, n_heads=2, d_ff=64)


def _randomised(model: PFN) -> PFN:
    """Gives the zero-initialised output projections random weights, so every path matters."""
    torch.manual_seed(0)
    with torch.no_grad():
        for p in model.parameters():
            if (p == 0).all():
                p.normal_(0, 0.2)
    return model.eval()


@pytest.fixture(scope="module")
def clf() -> PFN:
    torch.manual_seed(0)
    return _randomised(PFN(CLF))


@pytest.fixture(scope="module")
def reg() -> PFN:
    torch.manual_seed(0)
    return _randomised(PFN(REG, {"borders": torch.linspace(-3, 3, 21)}))


def _table(n: int = 30, f: int = 4, seed: int = 0, n_classes: int = 3) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(2, n, f, generator=g) * 3 + 1
    y = torch.randint(0, n_classes, (2, n), generator=g).float()
    return x, y


def test_context_statistics_match_numpy_and_ignore_nan():
    x, _ = _table()
    x[0, :5, 1] = float("nan")
    s = context_statistics(x)
    np.testing.assert_allclose((s.mean * s.magnitude).numpy(), np.nanmean(x.numpy(), axis=1), rtol=1e-6)
    np.testing.assert_allclose((s.std * s.magnitude).numpy(), np.nanstd(x.numpy(), axis=1, ddof=1), rtol=1e-6)
    z = s.standardise(x)
    np.testing.assert_allclose(np.nanmean(z.numpy(), axis=1), 0.0, atol=1e-6)


def test_constant_and_all_missing_features_get_unit_scale():
    x = torch.ones(1, 6, 2)
    x[..., 1] = float("nan")
    s = context_statistics(x)
    assert torch.equal(s.std, torch.ones(1, 2, dtype=torch.float64))
    assert (s.mean * s.magnitude).tolist() == [[1.0, 0.0]]


@pytest.mark.parametrize("scale, offset", [(1e-9, 0.0), (1e20, 0.0), (1.0, 1e9), (1e-300, 0.0), (1e300, 0.0)])
def test_standardisation_is_the_same_at_every_magnitude(scale, offset):
    x, _ = _table()
    x = x.double()
    reference = context_statistics(x).standardise(x)
    moved = x * scale + offset
    torch.testing.assert_close(context_statistics(moved).standardise(moved), reference, rtol=1e-6, atol=1e-6)


def test_padded_context_rows_do_not_change_the_statistics():
    x, _ = _table()
    mask = torch.ones(x.shape[:2], dtype=torch.bool)
    mask[0, 25:] = False
    padded = x.clone()
    padded[0, 25:] = 1e30
    s = context_statistics(padded, mask)
    ref = context_statistics(x[:1, :25])
    torch.testing.assert_close(s.standardise(x)[:1], ref.standardise(x[:1]))


@pytest.mark.parametrize("name", ["clf", "reg"])
def test_outputs_invariant_to_context_order_and_equivariant_to_feature_order(name, request):
    model = request.getfixturevalue(name)
    x, y = _table()
    if name == "reg":
        y = torch.randn(y.shape)
    c = 20
    with torch.no_grad():
        base = model(x, y[:, :c])
        rows = torch.randperm(c)
        x_rows = torch.cat([x[:, rows], x[:, c:]], dim=1)
        torch.testing.assert_close(model(x_rows, y[:, rows]), base, atol=1e-5, rtol=1e-4)
        torch.testing.assert_close(model(x[..., torch.tensor([2, 0, 3, 1])], y[:, :c]), base, atol=1e-5, rtol=1e-4)


def test_query_prediction_ignores_other_queries(clf):
    x, y = _table()
    with torch.no_grad():
        full = clf(x, y[:, :20])
        alone = clf(torch.cat([x[:, :20], x[:, 25:26]], dim=1), y[:, :20])
    torch.testing.assert_close(alone[:, 0], full[:, 5], atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("name", ["clf", "reg"])
def test_cached_decoding_matches_the_full_forward_pass(name, request):
    model = request.getfixturevalue(name)
    x, y = _table()
    x[0, 3, 2] = x[1, 25, 0] = float("nan")
    with torch.no_grad():
        full = model.transformer(x, y[:, :20])
        cached = model.transformer.decode(model.transformer.encode_context(x[:, :20], y[:, :20]), x[:, 20:])
    torch.testing.assert_close(cached, full, atol=1e-5, rtol=1e-4)


def test_missing_values_are_read_not_rejected(clf):
    x, y = _table()
    with torch.no_grad():
        base = clf(x, y[:, :20])
    x[:, :, 1] = torch.where(torch.rand(x.shape[:2]) < 0.3, float("nan"), x[:, :, 1])
    with torch.no_grad():
        out = clf(x, y[:, :20])
    assert torch.isfinite(out).all() and not torch.allclose(out, base)
    probs = clf.predict(x[0, :20], y[0, :20], x[0, 20:]).probs
    assert probs.shape == (10, 3) and torch.isfinite(probs).all()


def test_one_model_serves_any_feature_count_up_to_its_limit(reg):
    for f in (1, 7, 12):
        x, _ = _table(f=f)
        assert reg.predict(x[0, :20], torch.randn(20), x[0, 20:]).mean.shape == (10,)
    x, _ = _table(f=13)
    with pytest.raises(ValueError, match="13 features but this model supports 1 to 12"):
        reg.predict(x[0, :20], torch.randn(20), x[0, 20:])


def test_classifier_predicts_only_the_context_classes(clf):
    x, y = _table(n_classes=3)
    dist = clf.predict(x[0, :20], y[0, :20], x[0, 20:])
    assert dist.probs.shape == (10, 3)
    torch.testing.assert_close(dist.probs.sum(-1), torch.ones(10))
    assert clf.fit(x[0, :20], y[0, :20], n_classes=5).predict(x[0, 20:]).probs.shape == (10, 5)


@pytest.mark.parametrize("labels, match", [([0, 1, 2.5], "class indices"), ([0, 1, 7], "supports 2 to 5 classes"),
                                           ([-1, 0, 1], "class indices")])
def test_classifier_rejects_bad_labels(clf, labels, match):
    with pytest.raises(ValueError, match=match):
        clf.fit(torch.randn(3, 2), torch.tensor(labels))


def test_classification_nll_is_cross_entropy_over_the_dataset_classes(clf):
    logits = torch.randn(2, 4, 5)
    y = torch.tensor([[0, 1, 1, 0], [2, 0, 1, 2]]).float()
    n_classes = torch.tensor([2, 3])
    batch = Batch(x=torch.zeros(2, 5, 1), y=torch.cat([torch.zeros(2, 1), y], 1), target_y=torch.cat(
        [torch.zeros(2, 1), y], 1), n_context=1, meta={"n_classes": n_classes})
    nll = clf.head.loss(logits, batch)
    for b, k in enumerate(n_classes.tolist()):
        expected = torch.nn.functional.cross_entropy(logits[b, :, :k], y[b].long(), reduction="none")
        torch.testing.assert_close(nll[b], expected)


def test_tabular_classifier_trains_resumes_and_round_trips(tmp_path):
    prior = SCMPrior(min_features=100, max_classes=5)
    cfg = TrainConfig(steps=12, batch_size=8, n_points=40, min_context=5, max_context=30, max_features=5,
                      warmup_steps=2, lr=3e-3, checkpoint_every=6, val_every=6, val_batches=2, seed=3)
    straight = train(prior, CLF, cfg, tmp_path / "a", progress=False)
    train(prior, CLF, cfg, tmp_path / "b", progress=False, stop_after=6)
    resumed = train(prior, CLF, cfg, tmp_path / "b", progress=False)
    for (name, p), q in zip(straight.state_dict().items(), resumed.state_dict().values(), strict=True):
        torch.testing.assert_close(p, q, msg=name)
    assert np.isfinite(straight.info["record"]["val_loss"])
    loaded = load_folder(save_checkpoint(straight, tmp_path / "c"))
    x, y = _table(n_classes=2)
    torch.testing.assert_close(loaded.predict(x[0, :20], y[0, :20], x[0, 20:]).probs,
                               straight.predict(x[0, :20], y[0, :20], x[0, 20:]).probs)


def test_init_from_starts_a_classifier_from_a_regression_models_transformer(tmp_path):
    reg_cfg = TrainConfig(steps=2, batch_size=4, n_points=20, max_context=10, max_features=3, warmup_steps=1,
                          border_samples=2000, val_batches=1)
    regression = train(SCMPrior(task="regression"), REG, reg_cfg, tmp_path / "reg", progress=False)
    clf_cfg = TrainConfig(**{**reg_cfg.to_dict(), "steps": 1, "lr": 1e-12, "init_from": str(tmp_path / "reg")})
    classifier = train(SCMPrior(max_classes=5), CLF, clf_cfg, None, progress=False)
    for name, value in regression.transformer.state_dict().items():
        torch.testing.assert_close(classifier.transformer.state_dict()[name], value, atol=1e-6, rtol=1e-5, msg=name)
    other = ModelConfig(**{**CLF.to_dict(), "d_model": 16, "d_ff": 32})
    with pytest.raises(ValueError, match="does not match this architecture"):
        train(SCMPrior(max_classes=5), other, clf_cfg, None, progress=False)

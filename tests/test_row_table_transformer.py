"""The standardised row-token transformer (`feature_encoding="pad_standardised"`)."""

from __future__ import annotations

import pytest
import torch

from pfn.config import ModelConfig, TrainConfig
from pfn.model import PFN
from pfn.training import train
from priors.scm import SCMPrior

CLF = ModelConfig(feature_encoding="pad_standardised", head="classification", max_classes=5, max_features=12,
                  d_model=32, n_layers=2, n_heads=2, d_ff=64)


@pytest.fixture(scope="module")
def clf() -> PFN:
    torch.manual_seed(0)
    model = PFN(CLF)
    with torch.no_grad():
        for p in model.parameters():
            if (p == 0).all():  # the zero-initialised output projections: give every path weight
                p.normal_(0, 0.2)
    return model.eval()


def _table(n: int = 30, f: int = 4, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(2, n, f, generator=g) * 3 + 1, torch.randint(0, 3, (2, n), generator=g).float()


@pytest.mark.parametrize("scale, offset", [(1e-9, 0.0), (1e20, 0.0), (1.0, 1e9), (1e-300, 0.0)])
def test_predictions_do_not_depend_on_the_scale_or_offset_of_features(clf, scale, offset):
    x, y = _table()
    with torch.no_grad():
        base = clf(x.double(), y[:, :20])
        moved = clf(x.double() * scale + offset, y[:, :20])
    torch.testing.assert_close(moved, base, atol=1e-4, rtol=1e-4)


def test_the_context_is_a_set_and_queries_do_not_see_each_other(clf):
    x, y = _table()
    c = 20
    with torch.no_grad():
        base = clf(x, y[:, :c])
        rows = torch.randperm(c)
        torch.testing.assert_close(clf(torch.cat([x[:, rows], x[:, c:]], dim=1), y[:, rows]), base,
                                   atol=1e-5, rtol=1e-4)
        alone = clf(torch.cat([x[:, :c], x[:, 25:26]], dim=1), y[:, :c])
    torch.testing.assert_close(alone[:, 0], base[:, 5], atol=1e-5, rtol=1e-4)


def test_cached_decoding_matches_the_full_forward_pass_with_missing_values(clf):
    x, y = _table()
    x[0, 3, 2] = x[1, 25, 0] = float("nan")
    with torch.no_grad():
        full = clf.transformer(x, y[:, :20])
        cached = clf.transformer.decode(clf.transformer.encode_context(x[:, :20], y[:, :20]), x[:, 20:])
    assert torch.isfinite(full).all()
    torch.testing.assert_close(cached, full, atol=1e-5, rtol=1e-4)


def test_a_missing_value_reads_as_the_context_mean(clf):
    x, y = _table()
    mean = x[0, :20, 1].mean()
    query = x[0, 20:21].clone()
    with torch.no_grad():
        at_mean = clf.predict(x[0, :20], y[0, :20], torch.cat([query[:, :1], mean.view(1, 1), query[:, 2:]], 1))
        missing = clf.predict(x[0, :20], y[0, :20], torch.cat([query[:, :1], torch.full((1, 1), float("nan")),
                                                                query[:, 2:]], 1))
    torch.testing.assert_close(missing.probs, at_mean.probs, atol=1e-5, rtol=1e-4)


def test_a_classifier_trains_on_a_prior_with_missing_values(tmp_path):
    prior = SCMPrior(task="classification", max_classes=4, missing_prob=1.0)
    cfg = TrainConfig(steps=6, batch_size=4, n_points=40, max_context=25, max_features=6, border_samples=500,
                      checkpoint_every=6, val_every=6, val_batches=1, warmup_steps=1, device="cpu", seed=0, amp=False)
    model = train(prior, ModelConfig(**{**CLF.to_dict(), "max_classes": 4}), cfg, tmp_path / "run", progress=False)
    assert model.info["record"]["steps"] == 6 and model.info["record"]["val_loss"] < 10

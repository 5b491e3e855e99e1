"""The engine's contracts for the uses built on it: context padding masks, a differentiable
predict with BoTorch's query shapes, and one head protocol."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from pfn.checkpoint import load_folder, save_checkpoint
from pfn.config import ModelConfig, TrainConfig
from pfn.heads import HEADS, Head, register_head
from pfn.model import PFN
from pfn.training import train
from priors.batch import Batch
from priors.gp import GPPrior

PAD = ModelConfig(d_model=32, n_layers=2, n_heads=2, d_ff=64, n_buckets=30, max_features=3)
PER_FEATURE = ModelConfig(feature_encoding="per_feature", d_model=32, n_layers=2, n_heads=2, d_ff=64, n_buckets=30,
                          max_features=6)
PAD_STANDARDISED = ModelConfig(feature_encoding="pad_standardised", d_model=32, n_layers=2, n_heads=2, d_ff=64,
                               n_buckets=30, max_features=6)
CONFIGS = {"pad": PAD, "per_feature": PER_FEATURE, "pad_standardised": PAD_STANDARDISED}


def _randomised(config: ModelConfig) -> PFN:
    torch.manual_seed(0)
    state = {"borders": torch.linspace(-3, 3, config.n_buckets + 1)} if config.head == "bar" else None
    model = PFN(config, state)
    gen = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.2 * torch.randn(p.shape, generator=gen))
    return model.eval()


@pytest.fixture(params=list(CONFIGS), scope="module")
def model(request) -> PFN:
    return _randomised(CONFIGS[request.param])


def _data(b: int, n: int, f: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(b, n, f, generator=g)
    return x, torch.sin(5 * x).sum(-1) + 0.1 * torch.randn(b, n, generator=g)


# --- context padding mask ---------------------------------------------------------------

@pytest.mark.parametrize("fill", [0.0, 1e6, float("nan")])
def test_padding_never_changes_a_prediction(model, fill):
    sizes = [3, 9, 6]
    x, y = _data(3, 9 + 5, 2, seed=1)
    queries = x[:, 9:]
    separate = [model.predict(x[i, :c], y[i, :c], queries[i]).log_probs for i, c in enumerate(sizes)]
    mask = torch.arange(9) < torch.tensor(sizes).unsqueeze(1)
    xc = torch.where(mask.unsqueeze(-1), x[:, :9], torch.full_like(x[:, :9], fill))
    yc = torch.where(mask, y[:, :9], torch.full_like(y[:, :9], fill))
    together = model.predict(xc, yc, queries, context_mask=mask).log_probs
    for i in range(3):
        torch.testing.assert_close(together[i], separate[i], atol=1e-5, rtol=1e-5)


def test_padding_is_honoured_by_forward_and_the_loss(model):
    sizes = torch.tensor([2, 7, 4])
    x, y = _data(3, 7 + 4, 2, seed=2)
    batch = Batch(x=x, y=y, target_y=y, n_context=7).with_context_sizes(sizes)
    noisy = Batch(x=x.clone(), y=y.clone(), target_y=y, n_context=7).with_context_sizes(sizes)
    noisy.x[~torch.cat([batch.context_mask, torch.ones(3, 4, dtype=torch.bool)], 1)] = 123.0
    with torch.no_grad():
        torch.testing.assert_close(model.loss(noisy), model.loss(batch))
        logits = model(x, y[:, :7], batch.context_mask)
        for i, c in enumerate(sizes.tolist()):
            alone = model(torch.cat([x[i:i + 1, :c], x[i:i + 1, 7:]], 1), y[i:i + 1, :c])
            torch.testing.assert_close(logits[i], alone[0], atol=1e-5, rtol=1e-5)
        fitted = model.fit(x[:, :7], y[:, :7], batch.context_mask)
        torch.testing.assert_close(fitted.predict(x[:, 7:]).log_probs, torch.log_softmax(logits, -1),
                                   atol=1e-5, rtol=1e-5)


def test_query_mask_drops_unscored_queries_from_the_loss(model):
    x, y = _data(2, 10, 2, seed=3)
    query_mask = torch.tensor([[True] * 6, [True, True, False, False, False, False]])
    masked = Batch(x=x, y=y, target_y=y, n_context=4, query_mask=query_mask)
    with torch.no_grad():
        nll = model.head.loss(model(x, y[:, :4]), Batch(x=x, y=y, target_y=y, n_context=4))
        torch.testing.assert_close(model.loss(masked), nll[query_mask].mean())


def test_context_mask_is_validated(model):
    x, y = _data(2, 6, 2)
    with pytest.raises(ValueError, match="without any context row"):
        model.fit(x, y, torch.tensor([[True] * 6, [False] * 6]))
    with pytest.raises(ValueError, match="context_mask must have shape"):
        model.fit(x, y, torch.ones(2, 5, dtype=torch.bool))
    with pytest.raises(TypeError, match="boolean"):
        model.fit(x, y, torch.ones(2, 6))


# --- differentiable predict -------------------------------------------------------------

@pytest.mark.parametrize("statistic", ["mean", "expected_improvement", "log_prob"])
def test_gradients_reach_the_queries_and_match_finite_differences(model, statistic, central_difference):
    x, y = _data(1, 12, 2, seed=4)
    fitted = model.fit(x[0], y[0])

    def value(xq: torch.Tensor, grad: bool = False) -> torch.Tensor:
        dist = fitted.predict(xq, grad=grad)
        if statistic == "mean":
            return dist.mean.sum()
        if statistic == "expected_improvement":
            return dist.expected_improvement(best=0.5, maximize=True).sum()
        return dist.log_prob(torch.full(dist.batch_shape, 0.3)).sum()

    xq = torch.tensor([[0.3, 0.6], [0.8, 0.1]], dtype=torch.float64, requires_grad=True)
    value(xq, grad=True).backward()
    assert xq.grad is not None and xq.grad.dtype == torch.float64
    numeric = central_difference(lambda v: float(value(v)), xq.detach(), eps=1e-3)
    # float32 network: central differences with step 1e-3 are accurate to about 1e-3 relative.
    torch.testing.assert_close(xq.grad, numeric, rtol=2e-2, atol=2e-3)


def test_predict_without_grad_keeps_no_graph(model):
    x, y = _data(1, 8, 2)
    xq = torch.rand(3, 2, requires_grad=True)
    assert not model.predict(x[0], y[0], xq).mean.requires_grad


def test_botorch_batch_x_q_x_d_queries_share_one_context(model):
    x, y = _data(1, 10, 2, seed=5)
    fitted = model.fit(x[0], y[0])
    xq = torch.rand(4, 3, 2, dtype=torch.float64)
    dist = fitted.predict(xq)
    assert dist.batch_shape == (4, 3)
    torch.testing.assert_close(dist.log_probs, fitted.predict(xq.reshape(12, 2)).log_probs.reshape(4, 3, -1))
    assert fitted.batch_size == 1 and fitted.cache.kv[0][0].shape[0] in (1, 3)  # one context (x T tokens), not 4
    deeper = fitted.predict(torch.rand(2, 4, 3, 2))
    assert deeper.batch_shape == (2, 4, 3)


# --- one head protocol --------------------------------------------------------------------

def test_a_new_head_is_one_new_module_with_nothing_else_to_edit(tmp_path):
    @register_head("test-gaussian")
    class GaussianHead(Head):
        def __init__(self, d_model: int) -> None:
            super().__init__()
            self.proj = nn.Linear(d_model, 2)

        @classmethod
        def build(cls, config, state):
            return cls(config.d_model)

        def forward(self, h):
            return self.proj(h)

        def parameters_of(self, logits, **task):
            return logits.float()

        def n_parameters(self, **task):
            return 2

        def distribution(self, params, **task):
            return torch.distributions.Normal(params[..., 0], nn.functional.softplus(params[..., 1]) + 1e-3)

    try:
        config = ModelConfig(d_model=16, n_layers=1, n_heads=2, d_ff=32, max_features=1, head="test-gaussian")
        cfg = TrainConfig(steps=3, batch_size=4, n_points=12, max_context=8, max_features=1, warmup_steps=1,
                          checkpoint_every=3, val_every=3, val_batches=1)
        model = train(GPPrior(), config, cfg, tmp_path / "run", progress=False)
        loaded = load_folder(save_checkpoint(model, tmp_path / "copy"))
        pred = loaded.predict(torch.rand(5, 1), torch.randn(5), torch.rand(3, 1))
        assert isinstance(pred, torch.distributions.Normal) and pred.batch_shape == (3,)
        assert math.isfinite(float(pred.log_prob(torch.zeros(3)).sum()))
    finally:
        del HEADS["test-gaussian"]


def test_heads_share_one_loss_and_predictive_protocol():
    reg = _randomised(PAD)
    clf = _randomised(ModelConfig(d_model=32, n_layers=2, n_heads=2, d_ff=64, max_features=3,
                                  head="classification", max_classes=4))
    x, y = _data(2, 9, 3, seed=6)
    labels = (y > y.median()).float()
    for model, target, meta in ((reg, y, {}), (clf, labels, {"n_classes": torch.tensor([2, 2])})):
        batch = Batch(x=x, y=target, target_y=target, n_context=5, meta=meta)
        with torch.no_grad():
            logits = model(x, target[:, :5])
            dist = model.head.predictive(logits, **model.head.task_of_batch(batch))
            torch.testing.assert_close(model.head.loss(logits, batch), -dist.log_prob(target[:, 5:]))
            torch.testing.assert_close(model.predict(x[:, :5], target[:, :5], x[:, 5:]).log_prob(target[:, 5:]),
                                       dist.log_prob(target[:, 5:]), atol=1e-5, rtol=1e-5)

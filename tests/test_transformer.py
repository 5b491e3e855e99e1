"""The PFN transformer: set-valued context, queries independent of each other, KV cache,
chunking, feature counts, and validation of user inputs to `predict`."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from pfn.config import ModelConfig
from pfn.model import PFN
from pfn.riemann import RiemannDistribution

ATOL = 1e-5


def data(b: int, n: int, f: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return torch.rand(b, n, f, generator=g), torch.randn(b, n, generator=g)


def test_perturbed_fixture_is_not_an_identity_network(tiny_pfn):
    # Guard for the invariance tests below: the context must actually change predictions.
    x, y = data(1, 9, 2)
    a = tiny_pfn(x, y[:, :6])
    b = tiny_pfn(x, y[:, :6] + 1.0)
    assert (a - b).abs().max() > 1e-2
    # And each layer's zero-initialised output projections were perturbed.
    for layer in tiny_pfn.transformer.layers:
        assert layer.attn_out.weight.abs().sum() > 0 and layer.mlp[-1].weight.abs().sum() > 0


def test_freshly_initialised_layers_are_the_identity(tiny_model_config, tiny_borders):
    torch.manual_seed(0)
    model = PFN(tiny_model_config, {"borders": tiny_borders})
    h = torch.randn(2, 7, tiny_model_config.d_model)
    for layer in model.transformer.layers:
        assert torch.equal(layer(h, n_context=4), h)


def test_forward_returns_logits_for_queries_only(tiny_pfn, tiny_model_config):
    x, y = data(3, 11, 4)
    logits = tiny_pfn(x, y[:, :7])
    assert logits.shape == (3, 4, tiny_model_config.n_buckets)
    assert torch.isfinite(logits).all()


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_context_permutation_does_not_change_query_predictions(tiny_pfn, seed):
    x, y = data(2, 15, 3, seed)
    n_ctx = 10
    perm = torch.randperm(n_ctx, generator=torch.Generator().manual_seed(seed + 100))
    x_perm = torch.cat([x[:, :n_ctx][:, perm], x[:, n_ctx:]], dim=1)
    with torch.no_grad():
        a = tiny_pfn(x, y[:, :n_ctx])
        b = tiny_pfn(x_perm, y[:, :n_ctx][:, perm])
    assert not torch.equal(perm, torch.arange(n_ctx))
    assert torch.allclose(a, b, atol=ATOL)
    # Through the user-facing API as well.
    pa = tiny_pfn.predict(x[0, :n_ctx], y[0, :n_ctx], x[0, n_ctx:])
    pb = tiny_pfn.predict(x[0, :n_ctx][perm], y[0, :n_ctx][perm], x[0, n_ctx:])
    assert torch.allclose(pa.log_probs, pb.log_probs, atol=ATOL)


def test_query_prediction_ignores_other_queries(tiny_pfn):
    x, y = data(2, 16, 3)
    n_ctx = 8
    with torch.no_grad():
        full = tiny_pfn(x, y[:, :n_ctx])  # 8 queries together
        for j in range(16 - n_ctx):
            alone = tiny_pfn(torch.cat([x[:, :n_ctx], x[:, n_ctx + j:n_ctx + j + 1]], dim=1), y[:, :n_ctx])
            assert torch.allclose(alone[:, 0], full[:, j], atol=ATOL), j
        # Replacing the other queries by different points changes nothing for query 0.
        other = torch.rand(2, 7, 3, generator=torch.Generator().manual_seed(5))
        swapped = tiny_pfn(torch.cat([x[:, :n_ctx + 1], other], dim=1), y[:, :n_ctx])
        assert torch.allclose(swapped[:, 0], full[:, 0], atol=ATOL)
        # Reordering the queries reorders the predictions.
        rev = tiny_pfn(torch.cat([x[:, :n_ctx], x[:, n_ctx:].flip(1)], dim=1), y[:, :n_ctx])
        assert torch.allclose(rev.flip(1), full, atol=ATOL)


def test_query_prediction_ignores_other_queries_through_predict(tiny_pfn):
    x, y = data(1, 20, 2, seed=3)
    xc, yc, xq = x[0, :10], y[0, :10], x[0, 10:]
    together = tiny_pfn.predict(xc, yc, xq)
    for j in range(xq.shape[0]):
        alone = tiny_pfn.predict(xc, yc, xq[j:j + 1])
        assert torch.allclose(alone.log_probs[0], together.log_probs[j], atol=ATOL)


def test_context_changes_predictions(tiny_pfn):
    x, y = data(1, 12, 2, seed=4)
    a = tiny_pfn.predict(x[0, :8], y[0, :8], x[0, 8:])
    b = tiny_pfn.predict(x[0, :7], y[0, :7], x[0, 8:])
    assert not torch.allclose(a.log_probs, b.log_probs, atol=1e-3)


@pytest.mark.parametrize("batched", [False, True])
def test_cached_predictions_equal_uncached_forward(tiny_pfn, batched):
    x, y = data(3, 14, 4, seed=6)
    n_ctx = 9
    with torch.no_grad():
        uncached = torch.log_softmax(tiny_pfn(x, y[:, :n_ctx]), dim=-1)
    if batched:
        fitted = tiny_pfn.fit(x[:, :n_ctx], y[:, :n_ctx])
        first = fitted.predict(x[:, n_ctx:])
        second = fitted.predict(x[:, n_ctx:])  # the cache is reusable
        assert first.batch_shape == (3, 5)
        assert torch.allclose(first.log_probs, uncached, atol=ATOL)
        assert torch.equal(first.log_probs, second.log_probs)
    else:
        for i in range(3):
            fitted = tiny_pfn.fit(x[i, :n_ctx], y[i, :n_ctx])
            pred = fitted.predict(x[i, n_ctx:])
            assert pred.batch_shape == (5,)
            assert torch.allclose(pred.log_probs, uncached[i], atol=ATOL)


def test_fit_once_predict_many_matches_predict(tiny_pfn):
    x, y = data(1, 30, 2, seed=7)
    xc, yc = x[0, :10], y[0, :10]
    fitted = tiny_pfn.fit(xc, yc)
    for lo, hi in [(10, 12), (12, 30), (10, 30)]:
        assert torch.allclose(fitted.predict(x[0, lo:hi]).log_probs, tiny_pfn.predict(xc, yc, x[0, lo:hi]).log_probs,
                              atol=ATOL)


@pytest.mark.parametrize("chunk_size", [1, 3, 7, 100])
def test_chunked_prediction_equals_unchunked(tiny_pfn, chunk_size):
    x, y = data(2, 27, 3, seed=8)
    xc, yc, xq = x[:, :10], y[:, :10], x[:, 10:]
    full = tiny_pfn.predict(xc, yc, xq)
    chunked = tiny_pfn.predict(xc, yc, xq, chunk_size=chunk_size)
    assert chunked.batch_shape == full.batch_shape == (2, 17)
    assert torch.allclose(chunked.log_probs, full.log_probs, atol=ATOL)


@pytest.mark.parametrize("n_features", [1, 2, 3, 4])
def test_every_feature_count_up_to_max_features_works(tiny_pfn, n_features):
    x, y = data(2, 12, n_features, seed=n_features)
    dist = tiny_pfn.predict(x[:, :8], y[:, :8], x[:, 8:])
    assert isinstance(dist, RiemannDistribution)
    assert dist.batch_shape == (2, 4)
    assert torch.isfinite(dist.mean).all() and torch.isfinite(dist.variance).all()
    assert torch.allclose(dist.probs.sum(-1), torch.ones(2, 4), atol=1e-5)
    # Unbatched input gives the first batch element.
    single = tiny_pfn.predict(x[0, :8], y[0, :8], x[0, 8:])
    assert single.batch_shape == (4,)
    assert torch.allclose(single.log_probs, dist.log_probs[0], atol=ATOL)


@pytest.mark.parametrize("n_features", [1, 3])
def test_padded_features_are_zero_filled_and_rescaled(tiny_pfn, n_features):
    # feature_encoding="pad": zero-pad to max_features, rescale by sqrt(max_features / n_features).
    seen = []
    handle = tiny_pfn.transformer.x_encoder.register_forward_pre_hook(lambda mod, args: seen.append(args[0]))
    try:
        x, y = data(1, 6, n_features, seed=13)
        tiny_pfn.predict(x[0, :4], y[0, :4], x[0, 4:])
    finally:
        handle.remove()
    max_f = tiny_pfn.config.max_features
    encoded = torch.cat([t.reshape(-1, max_f) for t in seen])
    raw = torch.cat([x[0, :4], x[0, 4:]])
    assert torch.equal(encoded[:, n_features:], torch.zeros(6, max_f - n_features))
    assert torch.allclose(encoded[:, :n_features], raw * (max_f / n_features) ** 0.5)


def test_one_dimensional_inputs_are_one_feature(tiny_pfn):
    x, y = data(1, 10, 1, seed=9)
    a = tiny_pfn.predict(x[0, :6, 0], y[0, :6], x[0, 6:, 0])
    b = tiny_pfn.predict(x[0, :6], y[0, :6], x[0, 6:])
    assert a.batch_shape == (4,)
    assert torch.allclose(a.log_probs, b.log_probs)


def test_predict_accepts_numpy_lists_and_integers(tiny_pfn):
    x, y = data(1, 10, 2, seed=10)
    ref = tiny_pfn.predict(x[0, :6], y[0, :6], x[0, 6:])
    from_numpy = tiny_pfn.predict(x[0, :6].numpy().astype(np.float64), y[0, :6].numpy(), x[0, 6:].numpy())
    from_lists = tiny_pfn.predict(x[0, :6].tolist(), y[0, :6].tolist(), x[0, 6:].tolist())
    assert torch.allclose(from_numpy.log_probs, ref.log_probs, atol=ATOL)
    assert torch.allclose(from_lists.log_probs, ref.log_probs, atol=ATOL)
    ints = tiny_pfn.predict(np.arange(6).reshape(3, 2), np.array([0, 1, 0]), np.array([[1, 2]]))
    assert ints.batch_shape == (1,)


def test_predict_runs_in_eval_mode_even_if_the_model_has_dropout(tiny_pfn):
    # The engine has no dropout; a user's or later module's dropout must still not make predict random.
    x, y = data(1, 10, 2, seed=11)
    tiny_pfn.eval()
    reference = tiny_pfn.predict(x[0, :6], y[0, :6], x[0, 6:]).log_probs
    layer = tiny_pfn.transformer.layers[0]
    original = layer.mlp
    layer.mlp = torch.nn.Sequential(original, torch.nn.Dropout(0.5))
    try:
        tiny_pfn.train()
        with torch.no_grad():
            assert not torch.allclose(tiny_pfn(x, y[:, :6]), tiny_pfn(x, y[:, :6]))  # dropout is active
        tiny_pfn.train()
        pred = tiny_pfn.predict(x[0, :6], y[0, :6], x[0, 6:])
    finally:
        layer.mlp = original
        tiny_pfn.eval()
    assert torch.allclose(pred.log_probs, reference, atol=ATOL)


def test_pfn_rejects_borders_that_do_not_match_the_buckets(tiny_model_config):
    with pytest.raises(ValueError, match="51 borders"):
        PFN(tiny_model_config, {"borders": torch.linspace(-1, 1, 10)})


def test_model_config_rejects_bad_architectures():
    with pytest.raises(ValueError, match="divisible"):
        ModelConfig(d_model=30, n_heads=4)
    with pytest.raises(ValueError, match="feature_encoding"):
        ModelConfig(feature_encoding="tokens")
    with pytest.raises(ValueError):
        ModelConfig(n_buckets=2)
    with pytest.raises(ValueError, match="unknown ModelConfig fields"):
        ModelConfig.from_dict({"d_model": 32, "n_head": 2})


# --- input validation ---------------------------------------------------------------------------

XC, YC, XQ = np.random.default_rng(0).random((6, 2)), np.random.default_rng(1).random(6), np.zeros((3, 2))


def _nan_at(a: np.ndarray, value: float) -> np.ndarray:
    a = a.copy()
    a.flat[1] = value
    return a


@pytest.mark.parametrize(
    "x_context, y_context, x_query, error, match",
    [
        (np.zeros((6, 5)), YC, np.zeros((3, 5)), ValueError, r"x_context has 5 features but this model supports 1 to 4"
                                                             r"; reduce the inputs"),
        (XC, YC[:5], XQ, ValueError, r"same batch size and number of rows"),
        (_nan_at(XC, np.nan), YC, XQ, ValueError, r"x_context contains 1 NaN values"),
        (XC, _nan_at(YC, np.inf), XQ, ValueError, r"y_context contains 1 infinite"),
        (XC, YC, _nan_at(XQ, -np.inf), ValueError, r"x_query contains 1 infinite"),
        (XC, YC, _nan_at(XQ, np.nan), ValueError, r"x_query contains 1 NaN"),
        (np.zeros((0, 2)), np.zeros(0), XQ, ValueError, r"context is empty"),
        (XC, YC, np.zeros((3, 3)), ValueError, r"x_query must have shape \(M, 2\).*got \(3, 3\)"),
        (XC, YC, np.zeros(3), ValueError, r"x_query must have shape \(M, 2\)"),
        ([["a", "b"]] * 6, YC, XQ, TypeError, r"x_context must be numeric"),
        (XC, ["low"] * 6, XQ, TypeError, r"y_context must be numeric"),
        (XC, YC, [[object(), 1.0]], TypeError, r"x_query must be numeric"),
        (XC, YC, torch.zeros(3, 2, dtype=torch.bool), TypeError, r"x_query must be a float or integer tensor"),
        (torch.zeros(6, 2, dtype=torch.complex64), YC, XQ, TypeError, r"x_context must be a float or integer"),
        (np.zeros((6, 2, 1, 1)), YC, XQ, ValueError, r"expected x_context \(N, F\)"),
    ],
    ids=["too-many-features", "mismatched-rows", "nan-x", "inf-y", "inf-query", "nan-query", "empty-context",
         "query-feature-count", "query-1d-for-2-features", "strings-x", "strings-y", "objects-query", "bool-tensor",
         "complex-tensor", "wrong-rank"],
)
def test_predict_validates_inputs_with_helpful_messages(tiny_pfn, x_context, y_context, x_query, error, match):
    with pytest.raises(error, match=match):
        tiny_pfn.predict(x_context, y_context, x_query)


def test_batched_predict_validates_query_batch_and_features(tiny_pfn):
    x, y = data(2, 10, 3, seed=12)
    with pytest.raises(ValueError, match=r"x_query must have shape \(2, M, 3\).*got \(1, 4, 3\)"):
        tiny_pfn.predict(x[:, :6], y[:, :6], x[:1, 6:])
    with pytest.raises(ValueError, match=r"x_query must have shape \(2, M, 3\)"):
        tiny_pfn.predict(x[:, :6], y[:, :6], x[:, 6:, :2])
    with pytest.raises(ValueError, match="same batch size"):
        tiny_pfn.predict(x[:, :6], y[:1, :6], x[:, 6:])
    with pytest.raises(ValueError, match="x_context has 6 features"):
        tiny_pfn.predict(torch.zeros(2, 6, 6), y[:, :6], torch.zeros(2, 2, 6))


def test_fitted_model_validates_queries_against_its_context(tiny_pfn):
    fitted = tiny_pfn.fit(XC, YC)
    with pytest.raises(ValueError, match="x_query must have shape"):
        fitted.predict(np.zeros((4, 4)))
    with pytest.raises(ValueError, match="x_query contains"):
        fitted.predict(np.full((1, 2), np.nan))


def test_predict_rejects_non_positive_chunk_size(tiny_pfn):
    with pytest.raises(ValueError, match="chunk_size"):
        tiny_pfn.predict(torch.rand(5, 2), torch.rand(5), torch.rand(3, 2), chunk_size=0)

"""The SCM prior for tabular data: Batch contract, reproducibility, serialisation, documented structure."""

from __future__ import annotations

import json
import math

import pytest
import torch

from priors import Fixed, LogNormal, SCMPrior, Uniform, prior_from_dict
from priors.scm import MECHANISMS, _context_stats, _cut_at_random_quantiles, axis_aligned_steps

CLF = SCMPrior()
REG = SCMPrior(task="regression")
META_KEYS = {"n_features", "n_causes", "n_layers", "width", "mechanism", "root_distribution", "target_layer",
             "noise", "weight_scale", "edge_dropout", "feature_relevance", "missing_rate", "categorical", "irrelevant"}


def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def used_mask(batch) -> torch.Tensor:
    """`B x F` bool: the used feature columns."""
    return torch.arange(batch.n_features) < batch.meta["n_features"].unsqueeze(-1)


# --- Batch contract -----------------------------------------------------------------------

@pytest.mark.parametrize("prior", [CLF, REG], ids=["classification", "regression"])
@pytest.mark.parametrize("n_features", [1, 5])
def test_scm_prior_returns_batch_first_shapes_and_documented_meta(prior, n_features):
    batch = prior.sample(6, 40, n_features, generator=gen(0))
    assert batch.x.shape == (6, 40, n_features)
    assert batch.y.shape == batch.target_y.shape == (6, 40)
    assert batch.x.dtype == batch.y.dtype == batch.target_y.dtype == torch.float32
    assert batch.n_context == 20
    extra = {"n_classes"} if prior.task == "classification" else {"target_noise"}
    assert set(batch.meta) == META_KEYS | extra
    for key, value in batch.meta.items():
        assert value.shape[0] == 6, key
    assert batch.meta["mechanism"].shape == (6, prior.max_layers)
    assert batch.meta["categorical"].shape == batch.meta["irrelevant"].shape == (6, n_features)
    assert batch.meta["categorical"].dtype == batch.meta["irrelevant"].dtype == torch.bool
    for key in ("n_features", "n_causes", "n_layers", "width", "target_layer", "noise", "missing_rate"):
        assert batch.meta[key].shape == (6,), key
    assert prior.sample(6, 40, n_features, generator=gen(0), n_context=7).n_context == 7


def test_scm_prior_meta_values_lie_in_their_configured_ranges():
    prior = SCMPrior(min_causes=2, max_causes=3, min_layers=1, max_layers=3, min_width=4, max_width=6,
                     mechanisms=("tanh", "tree"))
    batch = prior.sample(300, 5, 3, generator=gen(1))
    assert set(batch.meta["n_causes"].tolist()) == {2, 3}
    assert set(batch.meta["n_layers"].tolist()) == {1, 2, 3}
    assert batch.meta["width"].min() >= 4 and batch.meta["width"].max() <= 6
    assert set(batch.meta["mechanism"].flatten().tolist()) == {MECHANISMS.index("tanh"), MECHANISMS.index("tree")}
    assert set(batch.meta["n_features"].tolist()) == {1, 2, 3}
    assert (batch.meta["target_layer"] <= batch.meta["n_layers"]).all() and (batch.meta["target_layer"] >= 0).all()


@pytest.mark.parametrize("prior", [CLF, REG], ids=["classification", "regression"])
def test_same_seed_gives_identical_batches_and_different_seeds_differ(prior):
    a = prior.sample(5, 30, 4, generator=gen(42))
    b = prior.sample(5, 30, 4, generator=gen(42))
    for field in ("x", "y", "target_y"):
        assert torch.equal(getattr(a, field).nan_to_num(-7.0), getattr(b, field).nan_to_num(-7.0)), field
    for key in a.meta:
        assert torch.equal(a.meta[key], b.meta[key]), key
    c = prior.sample(5, 30, 4, generator=gen(43))
    for field in ("x", "y", "target_y"):
        assert not torch.equal(getattr(a, field).nan_to_num(-7.0), getattr(c, field).nan_to_num(-7.0)), field


@pytest.mark.parametrize(
    "prior",
    [
        CLF,
        REG,
        SCMPrior(task="regression", max_classes=3, min_features=2, min_causes=2, max_causes=2, min_layers=1,
                 max_layers=2, min_width=3, max_width=5, mechanisms=("relu", "tree"), mechanism_per_layer=False,
                 tree_splits=2, noise=Fixed(0.1), weight_scale=Uniform(0.5, 2.0), edge_dropout=Fixed(0.0),
                 feature_relevance=Fixed(5.0), irrelevant_fraction=Uniform(0.1, 0.2), warps=("log",),
                 feature_scale=Fixed(1.0), categorical_prob=1.0, categorical_fraction=Fixed(0.5), max_categories=3,
                 missing_prob=0.5, missing_rate=Fixed(0.05), target_noise=LogNormal(-2.0, 0.1)),
    ],
    ids=["classification", "regression", "custom"],
)
def test_to_dict_from_dict_round_trip(prior):
    d = prior.to_dict()
    assert d["type"] == "SCMPrior"
    rebuilt = prior_from_dict(json.loads(json.dumps(d)))
    assert rebuilt == prior
    assert rebuilt.to_dict() == d
    a, b = prior.sample(3, 20, 3, generator=gen(5)), rebuilt.sample(3, 20, 3, generator=gen(5))
    assert torch.equal(a.x.nan_to_num(-7.0), b.x.nan_to_num(-7.0)) and torch.equal(a.y, b.y)


def test_config_is_frozen():
    with pytest.raises(AttributeError):
        CLF.task = "regression"


# --- finiteness, unused columns, missing values --------------------------------------------

@pytest.mark.parametrize(
    "prior",
    [CLF, REG, SCMPrior(noise=Fixed(0.0), mechanisms=("step", "tree")),
     SCMPrior(task="regression", noise=Fixed(0.0), mechanisms=("relu", "identity"), weight_scale=LogNormal(1.5, 1.0))],
    ids=["classification", "regression", "noise-free-steps", "noise-free-relu"],
)
def test_output_is_finite_except_documented_missing_values_and_unused_columns_are_zero(prior):
    for seed in range(15):
        n_points, n_features = (2, 30, 120)[seed % 3], (1, 4, 12)[seed % 3]
        batch = prior.sample(8, n_points, n_features, generator=gen(seed))
        assert torch.isfinite(batch.y).all() and torch.isfinite(batch.target_y).all()
        assert not torch.isinf(batch.x).any()
        used = used_mask(batch).unsqueeze(1).expand_as(batch.x)
        assert (batch.x[~used] == 0).all()  # zero, hence not NaN
        nan_datasets = torch.isnan(batch.x).flatten(1).any(-1)
        assert (batch.meta["missing_rate"][nan_datasets] > 0).all()


def test_missing_values_appear_at_the_documented_rate_only_in_used_columns():
    batch = SCMPrior(missing_prob=1.0, missing_rate=Fixed(0.2)).sample(40, 50, 6, generator=gen(2))
    used = used_mask(batch).unsqueeze(1).expand_as(batch.x)
    nan = torch.isnan(batch.x)
    assert not nan[~used].any()
    assert nan[used].float().mean().item() == pytest.approx(0.2, abs=0.03)
    assert torch.allclose(batch.meta["missing_rate"], torch.tensor(0.2))
    assert not torch.isnan(SCMPrior(missing_prob=0.0).sample(40, 50, 6, generator=gen(2)).x).any()


def test_by_default_about_a_tenth_of_datasets_have_missing_values():
    batch = CLF.sample(1000, 30, 2, generator=gen(3))
    has_missing = batch.meta["missing_rate"] > 0
    assert has_missing.float().mean().item() == pytest.approx(0.1, abs=0.03)
    assert not torch.isnan(batch.x[~has_missing]).any()


# --- classification ------------------------------------------------------------------------

def test_classification_labels_are_class_indices_and_every_dataset_has_two_classes():
    prior = SCMPrior(max_classes=6)
    batch = prior.sample(200, 100, 3, generator=gen(4))
    n_classes = batch.meta["n_classes"]
    assert n_classes.min() >= 2 and n_classes.max() <= 6
    assert set(n_classes.tolist()) == set(range(2, 7))
    assert torch.equal(batch.y, batch.target_y)
    assert torch.equal(batch.y, batch.y.round())
    assert (batch.y >= 0).all() and (batch.y < n_classes.unsqueeze(-1)).all()
    for i in range(200):
        assert batch.y[i].unique().numel() >= 2, i


def test_even_tiny_and_noise_free_datasets_have_two_classes():
    batch = SCMPrior(noise=Fixed(0.0), mechanisms=("step",)).sample(100, 2, 1, generator=gen(5))
    assert (batch.y.max(-1).values != batch.y.min(-1).values).all()


def test_half_the_datasets_are_binary_by_default():
    n_classes = CLF.sample(1000, 40, 1, generator=gen(6)).meta["n_classes"]
    assert (n_classes == 2).float().mean().item() == pytest.approx(0.5, abs=0.05)
    assert n_classes.max() == 10
    assert (SCMPrior(binary_fraction=1.0).sample(50, 2, 1, generator=gen(6)).meta["n_classes"] == 2).all()


@pytest.mark.parametrize("n_context", [2, 5, 12, 60])
def test_meta_n_classes_counts_the_classes_of_the_context_rows(n_context):
    """At use the model is told the classes of the training rows, labelled 0..k-1: the prior's
    `meta["n_classes"]` must be that count, and query rows hold no other class."""
    batch = CLF.sample(300, 120, 2, generator=gen(9), n_context=n_context)
    n_classes = batch.meta["n_classes"]
    assert n_classes.min() >= 2 and n_classes.max() <= min(n_context, 10)
    for i in range(300):
        assert batch.y[i, :n_context].unique().tolist() == list(range(int(n_classes[i]))), i
        assert batch.y[i].max() < n_classes[i], i


def test_quantile_cut_at_reference_rows_puts_every_bin_among_them():
    values = torch.randn(500, 40)
    n_bins = torch.full((500,), 6)
    labels = _cut_at_random_quantiles(values, n_bins, 8, {"generator": gen(7), "device": "cpu"}, n_reference=6)
    assert all(row[:6].unique().numel() == 6 for row in labels)
    by_value = labels.gather(1, values.argsort(dim=1))
    assert ((by_value[:, 1:] != by_value[:, :-1]).sum(1) == 5).all()  # contiguous value ranges


def test_quantile_cut_gives_contiguous_value_ranges_with_permuted_labels():
    values = torch.randn(500, 40)
    n_bins = torch.full((500,), 3)
    labels = _cut_at_random_quantiles(values, n_bins, 5, {"generator": gen(7), "device": "cpu"})
    by_value = labels.gather(1, values.argsort(dim=1))
    changes = (by_value[:, 1:] != by_value[:, :-1]).sum(1)
    assert (changes <= 2).all()  # 3 bins = at most 2 boundaries along the sorted values
    assert by_value[:, 0].ne(by_value[:, -1]).all()  # the extremes always differ
    lowest = by_value[:, 0]
    assert set(lowest.tolist()) == {0.0, 1.0, 2.0}  # labels are permuted: the lowest bin is not always 0


# --- regression ----------------------------------------------------------------------------

def test_regression_context_rows_are_standardised_and_y_adds_the_target_noise():
    batch = SCMPrior(task="regression", target_noise=Fixed(0.1)).sample(30, 200, 3, generator=gen(8), n_context=120)
    context = batch.y[:, :120]
    torch.testing.assert_close(context.mean(1), torch.zeros(30), atol=1e-5, rtol=0)
    torch.testing.assert_close(context.std(1, correction=0), torch.ones(30), atol=1e-5, rtol=0)
    resid = batch.y - batch.target_y  # the noise, in units of the observation's context spread (~sqrt(1 + 0.1^2))
    assert resid.std().item() == pytest.approx(0.1 / math.sqrt(1.01), rel=0.05)
    assert torch.allclose(batch.meta["target_noise"], torch.tensor(0.1))


def test_regression_query_rows_are_not_tied_to_the_context_by_the_standardisation():
    # Standardising over all rows would force sum(query) = -sum(context), i.e. a zero mean over all rows.
    batch = REG.sample(2000, 60, 2, generator=gen(16), n_context=20)
    for target in (batch.y, batch.target_y):
        assert (target.mean(1).abs() > 1e-3).float().mean() > 0.9
        assert target[:, 20:].mean(1).std() > 0.1
    # The observed context is standardised (as the estimators do with their training rows).
    torch.testing.assert_close(batch.y[:, :20].mean(1), torch.zeros(2000), atol=1e-5, rtol=0)
    spread = batch.y[:, :20].std(1, correction=0)
    torch.testing.assert_close(spread, torch.ones(2000), atol=1e-4, rtol=0)  # in every dataset: no floor from queries


def test_context_statistics_come_from_the_context_rows_alone():
    t = torch.randn(50, 30, 3, generator=gen(18))
    t[:, :10, 0] = 2.0 + 1e-3 * t[:, :10, 0]  # a nearly constant context, queries far out
    t[:, :10, 1] = 5.0  # a constant context
    other_queries = torch.cat([t[:, :10], 100.0 * torch.randn(50, 20, 3, generator=gen(19))], dim=1)
    loc, scale = _context_stats(t, 10)
    for same in (_context_stats(other_queries, 10), _context_stats(t[:, :10], 10)):
        torch.testing.assert_close(same, (loc, scale), atol=0, rtol=0)
    torch.testing.assert_close(scale[:, 0, 0], t[:, :10, 0].std(1, correction=0))
    torch.testing.assert_close(scale[:, 0, 1], torch.full((50,), 5.0))  # constant: its magnitude, as the estimators
    torch.testing.assert_close(_context_stats(t[:, :1], 1), (t[:, :1], t[:, :1].abs()))  # one row: constant
    assert [v.unique().item() for v in _context_stats(t, 0)] == [0.0, 1.0]  # no context: nothing to learn from


def test_numeric_features_are_standardised_by_the_context_rows():
    prior = SCMPrior(warps=("identity",), feature_scale=Fixed(1.0), categorical_prob=0.0, missing_prob=0.0,
                     min_features=3)
    batch = prior.sample(200, 50, 3, generator=gen(17), n_context=10)
    context_spread = batch.x[:, :10].std(1, correction=0)  # x = z + shift: the shift leaves the spread alone
    assert (context_spread - 1.0).abs().lt(1e-4).float().mean() > 0.95
    assert (batch.x.std(1, correction=0) - 1.0).abs().gt(0.05).float().mean() > 0.5


# --- features ------------------------------------------------------------------------------

def test_categorical_columns_take_few_integer_values():
    prior = SCMPrior(categorical_prob=1.0, categorical_fraction=Fixed(0.5), max_categories=4, missing_prob=0.0)
    batch = prior.sample(30, 80, 6, generator=gen(9))
    categorical = batch.meta["categorical"]
    assert categorical.any() and not (categorical & ~used_mask(batch)).any()
    cat_values = batch.x.transpose(1, 2)[categorical]  # n_categorical x N
    assert torch.equal(cat_values, cat_values.round())
    assert (cat_values >= 0).all() and (cat_values < 4).all()
    numeric = batch.x.transpose(1, 2)[used_mask(batch) & ~categorical]
    assert all(row.unique().numel() > 20 for row in numeric)
    assert not SCMPrior(categorical_prob=0.0).sample(30, 20, 6, generator=gen(9)).meta["categorical"].any()


def test_used_feature_count_is_random_between_min_features_and_n_features():
    n_used = SCMPrior(min_features=3).sample(300, 4, 8, generator=gen(10)).meta["n_features"]
    assert set(n_used.tolist()) == set(range(3, 9))
    assert (SCMPrior(min_features=20).sample(5, 4, 8, generator=gen(10)).meta["n_features"] == 8).all()


def test_features_are_distinct_nodes_even_in_a_small_graph():
    prior = SCMPrior(min_causes=1, max_causes=1, min_layers=1, max_layers=1, min_width=1, max_width=2,
                     min_features=30, irrelevant_fraction=Fixed(0.0), categorical_prob=0.0, missing_prob=0.0,
                     warps=("identity",), noise=Fixed(1.0), weight_scale=Fixed(1.0))
    batch = prior.sample(4, 50, 30, generator=gen(11))
    assert (batch.meta["width"] >= 30).all()
    for i in range(4):
        z = (batch.x[i] - batch.x[i].mean(0)) / batch.x[i].std(0)
        corr = (z.T @ z) / 49
        assert (corr - torch.eye(30)).abs().max() < 0.95  # independent unit noise: no column duplicates another


def abs_corr_with_target(batch, columns: torch.Tensor) -> torch.Tensor:
    """Mean |corr(x_j, target)| over the selected `B x F` columns (no missing values)."""
    x = (batch.x - batch.x.mean(1, keepdim=True)) / batch.x.std(1, keepdim=True).clamp_min(1e-6)
    t = (batch.target_y - batch.target_y.mean(1, keepdim=True)) / batch.target_y.std(1, keepdim=True)
    corr = (x * t.unsqueeze(-1)).mean(1).abs()
    return corr[columns].mean()


def test_irrelevant_columns_are_noise_and_relevance_draws_related_features():
    base = {"task": "regression", "missing_prob": 0.0, "categorical_prob": 0.0, "warps": ("identity",)}
    noise_only = SCMPrior(irrelevant_fraction=Fixed(1.0), **base).sample(100, 100, 4, generator=gen(12))
    assert torch.equal(noise_only.meta["irrelevant"], used_mask(noise_only))
    assert abs_corr_with_target(noise_only, used_mask(noise_only)) < 0.12  # ~ E|N(0, 1/100)| = 0.08
    relevant = SCMPrior(irrelevant_fraction=Fixed(0.0), feature_relevance=Fixed(20.0), **base)
    uniform = SCMPrior(irrelevant_fraction=Fixed(0.0), feature_relevance=Fixed(0.0), **base)
    b_rel, b_uni = (p.sample(100, 100, 4, generator=gen(13)) for p in (relevant, uniform))
    assert not b_rel.meta["irrelevant"].any()
    assert abs_corr_with_target(b_rel, used_mask(b_rel)) > abs_corr_with_target(b_uni, used_mask(b_uni)) + 0.15


def test_mechanism_is_drawn_per_layer_or_once_per_dataset():
    per_dataset = SCMPrior(mechanism_per_layer=False).sample(50, 3, 1, generator=gen(14)).meta["mechanism"]
    assert (per_dataset == per_dataset[:, :1]).all()
    per_layer = SCMPrior().sample(50, 3, 1, generator=gen(14)).meta["mechanism"]
    assert (per_layer != per_layer[:, :1]).any()


# --- axis-aligned (tree) mechanism -----------------------------------------------------------

def test_axis_aligned_steps_change_only_where_one_input_crosses_its_thresholds():
    torch.manual_seed(0)
    h = torch.randn(1, 1, 3).expand(1, 200, 3).clone()
    h[0, :, 1] = torch.linspace(-3, 3, 200)  # move along input axis 1 only
    parent = torch.tensor([[[1, 1, 0], [2, 0, 0]]])  # unit 0: two steps on axis 1; unit 1: none on axis 1
    threshold = torch.tensor([[[-1.0, 0.5, 0.0], [0.0, 0.0, 0.0]]])
    coef = torch.tensor([[[2.0, -3.0, 1.0], [1.0, 1.0, 1.0]]])
    out = axis_aligned_steps(h, parent, threshold, coef)[0]  # 200 x 2
    jumps = (out[1:, 0] != out[:-1, 0]).nonzero().squeeze(-1)
    crossed = h[0, jumps + 1, 1]
    assert jumps.numel() == 2 and (crossed > -1.0).all()
    assert crossed[0] == h[0, h[0, :, 1] > -1.0, 1][0] and crossed[1] == h[0, h[0, :, 1] > 0.5, 1][0]
    assert out[-1, 0] - out[0, 0] == pytest.approx(2.0 - 3.0)
    assert out[:, 1].unique().numel() == 1  # does not look at axis 1


def test_tree_datasets_have_piecewise_constant_targets():
    steps = SCMPrior(task="regression", mechanisms=("tree",), noise=Fixed(0.0), tree_splits=3, target_noise=Fixed(0.0))
    smooth = SCMPrior(task="regression", mechanisms=("tanh",), noise=Fixed(0.0), target_noise=Fixed(0.0))
    b_steps, b_smooth = (p.sample(40, 100, 3, generator=gen(15)) for p in (steps, smooth))
    hidden = b_steps.meta["target_layer"] > 0  # root causes are continuous
    assert hidden.sum() > 30
    levels = torch.tensor([b_steps.target_y[i].unique().numel() for i in range(40)])
    assert (levels[hidden] <= 2**3).all()  # a sum of 3 steps takes at most 8 values
    smooth_levels = torch.tensor([b_smooth.target_y[i].unique().numel() for i in range(40)])
    assert (smooth_levels[b_smooth.meta["target_layer"] > 0] > 90).float().mean() > 0.9


# --- bad configs ---------------------------------------------------------------------------

@pytest.mark.parametrize(
    "kwargs",
    [
        {"task": "ranking"},
        {"max_classes": 1},
        {"binary_fraction": 1.5},
        {"categorical_prob": -0.1},
        {"missing_prob": 2.0},
        {"min_features": 0},
        {"min_causes": 0},
        {"min_causes": 5, "max_causes": 4},
        {"min_layers": 3, "max_layers": 2},
        {"min_width": 0},
        {"mechanisms": ()},
        {"mechanisms": ("gelu",)},
        {"warps": ("square",)},
        {"warps": ()},
        {"tree_splits": 0},
        {"max_categories": 1},
        {"noise": Fixed(-0.1)},
        {"weight_scale": Fixed(0.0)},
        {"feature_scale": Uniform(-1.0, 1.0)},
        {"feature_relevance": Fixed(-1.0)},
        {"edge_dropout": Uniform(0.0, 1.5)},
        {"missing_rate": LogNormal(0.0, 1.0)},
        {"irrelevant_fraction": Fixed(-0.1)},
        {"categorical_fraction": Fixed(1.2)},
    ],
)
def test_bad_configs_raise_value_error(kwargs):
    with pytest.raises(ValueError):
        SCMPrior(**kwargs)

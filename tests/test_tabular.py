"""The scikit-learn estimators `PFNClassifier` / `PFNRegressor` and the table encoding.

Contract tests run on tiny untrained checkpoints (fast, independent of the shipped
weights); quality and `check_estimator` tests run on the shipped models
(`tests/test_tabular_pretrained.py`).
"""

from __future__ import annotations

import itertools
import subprocess
import sys
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.base import clone

from pfn import PFNClassifier, PFNRegressor
from pfn.checkpoint import save_checkpoint
from pfn.config import ModelConfig
from pfn.model import PFN
from pfn.tabular.encoding import TableEncoder
from pfn.tabular.members import distinct_settings, member_settings
from pfn.tabular.preprocessing import PREPROCESSING, NumericTransform, Standardisation, YeoJohnson

TINY = {"feature_encoding": "per_feature", "max_features": 5, "d_model": 16, "n_layers": 1, "n_heads": 2, "d_ff": 32}
TINY_MAX_CLASSES = 6


@pytest.fixture(scope="module")
def tiny_paths(tmp_path_factory) -> dict[str, str]:
    torch.manual_seed(0)
    root = tmp_path_factory.mktemp("tiny_tabular")
    clf = PFN(ModelConfig(head="classification", max_classes=TINY_MAX_CLASSES, **TINY))
    reg = PFN(ModelConfig(head="bar", n_buckets=16, **TINY), {"borders": torch.linspace(-3, 3, 17).tolist()})
    with torch.no_grad():  # untrained output projections start at zero: perturb them so outputs depend on inputs
        for p in [*clf.parameters(), *reg.parameters()]:
            p.add_(0.3 * torch.randn_like(p))
    return {"clf": str(save_checkpoint(clf, root / "clf")), "reg": str(save_checkpoint(reg, root / "reg"))}


@pytest.fixture
def tiny_clf(tiny_paths) -> PFNClassifier:
    return PFNClassifier(model_path=tiny_paths["clf"], n_estimators=3, random_state=0, device="cpu")


@pytest.fixture
def tiny_reg(tiny_paths) -> PFNRegressor:
    return PFNRegressor(model_path=tiny_paths["reg"], n_estimators=3, random_state=0, device="cpu")


def _data(n: int = 40, f: int = 3, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, f))
    return x, (x[:, 0] > 0).astype(int)


def _mixed_frame(n: int = 30) -> pd.DataFrame:
    rng = np.random.default_rng(1)
    return pd.DataFrame({
        "num": rng.normal(size=n),
        "nullable": pd.array([None if i % 7 == 0 else i for i in range(n)], dtype="Int64"),
        "color": rng.choice(["red", "green", None], size=n).astype(object),
        "size": pd.Categorical(rng.choice(["S", "M", "L"], size=n)),
        "flag": rng.random(n) > 0.5,
    })


# Feature rescalings under which every prediction must stay the same. 1e300 lies far beyond
# float32's range (3.4e38); X + 1e9 rounds X to about 1.2e-7 (float64's spacing at 1e9).
RESCALINGS = {"1e-9": lambda x: x * 1e-9, "1e20": lambda x: x * 1e20, "1e300": lambda x: x * 1e300,
              "+1e9": lambda x: x + 1e9}


def test_import_pfn_leaves_the_estimators_until_first_use():
    code = ("import sys, pfn; assert 'pfn.tabular' not in sys.modules and 'sklearn' not in sys.modules; "
            "pfn.PFNRegressor; assert 'pfn.tabular.estimators' in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True)


# --- table encoding and preprocessing ----------------------------------------------------

def test_encoder_codes_categories_and_marks_missing_and_unseen_values_as_nan():
    frame = _mixed_frame()
    enc = TableEncoder().fit(frame)
    assert enc.categorical.tolist() == [False, False, True, True, False]
    out = enc.transform(frame)
    assert out.shape == (30, 5) and out.dtype == np.float64
    assert np.isnan(out[frame["nullable"].isna().to_numpy(), 1]).all()
    assert np.isnan(out[frame["color"].isna().to_numpy(), 2]).all()
    assert set(np.unique(out[:, 3])) == {0.0, 1.0, 2.0}
    unseen = frame.head(2).copy()
    unseen["color"] = ["purple", "red"]
    coded = enc.transform(unseen)
    assert np.isnan(coded[0, 2]) and coded[1, 2] == enc.categories[2].index("red")


def test_encoder_reads_numeric_strings_as_numbers_and_rejects_infinity():
    x = np.array([["1.5", "a"], ["2", "b"], ["nan", "a"]], dtype=object)
    enc = TableEncoder().fit(x)
    assert enc.categorical.tolist() == [False, True]
    np.testing.assert_array_equal(enc.transform(x)[:, 0], [1.5, 2.0, np.nan])
    with pytest.raises(ValueError, match="infinity"):
        TableEncoder().fit(np.array([[1.0], [np.inf]])).transform(np.array([[1.0], [np.inf]]))


def _numbers_with_a_gap(missing, dtype: str = "object") -> pd.DataFrame:
    """A numeric column whose third value is `missing`, beside a plain float column."""
    values = pd.array([1.0, -2.0, missing, 4.0], dtype=dtype)
    return pd.DataFrame({"a": values, "b": [0.5, 1.5, 2.5, 3.5]})


GAPS = {"object-pd.NA": (pd.NA, "object"), "object-None": (None, "object"), "Float64-pd.NA": (pd.NA, "Float64"),
        "Int64-pd.NA": (pd.NA, "Int64")}


@pytest.mark.parametrize("missing, dtype", GAPS.values(), ids=GAPS.keys())
def test_encoder_reads_na_and_none_in_a_column_of_numbers_as_missing_at_fit_and_predict(missing, dtype):
    frame = _numbers_with_a_gap(missing, dtype)
    reference = _numbers_with_a_gap(np.nan, "float64")
    enc = TableEncoder().fit(frame)
    assert enc.categorical.tolist() == [False, False]
    np.testing.assert_array_equal(enc.transform(frame), TableEncoder().fit(reference).transform(reference))
    np.testing.assert_array_equal(TableEncoder().fit(reference).transform(frame), enc.transform(reference))
    as_array = frame.to_numpy(dtype=object)  # numpy object arrays too
    np.testing.assert_array_equal(TableEncoder().fit(as_array).transform(as_array), enc.transform(frame))


def test_encoder_keeps_string_and_category_columns_with_na_categorical():
    frame = pd.DataFrame({"s": pd.array(["x", pd.NA, "y"], dtype="string"),
                          "o": np.array(["x", pd.NA, "y"], dtype=object),
                          "c": pd.Categorical(["x", None, "y"])})
    enc = TableEncoder().fit(frame)
    assert enc.categorical.tolist() == [True, True, True]
    np.testing.assert_array_equal(enc.transform(frame), [[0.0] * 3, [np.nan] * 3, [1.0] * 3])


@pytest.mark.parametrize("kind", PREPROCESSING)
@pytest.mark.parametrize("rescale", RESCALINGS.values(), ids=RESCALINGS.keys())
def test_member_preprocessing_is_the_same_at_every_magnitude(kind, rescale):
    x, _ = _data(n=50, f=2)
    x[:, 1] = np.exp(2 * x[:, 1])  # skewed, where the power transform matters
    x[3, 0] = np.nan
    test = np.vstack([x[:10], [[1e6, 1e6], [-1e6, 0.0]]])  # rows far outside the training range
    numeric = np.array([True, True])
    reference = NumericTransform(kind, numeric, seed=0).fit(x).transform(test)
    out = NumericTransform(kind, numeric, seed=0).fit(rescale(x)).transform(rescale(test))
    assert np.isfinite(out[~np.isnan(test)]).all() and np.isnan(out[np.isnan(test)]).all()
    # Inputs agree to float64 rounding, 1e-7 relative for X + 1e9 (its spacing there over a unit spread).
    np.testing.assert_allclose(out, reference, rtol=1e-5, atol=1e-5)


def test_standardisation_neither_overflows_nor_underflows():
    base = np.array([[1.0, 1.0], [-1.0, 3.0], [0.5, 2.0]])
    for factor in (5e307, 1e-310):  # a plain sum of the second column overflows at 5e307
        s = Standardisation.fit(base * factor)
        np.testing.assert_allclose(s.transform(base * factor), Standardisation.fit(base).transform(base), atol=1e-12)
        np.testing.assert_allclose(s.loc / factor, base.mean(0), rtol=1e-12)
        np.testing.assert_allclose(s.scale / factor, base.std(0), rtol=1e-12)


# --- ensemble members ------------------------------------------------------------------

@pytest.mark.parametrize("n_classes", [1, 2, 3, 10])
def test_member_settings_are_pairwise_different_up_to_their_count(n_classes):
    count = distinct_settings(n_classes)
    settings = member_settings(count, n_classes)
    assert len(set(settings)) == count
    assert member_settings(count + 1, n_classes)[count] == settings[0]


@pytest.mark.parametrize("estimator", ["clf", "reg"])
def test_default_members_all_give_different_predictions(tiny_paths, estimator):
    x, y = _data()
    cls = PFNClassifier if estimator == "clf" else PFNRegressor
    model = cls(model_path=tiny_paths[estimator], random_state=0, device="cpu").fit(x, y)
    assert model.n_estimators == 4
    settings = {(t.kind, t.reflect, tuple(getattr(model, "class_permutations_", [()] * 4)[i]))
                for i, t in enumerate(model.transforms_)}
    assert len(settings) == 4
    members = model._member_log_probs(x)
    for i, j in itertools.combinations(range(4), 2):
        assert (members[i] - members[j]).abs().max() > 1e-3, f"members {i} and {j} predict the same"


# --- classifier contract ---------------------------------------------------------------

def test_classifier_probabilities_are_distributions_over_classes(tiny_clf):
    x, y = _data()
    labels = np.array(["no", "yes"])[y]
    clf = tiny_clf.fit(x, labels)
    proba = clf.predict_proba(x[:7])
    assert proba.shape == (7, 2) and np.allclose(proba.sum(1), 1) and (proba >= 0).all()
    assert list(clf.classes_) == ["no", "yes"] and clf.n_features_in_ == 3
    predicted = clf.predict(x)
    np.testing.assert_array_equal(predicted, clf.classes_[clf.predict_proba(x).argmax(1)])
    assert clf.score(x, labels) == np.mean(predicted == labels)


class NearestNeighbourPFN:
    """Stands in for a tabular classifier PFN with a known output: every query gets probability
    ~1 for the label of its nearest context row (per member)."""

    def __init__(self, max_features: int, max_classes: int) -> None:
        self.config = SimpleNamespace(head="classification", feature_encoding="per_feature",
                                      max_features=max_features, max_classes=max_classes)
        self.info: dict = {}  # no training record

    def fit(self, x_context: np.ndarray, y_context: np.ndarray, n_classes: int) -> SimpleNamespace:
        xc, yc = torch.as_tensor(x_context), torch.as_tensor(y_context).long()

        def predict(x_query: np.ndarray, chunk_size: int) -> torch.distributions.Categorical:
            nearest = torch.cdist(torch.as_tensor(x_query), xc).argmin(-1)  # members x M
            labels = yc.gather(-1, nearest)
            return torch.distributions.Categorical(logits=20.0 * torch.nn.functional.one_hot(labels, n_classes))

        return SimpleNamespace(predict=predict)


def test_predict_proba_undoes_each_members_class_shift(monkeypatch):
    """With a model whose output is known (1-nearest-neighbour), every member, whatever its
    class shift, must give each training row its own label in the column of `classes_`."""
    x, _ = _data(n=30)
    y = np.array(["b", "c", "a"])[np.arange(30) % 3]
    monkeypatch.setattr(PFNClassifier, "_load_model", lambda self: NearestNeighbourPFN(5, 6))
    clf = PFNClassifier(n_estimators=3, random_state=0).fit(x, y)
    assert [list(p) for p in clf.class_permutations_] == [[0, 1, 2], [1, 2, 0], [2, 0, 1]]
    members = clf._member_log_probs(x).exp()
    for member, perm in zip(members, clf.class_permutations_, strict=True):
        np.testing.assert_array_equal(clf.classes_[member[:, perm].argmax(1).numpy()], y)
    proba = clf.predict_proba(x)
    assert (proba.max(1) > 0.99).all()
    np.testing.assert_array_equal(clf.classes_[proba.argmax(1)], y)


def test_classifier_accepts_dataframes_with_strings_categories_and_missing_values(tiny_clf):
    frame = _mixed_frame()
    y = np.arange(30) % 3
    clf = tiny_clf.fit(frame, y)
    assert list(clf.feature_names_in_) == list(frame.columns)
    assert clf.predict_proba(frame).shape == (30, 3)
    with pytest.raises(ValueError, match="feature names"):
        clf.predict(frame[list(reversed(frame.columns))])


def test_same_random_state_gives_same_predictions(tiny_clf):
    x, y = _data(n=60)
    clf = tiny_clf.set_params(max_context_rows=20)  # random subsamples
    first = clf.fit(x, y).predict_proba(x)
    np.testing.assert_array_equal(clone(clf).fit(x, y).predict_proba(x), first)
    assert not np.array_equal(clone(clf).set_params(random_state=1).fit(x, y).predict_proba(x), first)


def test_prediction_of_a_row_does_not_depend_on_the_other_test_rows(tiny_clf):
    x, y = _data()
    clf = tiny_clf.fit(x, y)
    np.testing.assert_allclose(clf.predict_proba(x[5:6]), clf.predict_proba(x)[5:6], rtol=1e-5, atol=1e-6)
    small_chunks = clone(clf).set_params(chunk_size=3).fit(x, y)
    np.testing.assert_allclose(small_chunks.predict_proba(x), clf.predict_proba(x), rtol=1e-5, atol=1e-6)


def test_more_rows_than_the_context_limit_are_subsampled_per_member(tiny_clf):
    x, y = _data(n=60)
    clf = tiny_clf.set_params(max_context_rows=20).fit(x, y)
    assert clf.fitted_.cache.kv[0][0].shape[-2] == 20
    assert clf.predict_proba(x).shape == (60, 2)


def test_more_features_than_the_model_accepts_are_split_over_members(tiny_clf):
    x, y = _data(f=8)
    clf = tiny_clf.fit(x, y)
    assert all(len(s) == 5 for s in clf.feature_subsets_)
    assert len(set().union(*map(set, clf.feature_subsets_))) > 5
    assert clf.predict_proba(x).shape == (40, 2)


def test_members_show_the_model_no_more_features_than_its_training_did(tmp_path):
    torch.manual_seed(0)
    model = PFN(ModelConfig(head="classification", max_classes=TINY_MAX_CLASSES, **TINY))  # takes 5 features
    model.info["train"] = {"max_features": 3}  # but was trained on at most 3
    clf = PFNClassifier(model_path=str(save_checkpoint(model, tmp_path / "trained-on-3")), n_estimators=4,
                        random_state=0, device="cpu").fit(*_data(f=5))
    assert all(len(s) == 3 for s in clf.feature_subsets_)
    assert len(set().union(*map(set, clf.feature_subsets_))) > 3
    assert clf.predict_proba(_data(f=5)[0]).shape == (40, 2)


@pytest.mark.parametrize("estimator", ["clf", "reg"])
@pytest.mark.parametrize("rescale", RESCALINGS.values(), ids=RESCALINGS.keys())
def test_predictions_do_not_depend_on_the_scale_or_offset_of_features(tiny_paths, estimator, rescale):
    x, y = _data(n=50)
    x[:, 2] = np.exp(x[:, 2])
    cls = PFNClassifier if estimator == "clf" else PFNRegressor
    target = y if estimator == "clf" else x[:, 0] + x[:, 1] ** 2
    predict = "predict_proba" if estimator == "clf" else "predict"
    model = cls(model_path=tiny_paths[estimator], random_state=0, device="cpu")
    reference = getattr(clone(model).fit(x[:30], target[:30]), predict)(x[30:])
    out = getattr(model.fit(rescale(x[:30]), target[:30]), predict)(rescale(x[30:]))
    # Float64 preprocessing makes the network's inputs agree to ~1e-7 (X + 1e9) or better; the
    # float32 network turns that into differences of about 1e-6 (shipped models: at most 2e-6).
    np.testing.assert_allclose(out, reference, rtol=0, atol=1e-4 * np.std(target))


@pytest.mark.parametrize("x, y, error, match", [
    (np.zeros((0, 3)), np.zeros(0), ValueError, "0 sample"),
    (np.ones((4, 2)), np.zeros(4), ValueError, "one class"),
    (np.ones((7, 2)), np.arange(7), ValueError, "y has 7 classes but the model supports at most 6"),
    (np.array([[1.0, np.inf], [0.0, 1.0]]), np.array([0, 1]), ValueError, "Input X contains infinity"),
    (np.ones((3, 2)), np.array([0.5, 1.5, 2.5]), ValueError, "Unknown label type"),
    (np.ones((3, 2)), None, ValueError, "requires y"),
], ids=["empty", "one-class", "too-many-classes", "inf", "continuous-y", "no-y"])
def test_classifier_rejects_bad_training_data_with_sklearn_errors(tiny_clf, x, y, error, match):
    with pytest.raises(error, match=match):
        tiny_clf.fit(x, y)


def test_predict_checks_fitted_state_and_feature_count(tiny_clf):
    from sklearn.exceptions import NotFittedError

    x, y = _data()
    with pytest.raises(NotFittedError):
        tiny_clf.predict(x)
    tiny_clf.fit(x, y)
    with pytest.raises(ValueError, match="X has 2 features, but PFNClassifier is expecting 3"):
        tiny_clf.predict(x[:, :2])


@pytest.mark.parametrize("param, value, allowed", [
    ("n_estimators", 0, r"an int in the range \[1, inf\) \(not a bool\)"),
    ("n_estimators", True, r"an int in the range \[1, inf\) \(not a bool\)"),
    ("n_estimators", 2.0, "an int"),
    ("softmax_temperature", 0.0, r"a float in the range \(0.0, inf\) \(not a bool\)"),
    ("softmax_temperature", np.inf, r"a float in the range \(0.0, inf\)"),
    ("softmax_temperature", True, r"a float in the range \(0.0, inf\) \(not a bool\)"),
    ("softmax_temperature", "0.9", "a float"),
    ("softmax_temperature", None, "a float"),
    ("max_context_rows", 1, r"in the range \[10, inf\)"),
    ("max_context_rows", 9, r"in the range \[10, inf\)"),
    ("chunk_size", 1.5, "an int"),
    ("device", 0, "an instance of 'str'"),
    ("model_path", 3, "an instance of 'str'"),
    ("random_state", "seed", "an int in the range"),
])
def test_bad_parameters_are_reported_at_fit_naming_the_parameter(tiny_paths, param, value, allowed):
    x, y = _data()
    for cls, path in ((PFNClassifier, tiny_paths["clf"]), (PFNRegressor, tiny_paths["reg"])):
        model = cls(model_path=path, device="cpu").set_params(**{param: value})  # set_params never raises
        with pytest.raises((ValueError, TypeError), match=f"'{param}' parameter of {cls.__name__} must be .*{allowed}"):
            model.fit(x, y)


def test_the_smallest_context_is_10_rows_and_2_per_class(tiny_clf):
    x, _ = _data(n=60)
    y = np.arange(60) % 6
    with pytest.raises(ValueError, match="max_context_rows=10 leaves fewer than 2 context rows per class for 6"):
        tiny_clf.set_params(max_context_rows=10).fit(x, y)
    clf = tiny_clf.set_params(max_context_rows=12).fit(x, y)
    assert clf.fitted_.cache.kv[0][0].shape[-2] == 12


@pytest.mark.parametrize("device, match", [("cuda", "device='cuda' but torch sees no CUDA GPU"),
                                           ("cuda:0", "device='cuda:0' but torch sees no CUDA GPU"),
                                           ("gpu", "device='gpu' is not a torch device")])
def test_an_unavailable_device_is_reported_naming_the_parameter(tiny_reg, monkeypatch, device, match):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    x, y = _data()
    with pytest.raises(ValueError, match=match):
        tiny_reg.set_params(device=device).fit(x, y)


def test_a_regression_model_is_refused_by_the_classifier(tiny_paths):
    x, y = _data()
    with pytest.raises(ValueError, match="not a tabular model with a 'classification' head"):
        PFNClassifier(model_path=tiny_paths["reg"]).fit(x, y)


# --- regressor contract ----------------------------------------------------------------

def test_regressor_returns_means_quantiles_and_distributions(tiny_reg):
    x, _ = _data()
    reg = tiny_reg.fit(x, x[:, 0])
    mean = reg.predict(x)
    q = reg.predict_quantiles(x, [0.05, 0.5, 0.95])
    assert mean.shape == (40,) and q.shape == (40, 3) and (np.diff(q, axis=1) > 0).all()
    np.testing.assert_allclose(reg.predict(x, output="median"), q[:, 1], rtol=1e-5)
    dist = reg.predict_distribution(x)
    assert dist.batch_shape == (40,)
    np.testing.assert_allclose(dist.mean.numpy(), mean, rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="strictly between 0 and 1"):
        reg.predict_quantiles(x, [0.0, 0.5])


@pytest.mark.parametrize("scale, offset", [(50.0, 1000.0), (1.0, 1e9), (1e-9, 0.0), (1e20, -3e20)])
def test_regressor_predicts_in_the_units_of_y(tiny_reg, scale, offset):
    """Fitting on `offset + scale * y` gives `offset + scale * (predictions for y)`, whatever the magnitudes."""
    x, _ = _data()
    y = x[:, 0] + 0.3 * x[:, 1]
    reference = clone(tiny_reg).fit(x, y)
    reg = tiny_reg.fit(x, offset + scale * y)
    # Target standardisation in float64 is exact to ~1e-16 relative; the offset's rounding is
    # scale-relative 1e-7 for 1e9 (float64 spacing at 1e9 is 1.2e-7 over a spread of about 1).
    atol = 1e-6 * scale
    np.testing.assert_allclose(reg.predict(x), offset + scale * reference.predict(x), rtol=1e-12, atol=atol)
    np.testing.assert_allclose(reg.predict_quantiles(x), offset + scale * reference.predict_quantiles(x),
                               rtol=1e-12, atol=atol)
    y_test = offset + scale * y
    log_prob = reg.predict_distribution(x).log_prob(torch.as_tensor(y_test)).double().numpy()
    reference_log_prob = reference.predict_distribution(x).log_prob(torch.as_tensor(y)).double().numpy()
    assert np.isfinite(log_prob).all()
    np.testing.assert_allclose(log_prob, reference_log_prob - np.log(scale), rtol=1e-4, atol=1e-3)


def test_regressor_predictive_is_the_mixture_of_its_members(tiny_reg):
    x, _ = _data()
    reg = tiny_reg.fit(x, x[:, 0] * 3)
    members = reg._member_log_probs(x).exp()
    assert members.shape == (3, 40, 16)
    torch.testing.assert_close(reg._standardised_distribution(x).probs, members.mean(0))


@pytest.mark.parametrize("estimator", ["tiny_clf", "tiny_reg"])
def test_pd_na_in_a_numeric_column_predicts_as_nan_does(estimator, request):
    x, y = _data(n=20, f=2)
    frames = {}
    for missing in (np.nan, pd.NA):
        frame = pd.DataFrame({"a": pd.Series(list(x[:, 0]), dtype=object), "b": x[:, 1]})
        frame.iloc[[3, 11], 0] = missing
        frames[missing is pd.NA] = frame
    predicted = {na: clone(request.getfixturevalue(estimator)).fit(frames[na], y).predict(frames[na])
                 for na in (False, True)}
    np.testing.assert_array_equal(predicted[True], predicted[False])


def test_regressor_rejects_nonfinite_targets(tiny_reg):
    x, _ = _data()
    y = x[:, 0].copy()
    y[3] = np.nan
    with pytest.raises(ValueError, match="Input y contains NaN"):
        tiny_reg.fit(x, y)


@pytest.mark.parametrize("y", [np.full(40, 7.3), 1e9 + 1e-4 * np.random.default_rng(0).random(40), np.zeros(40)],
                         ids=["constant", "spread-below-1e-12-relative", "zero"])
def test_a_constant_target_is_predicted_exactly(tiny_reg, y):
    x, _ = _data()
    reg = tiny_reg.fit(x, y)
    c = y.mean()
    assert reg.constant_target_
    np.testing.assert_allclose(reg.predict(x), np.full(40, c), rtol=1e-15, atol=0)
    np.testing.assert_allclose(reg.predict_quantiles(x, [0.01, 0.5, 0.99]), np.full((40, 3), c), rtol=1e-15, atol=0)
    dist = reg.predict_distribution(x)
    width = 1e-6 * max(abs(c), 1.0)
    assert (dist.icdf(0.999).double().numpy() - dist.icdf(0.001).double().numpy() < width).all()
    np.testing.assert_allclose(dist.mean.double().numpy(), c, rtol=0, atol=width)


def test_a_single_training_row_predicts_its_target(tiny_reg):
    x, _ = _data()
    reg = tiny_reg.fit(x[:1], [3.0])
    np.testing.assert_array_equal(reg.predict(x), np.full(40, 3.0))
    np.testing.assert_array_equal(reg.predict_quantiles(x, [0.1, 0.9]), np.full((40, 2), 3.0))


def test_a_target_with_spread_above_the_threshold_is_not_constant(tiny_reg):
    x, _ = _data()
    y = 1.0 + 1e-9 * x[:, 0]
    reg = tiny_reg.fit(x, y)
    assert not reg.constant_target_
    assert len(np.unique(reg.predict(x))) == 40


@pytest.mark.parametrize("encoding", ["pad_standardised", "per_feature"])
def test_members_of_a_feature_order_sensitive_model_see_the_features_in_different_orders(tmp_path, encoding):
    torch.manual_seed(0)
    config = {**TINY, "feature_encoding": encoding}
    model = PFN(ModelConfig(head="classification", max_classes=TINY_MAX_CLASSES, **config))
    clf = PFNClassifier(model_path=str(save_checkpoint(model, tmp_path / encoding)), n_estimators=6, random_state=0,
                        device="cpu").fit(*_data(f=4))
    orders = {tuple(s) for s in clf.feature_subsets_}
    assert all(sorted(order) == [0, 1, 2, 3] for order in orders)
    # row tokens read features by position: members shuffle them; per-feature tokens are exactly
    # equivariant to feature order, so a shuffle would only cost time
    assert len(orders) > 1 if encoding == "pad_standardised" else orders == {(0, 1, 2, 3)}


@pytest.mark.parametrize("encoding, accepted", [("pad_standardised", True), ("per_feature", True), ("pad", False)])
def test_estimators_take_the_table_encodings_and_refuse_others(tmp_path, encoding, accepted):
    torch.manual_seed(0)
    config = {**TINY, "feature_encoding": encoding}
    clf = PFN(ModelConfig(head="classification", max_classes=TINY_MAX_CLASSES, **config))
    reg = PFN(ModelConfig(head="bar", n_buckets=16, **config), {"borders": torch.linspace(-3, 3, 17).tolist()})
    frame = _mixed_frame(40)  # strings, categories, booleans, missing values
    labels, target = (frame["num"] > 0).astype(int).to_numpy(), frame["num"].to_numpy() * 3.0 + 1.0
    for model, estimator, y in ((clf, PFNClassifier, labels), (reg, PFNRegressor, target)):
        est = estimator(model_path=str(save_checkpoint(model, tmp_path / f"{encoding}-{model.config.head}")),
                        n_estimators=2, random_state=0, device="cpu")
        if not accepted:
            with pytest.raises(ValueError, match="is not a tabular model"):
                est.fit(frame, y)
            continue
        pred = est.fit(frame, y).predict(frame)
        assert pred.shape == (40,) and np.isfinite(pred.astype(float)).all()


def test_yeo_johnson_matches_scikit_learns_power_transformer_with_missing_values():
    from sklearn.preprocessing import PowerTransformer

    rng = np.random.default_rng(0)
    columns = [rng.normal(size=300), rng.lognormal(size=300), -rng.lognormal(sigma=1.5, size=300),
               rng.exponential(size=300) ** 2, rng.uniform(size=300), rng.standard_t(2, size=300)]
    x = np.stack(columns, axis=1)
    x = (x - x.mean(0)) / x.std(0)
    x[rng.uniform(size=x.shape) < 0.1] = np.nan
    ours, sklearns = YeoJohnson().fit(x), PowerTransformer().fit(x)
    np.testing.assert_allclose(ours.lambdas_, sklearns.lambdas_, atol=1e-5)  # exponents from -1.7 to 3.8
    np.testing.assert_allclose(ours.transform(x), sklearns.transform(x), atol=1e-6)  # NaN where x is NaN
    constant = YeoJohnson().fit(np.c_[np.full(5, 2.0), [np.nan] * 5])
    np.testing.assert_array_equal(constant.lambdas_, [1.0, 1.0])
    np.testing.assert_array_equal(constant.transform(np.array([[2.0, np.nan]])), [[0.0, np.nan]])

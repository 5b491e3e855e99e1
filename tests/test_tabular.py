"""The scikit-learn estimators `PFNClassifier` / `PFNRegressor` and the table encoding.

Contract tests run on tiny untrained checkpoints (fast, independent of the shipped
weights); quality and `check_estimator` tests run on the shipped models.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.base import clone

from pfn import PFNClassifier, PFNRegressor
from pfn.checkpoint import save_checkpoint
from pfn.config import ModelConfig
from pfn.model import PFN
from pfn.tabular_encoding import TableEncoder

TINY = {"feature_encoding": "per_feature", "max_features": 5, "d_model": 16, "n_layers": 1, "n_heads": 2, "d_ff": 32}


@pytest.fixture(scope="module")
def tiny_paths(tmp_path_factory) -> dict[str, str]:
    torch.manual_seed(0)
    root = tmp_path_factory.mktemp("tiny_tabular")
    clf = PFN(ModelConfig(head="classification", max_classes=4, **TINY))
    reg = PFN(ModelConfig(head="bar", n_buckets=16, **TINY), torch.linspace(-3, 3, 17))
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


# --- table encoding --------------------------------------------------------------------

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


# --- classifier contract ---------------------------------------------------------------

def test_classifier_probabilities_are_distributions_over_classes_(tiny_clf):
    x, y = _data()
    labels = np.array(["no", "yes"])[y]
    clf = tiny_clf.fit(x, labels)
    proba = clf.predict_proba(x[:7])
    assert proba.shape == (7, 2) and np.allclose(proba.sum(1), 1) and (proba >= 0).all()
    assert list(clf.classes_) == ["no", "yes"] and clf.n_features_in_ == 3
    assert set(clf.predict(x)) <= {"no", "yes"}
    assert 0 <= clf.score(x, labels) <= 1


def test_classifier_accepts_dataframes_with_strings_categories_and_missing_values(tiny_clf):
    frame = _mixed_frame()
    y = np.arange(30) % 3
    clf = tiny_clf.fit(frame, y)
    assert list(clf.feature_names_in_) == list(frame.columns)
    assert clf.predict_proba(frame).shape == (30, 3)
    with pytest.raises(ValueError, match="feature names"):
        clf.predict(frame[list(reversed(frame.columns))])


def test_same_random_state_gives_same_predictions_and_members_differ(tiny_clf):
    x, y = _data()
    first = tiny_clf.fit(x, y).predict_proba(x)
    np.testing.assert_array_equal(clone(tiny_clf).fit(x, y).predict_proba(x), first)
    assert {t.kind for t in tiny_clf.transforms_} == {"none", "quantile", "power"}


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


@pytest.mark.parametrize("x, y, error, match", [
    (np.zeros((0, 3)), np.zeros(0), ValueError, "0 sample"),
    (np.ones((4, 2)), np.zeros(4), ValueError, "one class"),
    (np.ones((5, 2)), np.arange(5), ValueError, "at most 4"),
    (np.array([[1.0, np.inf], [0.0, 1.0]]), np.array([0, 1]), ValueError, "infinity"),
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


@pytest.mark.parametrize("param, value", [("n_estimators", 0), ("softmax_temperature", 0.0),
                                          ("max_context_rows", -1), ("chunk_size", 1.5)])
def test_bad_parameters_are_reported_at_fit(tiny_clf, param, value):
    x, y = _data()
    with pytest.raises(ValueError, match=param):
        tiny_clf.set_params(**{param: value}).fit(x, y)


def test_a_regression_model_is_refused_by_the_classifier(tiny_paths):
    x, y = _data()
    with pytest.raises(ValueError, match="not a tabular model with a 'classification' head"):
        PFNClassifier(model_path=tiny_paths["reg"]).fit(x, y)


# --- regressor contract ----------------------------------------------------------------

def test_regressor_returns_means_quantiles_and_distributions_in_target_units(tiny_reg):
    x, _ = _data()
    y = 1000.0 + 50.0 * x[:, 0]
    reg = tiny_reg.fit(x, y)
    mean = reg.predict(x)
    assert mean.shape == (40,) and np.all(np.abs(mean - 1000) < 500)
    q = reg.predict_quantiles(x, [0.05, 0.5, 0.95])
    assert q.shape == (40, 3) and (np.diff(q, axis=1) > 0).all()
    np.testing.assert_allclose(reg.predict(x, output="median"), q[:, 1], rtol=1e-5)
    dist = reg.predict_distribution(x)
    assert dist.batch_shape == (40,)
    np.testing.assert_allclose(dist.mean.numpy(), mean, rtol=1e-5)
    with pytest.raises(ValueError, match="strictly between 0 and 1"):
        reg.predict_quantiles(x, [0.0, 0.5])


def test_regressor_predictive_is_the_mixture_of_its_members(tiny_reg):
    x, _ = _data()
    reg = tiny_reg.fit(x, x[:, 0] * 3)
    members = reg._member_log_probs(x).exp()
    assert members.shape == (3, 40, 16)
    torch.testing.assert_close(reg.predict_distribution(x).probs, members.mean(0))


def test_regressor_rejects_nonfinite_targets(tiny_reg):
    x, _ = _data()
    y = x[:, 0].copy()
    y[3] = np.nan
    with pytest.raises(ValueError, match="y"):
        tiny_reg.fit(x, y)


def test_constant_targets_give_a_predictive_centred_on_the_constant(tiny_reg):
    x, _ = _data()
    reg = tiny_reg.fit(x, np.full(40, 7.0))
    assert np.all(np.abs(reg.predict(x) - 7.0) < 5.0)

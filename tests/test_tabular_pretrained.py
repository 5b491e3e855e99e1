"""The shipped tabular models: scikit-learn's estimator checks and quality floors on real data."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.datasets import load_breast_cancer, load_diabetes, load_iris
from sklearn.metrics import r2_score, roc_auc_score
from sklearn.model_selection import train_test_split
from sklearn.utils.estimator_checks import check_estimator

from pfn import PFNClassifier, PFNRegressor
from pfn.checkpoint import read_manifest
from pfn.tabular.estimators import EXPECTED_FAILED_CHECKS

SHIPPED = read_manifest()["models"]
pytestmark = pytest.mark.skipif(not {"tabular-clf", "tabular-reg"} <= set(SHIPPED),
                                reason="pretrained/tabular-clf and tabular-reg are not shipped")

# EXPECTED_FAILED_CHECKS: float32 matrix products give results that differ in the last bits
# (about 1e-7 relative) with the number of rows decoded together; sklearn's subset check
# demands agreement to 1e-7. tests/test_tabular.py checks the same property to 1e-5.
# Quality floors on 50/50 splits (seed 0), set below what the shipped models measured (see the
# closing notes of issues 3 and 11 / benchmarks/results/tabular*.md) and far above chance.
# One member alone must pass check_estimator too (sklearn's check_classifiers_train: accuracy >= 0.83
# on its blobs; the first classifier scored 0.73 alone, the row-token one 1.0).
AUC_FLOOR_BREAST_CANCER = 0.985  # measured 0.9955 (the row-token classifier of issue 11; the first one 0.984)
ACCURACY_FLOOR_IRIS = 0.88  # measured 0.933 (the first classifier 0.84); chance 0.33
R2_FLOOR_DIABETES = 0.4  # measured 0.438 (the row-token regressor of issue 11; the first one 0.42)
R2_FLOOR_LINEAR = 0.97  # measured 0.988 on `_linear_table` (the first regressor 0.934); Ridge 0.992


@pytest.mark.parametrize("estimator", [PFNClassifier(random_state=0, device="cpu"),
                                       PFNClassifier(n_estimators=1, random_state=0, device="cpu"),
                                       PFNRegressor(random_state=0, device="cpu")],
                         ids=["classifier", "classifier-one-member", "regressor"])
def test_estimators_pass_sklearn_check_estimator(estimator):
    check_estimator(estimator, expected_failed_checks=EXPECTED_FAILED_CHECKS)


def _split(x, y, stratify: bool):
    return train_test_split(x, y, test_size=0.5, random_state=0, stratify=y if stratify else None)


def test_classifier_separates_breast_cancer():
    x_train, x_test, y_train, y_test = _split(*load_breast_cancer(return_X_y=True), stratify=True)
    proba = PFNClassifier(random_state=0, device="cpu").fit(x_train, y_train).predict_proba(x_test)
    assert roc_auc_score(y_test, proba[:, 1]) > AUC_FLOOR_BREAST_CANCER


def test_classifier_classifies_iris():
    x_train, x_test, y_train, y_test = _split(*load_iris(return_X_y=True), stratify=True)
    clf = PFNClassifier(random_state=0, device="cpu").fit(x_train, y_train)
    assert clf.score(x_test, y_test) > ACCURACY_FLOOR_IRIS


def test_regressor_explains_diabetes_progression_with_calibrated_intervals():
    x_train, x_test, y_train, y_test = _split(*load_diabetes(return_X_y=True), stratify=False)
    reg = PFNRegressor(random_state=0, device="cpu").fit(x_train, y_train)
    assert r2_score(y_test, reg.predict(x_test)) > R2_FLOOR_DIABETES
    bands = reg.predict_quantiles(x_test, [0.1, 0.9])
    coverage = np.mean((bands[:, 0] <= y_test) & (y_test <= bands[:, 1]))
    assert 0.65 < coverage < 0.95


def _linear_table(n: int = 100, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """`2n` rows of 4 standard normal features, a linear target with noise 0.2 (std 2.3)."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(2 * n, 4))
    return x, x @ np.array([1.0, -2.0, 0.5, 0.0]) + 0.2 * rng.normal(size=2 * n)


RESCALINGS = {"1": lambda x: x, "1e-9": lambda x: x * 1e-9, "1e20": lambda x: x * 1e20,
              "1e300": lambda x: x * 1e300, "+1e9": lambda x: x + 1e9}


def test_regressor_quality_does_not_depend_on_the_scale_of_features():
    x, y = _linear_table()
    r2 = {name: r2_score(y[100:], PFNRegressor(random_state=0, device="cpu").fit(f(x[:100]), y[:100])
                         .predict(f(x[100:])))
          for name, f in RESCALINGS.items()}
    assert min(r2.values()) > R2_FLOOR_LINEAR and max(r2.values()) - min(r2.values()) < 1e-6, r2


def test_classifier_predictions_do_not_depend_on_the_scale_of_features():
    x, y = _linear_table()
    labels = (y > 0).astype(int)
    proba = {name: PFNClassifier(random_state=0, device="cpu").fit(f(x[:100]), labels[:100])
             .predict_proba(f(x[100:])) for name, f in RESCALINGS.items()}
    for name, p in proba.items():
        np.testing.assert_allclose(p, proba["1"], rtol=0, atol=1e-5, err_msg=name)  # measured at most 2e-7
    assert (proba["1"].argmax(1) == labels[100:]).mean() > 0.9


def test_regressor_quality_does_not_depend_on_an_offset_of_the_target():
    x, y = _linear_table()
    reference = PFNRegressor(random_state=0, device="cpu").fit(x[:100], y[:100])
    reg = PFNRegressor(random_state=0, device="cpu").fit(x[:100], y[:100] + 1e9)
    pred = reg.predict(x[100:])
    assert len(np.unique(pred)) == 100
    assert abs(r2_score(y[100:] + 1e9, pred) - r2_score(y[100:], reference.predict(x[100:]))) < 1e-6
    log_prob = reg.predict_distribution(x[100:]).log_prob(torch.as_tensor(y[100:] + 1e9))
    assert torch.isfinite(log_prob).all()


@pytest.mark.parametrize("seed", range(4))
def test_the_predictive_mean_holds_on_a_heavy_tailed_target(seed):
    """Spending grows with a lognormal income, with noise proportional to it (an engel-like table):
    the mean is as good as the median (measured R^2 0.81-0.86 for both). With tails as wide as the
    0 and 1 quantiles of the prior's targets, the mean fell to R^2 -0.4 to 0.86 here."""
    rng = np.random.default_rng(seed)
    income = rng.lognormal(7.0, 0.6, size=(240, 1))
    y = 0.5 * income[:, 0] + 0.1 * income[:, 0] * rng.normal(size=240)
    reg = PFNRegressor(random_state=0, device="cpu").fit(income[:120], y[:120])
    r2_mean = r2_score(y[120:], reg.predict(income[120:]))
    r2_median = r2_score(y[120:], reg.predict(income[120:], output="median"))
    assert r2_mean > 0.75 and r2_mean > r2_median - 0.03, (r2_mean, r2_median)

"""The shipped tabular models: scikit-learn's estimator checks and quality floors on real data."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.datasets import load_breast_cancer, load_diabetes, load_iris
from sklearn.metrics import r2_score, roc_auc_score
from sklearn.model_selection import train_test_split
from sklearn.utils.estimator_checks import check_estimator

from pfn import PFNClassifier, PFNRegressor
from pfn.checkpoint import read_manifest

SHIPPED = read_manifest()["models"]
pytestmark = pytest.mark.skipif(not {"tabular-clf", "tabular-reg"} <= set(SHIPPED),
                                reason="pretrained/tabular-clf and tabular-reg are not shipped")

# Float32 matrix products give results that differ in the last bits (about 1e-7 relative)
# with the number of rows decoded together; sklearn's subset check demands agreement to 1e-7.
# tests/test_tabular.py checks the same property to 1e-5.
# Quality floors on 50/50 splits (seed 0), set below what the shipped models measured (see the
# closing note of issue 3 / benchmarks/results/tabular.md) and far above chance.
AUC_FLOOR_BREAST_CANCER = 0.97  # measured 0.984
ACCURACY_FLOOR_IRIS = 0.75  # measured 0.84; chance 0.33
R2_FLOOR_DIABETES = 0.35  # measured 0.42
SUBSET_REASON = "float32 batched products differ by ~1e-7 relative with the number of rows decoded"


@pytest.mark.parametrize("estimator", [PFNClassifier(random_state=0, device="cpu"),
                                       PFNRegressor(random_state=0, device="cpu")],
                         ids=["classifier", "regressor"])
def test_estimators_pass_sklearn_check_estimator(estimator):
    check_estimator(estimator, expected_failed_checks={"check_methods_subset_invariance": SUBSET_REASON})


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

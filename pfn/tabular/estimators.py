"""`PFNClassifier` and `PFNRegressor`: scikit-learn estimators backed by a tabular PFN.

`fit` does no training: it encodes the table (categories, missing values), prepares
`n_estimators` ensemble members and runs the training rows through the network once (the
context cache). `predict` then decodes the test rows against that cache in chunks, so
memory stays bounded however many rows are predicted.

Members differ in their setting (`pfn.tabular.members`): the preprocessing of the numeric
columns (none, a quantile transform to a normal, a Yeo-Johnson transform; each after a
float64 standardisation with the member's training rows, so that the scale and offset of a
feature change nothing), a reflection of those columns, and for the classifier the order in
which the classes are shown to the network (undone on the output); for a model that reads
features by position (row tokens), the order of the features. Beyond the model's
limits: with more rows than `max_context_rows` each member uses its own random (for the
classifier, stratified) subsample of that many rows as context, and with more features
than the model was trained with (`features_per_member`) each member uses its own random
subset of that many features. More classes than the model's head has raise an error.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin
from sklearn.preprocessing import LabelEncoder
from sklearn.utils import check_random_state, resample
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_array, check_consistent_length, check_is_fitted, column_or_1d, validate_data

from pfn.checkpoint import load
from pfn.layouts import layout_properties
from pfn.model import PFN, FittedPFN
from pfn.riemann import RiemannDistribution
from pfn.tabular.encoding import TableEncoder
from pfn.tabular.members import MemberSetting, member_settings
from pfn.tabular.params import PARAMETER_CONSTRAINTS
from pfn.tabular.preprocessing import NumericTransform, Standardisation
from pfn.training import resolve_device

# For `sklearn.utils.estimator_checks.check_estimator(..., expected_failed_checks=...)`; scikit-learn
# >= 1.6 takes expected failures there rather than from the estimator's tags.
EXPECTED_FAILED_CHECKS = {
    "check_methods_subset_invariance": "float32 matrix products differ in the last bits (about 1e-7 relative) "
                                       "with the number of rows decoded together; the check demands 1e-7",
}
CONSTANT_TARGET_SCALE = 1e-9  # width of the predictive of a constant target, relative to the constant


def features_per_member(model: PFN) -> int:
    """The most features one member shows `model`: its `config.max_features`, or fewer where its
    training (the `train` settings of its last stage, in `model.info`) never showed it more.

    A row-token model takes up to `max_features` columns, but one trained on 1 to 32 reads 64
    columns as out of its prior: on digits (64 features, the 11 classification choosing tables'
    only table beyond 32) members of 32 random features each gave log loss 0.38 against 0.59 with
    all 64 (4 members), ROC AUC 0.995 against 0.992.
    """
    trained = model.info.get("train", {}).get("max_features")
    return min(model.config.max_features, trained) if trained else model.config.max_features


class TabularPFNBase(BaseEstimator):
    """What `PFNClassifier` and `PFNRegressor` share: validation, members, cache, chunked decoding."""

    _parameter_constraints = PARAMETER_CONSTRAINTS
    _default_model = ""
    _head = ""

    def __init__(self, n_estimators: int = 4, softmax_temperature: float = 0.6, device: str = "auto",
                 random_state: int | np.random.RandomState | None = None, model_path: str | None = None,
                 max_context_rows: int = 1024, chunk_size: int = 2048) -> None:
        self.n_estimators = n_estimators
        self.softmax_temperature = softmax_temperature
        self.device = device
        self.random_state = random_state
        self.model_path = model_path
        self.max_context_rows = max_context_rows
        self.chunk_size = chunk_size

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = True
        return tags

    def _load_model(self) -> PFN:
        model = load(self.model_path or self._default_model, device=resolve_device(self.device))
        if model.config.head != self._head or not layout_properties(model.config.feature_encoding).reads_missing:
            raise ValueError(f"{self.model_path!r} is not a tabular model with a {self._head!r} head "
                             f"(it has head {model.config.head!r}, feature_encoding "
                             f"{model.config.feature_encoding!r})")
        return model

    def _validate_x(self, x: Any, reset: bool) -> np.ndarray:
        """Checks `x` (`n x F`) sklearn-style and encodes it to floats with NaN for missing values."""
        checked = check_array(x, dtype=None, ensure_all_finite=False, ensure_min_samples=1)
        validate_data(self, x, skip_check_array=True, reset=reset)
        if checked.dtype.kind == "c":
            raise ValueError("Complex data not supported")
        source = x if hasattr(x, "iloc") else checked
        if reset:
            self.encoder_ = TableEncoder().fit(source)
        return self.encoder_.transform(source)

    def _validate_y(self, x: Any, y: Any) -> np.ndarray:
        if y is None:
            raise ValueError(f"{type(self).__name__} requires y to be passed, but the target y is None.")
        y = column_or_1d(y, warn=True)
        check_consistent_length(x, y)
        return y

    def _prepare_members(self, x: np.ndarray, y: np.ndarray, settings: list[MemberSetting],
                         rng: np.random.RandomState) -> None:
        """Draws the members' feature subsets and context rows, fits their preprocessing, encodes the context.

        Args:
            x: Encoded training table (`n x F`, float64, NaN for missing).
            y: Training targets (`n`): standardised values, or class indices as floats.
            settings: One per member.
            rng: Source of the random choices.
        """
        self.model_ = self._load_model()
        self._check_limits(self.model_)
        n, f = x.shape
        f_used = min(f, features_per_member(self.model_))
        n_used = min(n, self.max_context_rows)
        numeric = ~self.encoder_.categorical
        self.transforms_, self.feature_subsets_, contexts_x, contexts_y = [], [], [], []
        for setting in settings:
            features = np.sort(rng.choice(f, f_used, replace=False)) if f_used < f else np.arange(f)
            if not layout_properties(self.model_.config.feature_encoding).feature_order_invariant:
                features = rng.permutation(features)
            rows = self._context_rows(y, n_used, rng) if n_used < n else np.arange(n)
            transform = NumericTransform(setting.preprocessing, numeric, seed=int(rng.randint(2**31 - 1)),
                                         reflect=setting.reflect).fit(x[rows])
            self.transforms_.append(transform)
            self.feature_subsets_.append(features)
            contexts_x.append(transform.transform(x[rows])[:, features])
            contexts_y.append(self._member_targets(y[rows], setting))
        self.fitted_: FittedPFN = self.model_.fit(np.stack(contexts_x), np.stack(contexts_y), **self._fit_kwargs())

    def _check_limits(self, model: PFN) -> None:
        """Raises if the training data lies beyond what `model` can serve (and no strategy applies)."""

    def _context_rows(self, y: np.ndarray, n_used: int, rng: np.random.RandomState) -> np.ndarray:
        return np.sort(rng.choice(len(y), n_used, replace=False))

    def _member_targets(self, y: np.ndarray, setting: MemberSetting) -> np.ndarray:
        return y

    def _fit_kwargs(self) -> dict[str, Any]:
        return {}

    def _member_log_probs(self, x: Any) -> torch.Tensor:
        """Tempered log-probabilities (`members x M x K`) of the rows of `x` (classes or buckets)."""
        check_is_fitted(self)
        xf = self._validate_x(x, reset=False)
        xq = np.stack([t.transform(xf)[:, s] for t, s in zip(self.transforms_, self.feature_subsets_, strict=True)])
        dist = self.fitted_.predict(xq, chunk_size=self.chunk_size)
        logits = dist.logits if isinstance(dist, torch.distributions.Categorical) else dist.log_probs
        return torch.log_softmax(logits / self.softmax_temperature, dim=-1)


class PFNClassifier(ClassifierMixin, TabularPFNBase):
    """Tabular classifier: in-context inference with a pretrained PFN, no training at fit time.

    Features may have any scale and offset (standardised in float64 before anything else):
    predictions for `X`, `X * 1e-9`, `X * 1e20` and `X + 1e9` agree.

    Args:
        n_estimators: Ensemble members; their log-probabilities are averaged (the normalised
            geometric mean of their probabilities). The first `6 * n_classes` members have
            pairwise different settings (preprocessing, class order, reflection; see
            `pfn.tabular.members`), later ones repeat them.
        softmax_temperature: Divides each member's log-probabilities before renormalising;
            below 1 sharpens them. A finite positive float. The default 0.6 and the
            geometric mean were chosen on the 11 classification choosing tables of
            `benchmarks/tabular_datasets.py` with the shipped model (2 splits each; mean log
            loss 0.583 against 0.593 for the arithmetic mean at its best temperature, 0.6, and
            0.607 at temperature 0.9; ROC AUC within 0.0006 of each other).
        device: "auto" (GPU if there is one), "cpu", "cuda", ... or a `torch.device`.
        random_state: Seed (or `RandomState`) of the members' random choices.
        model_path: A shipped model's name or a checkpoint folder; default "tabular-clf".
        max_context_rows: Training rows a member uses as context (at least 10, and at least
            2 per class); more rows are subsampled per member (stratified).
        chunk_size: Test rows decoded per forward pass (bounds memory).

    Attributes:
        classes_: The class labels (`n_classes`), sorted.
        class_permutations_: Per member, the label (`n_classes` ints) the network saw for
            each class of `classes_`.
        n_features_in_, feature_names_in_: As in scikit-learn.
    """

    _default_model = "tabular-clf"
    _head = "classification"

    def fit(self, X: Any, y: Any) -> PFNClassifier:
        """Encodes the training table `X` (`n x F`) with labels `y` (`n`) as the model's context; returns self."""
        self._validate_params()
        y = self._validate_y(X, y)
        x = self._validate_x(X, reset=True)
        check_classification_targets(y)
        self._label_encoder = LabelEncoder().fit(y)
        self.classes_ = self._label_encoder.classes_
        if len(self.classes_) < 2:
            raise ValueError("Classifier can't train when only one class is present.")
        self.class_permutations_: list[np.ndarray] = []
        self._prepare_members(x, self._label_encoder.transform(y).astype(np.float64),
                              member_settings(self.n_estimators, len(self.classes_)),
                              check_random_state(self.random_state))
        return self

    def _check_limits(self, model: PFN) -> None:
        k = len(self.classes_)
        if k > model.config.max_classes:
            raise ValueError(f"y has {k} classes but the model supports at most {model.config.max_classes}; "
                             "merge rare classes or use one-vs-rest (sklearn.multiclass.OneVsRestClassifier)")
        if self.max_context_rows < 2 * k:
            raise ValueError(f"max_context_rows={self.max_context_rows} leaves fewer than 2 context rows per class "
                             f"for {k} classes; use at least {2 * k}")

    def _context_rows(self, y: np.ndarray, n_used: int, rng: np.random.RandomState) -> np.ndarray:
        rows = resample(np.arange(len(y)), replace=False, n_samples=n_used, stratify=y, random_state=rng)
        return np.sort(rows)

    def _member_targets(self, y: np.ndarray, setting: MemberSetting) -> np.ndarray:
        perm = (np.arange(len(self.classes_)) + setting.class_shift) % len(self.classes_)
        self.class_permutations_.append(perm)
        return perm[y.astype(int)].astype(np.float64)

    def _fit_kwargs(self) -> dict[str, Any]:
        return {"n_classes": len(self.classes_)}

    def predict_proba(self, X: Any) -> np.ndarray:
        """Class probabilities (`n x n_classes`, columns in the order of `classes_`)."""
        log_probs = torch.stack([lp[:, torch.as_tensor(perm, device=lp.device)] for lp, perm
                                 in zip(self._member_log_probs(X), self.class_permutations_, strict=True)])
        return torch.softmax(log_probs.double().mean(0), dim=-1).cpu().numpy()

    def predict(self, X: Any) -> np.ndarray:
        """The most probable class label of each row (`n`)."""
        check_is_fitted(self)
        return self.classes_[np.argmax(self.predict_proba(X), axis=1)]


class PFNRegressor(RegressorMixin, TabularPFNBase):
    """Tabular regressor with a full predictive distribution: in-context inference with a pretrained PFN.

    Targets are standardised in float64 with the training mean and standard deviation, so
    any scale or offset of `y` (`y * 1e-9`, `y + 1e9`) gives the same predictions in its
    units; features are handled as in `PFNClassifier`. The members' Riemann distributions
    share bucket borders, so their average is again a Riemann distribution. `predict`
    returns its mean (or median), `predict_quantiles` quantiles and `predict_distribution`
    the distribution itself, all in the units of `y`.

    A constant target (one training row, or a spread at most 1e-12 of its magnitude) is
    predicted exactly: `predict` and `predict_quantiles` return the constant (the training
    mean), and `predict_distribution` is concentrated at it (width about 1e-9 of its
    magnitude, or 1e-9 for a constant 0).

    Args: as `PFNClassifier`, with `model_path` defaulting to "tabular-reg",
    `softmax_temperature` (default 1.0) applied to the bucket logits and
    `max_context_rows` at least 10; the first 6 members have pairwise different settings.

    Attributes:
        y_loc_, y_scale_: The training mean and standard deviation of `y` (floats).
        constant_target_: Whether `y` was constant.
        n_features_in_, feature_names_in_: As in scikit-learn.
    """

    _default_model = "tabular-reg"
    _head = "bar"

    def __init__(self, n_estimators: int = 4, softmax_temperature: float = 1.0, device: str = "auto",
                 random_state: int | np.random.RandomState | None = None, model_path: str | None = None,
                 max_context_rows: int = 1024, chunk_size: int = 2048) -> None:
        super().__init__(n_estimators=n_estimators, softmax_temperature=softmax_temperature, device=device,
                         random_state=random_state, model_path=model_path, max_context_rows=max_context_rows,
                         chunk_size=chunk_size)

    def fit(self, X: Any, y: Any) -> PFNRegressor:
        """Encodes the training table `X` (`n x F`) with targets `y` (`n`) as the model's context; returns self."""
        self._validate_params()
        y = self._validate_y(X, y)
        x = self._validate_x(X, reset=True)
        y = check_array(y, ensure_2d=False, dtype=np.float64, input_name="y")
        standardisation = Standardisation.fit(y)
        self.y_loc_, self.y_scale_ = float(standardisation.loc), float(standardisation.scale)
        self.constant_target_ = bool(standardisation.constant)
        self._prepare_members(x, standardisation.transform(y), member_settings(self.n_estimators),
                              check_random_state(self.random_state))
        return self

    def _standardised_distribution(self, X: Any) -> RiemannDistribution:
        """The members' mixture (batch shape `n`) for the standardised target."""
        log_probs = torch.logsumexp(self._member_log_probs(X), dim=0) - np.log(self.n_estimators)
        return RiemannDistribution(log_probs, self.model_.head.borders, normalized=True)

    def _in_target_units(self, z: torch.Tensor) -> np.ndarray:
        """Standardised values `z` as float64 numpy in the units of `y` (the constant for a constant target)."""
        z = z.double().cpu().numpy()
        if self.constant_target_:
            return np.full(z.shape, self.y_loc_)
        return self.y_loc_ + self.y_scale_ * z

    def predict_distribution(self, X: Any) -> RiemannDistribution:
        """The predictive distribution of `y` at each row of `X` (batch shape `n`)."""
        scale = self.y_scale_ * (CONSTANT_TARGET_SCALE if self.constant_target_ else 1.0)
        return self._standardised_distribution(X).affine(self.y_loc_, scale)

    def predict(self, X: Any, output: str = "mean") -> np.ndarray:
        """Point predictions (`n`): the predictive `output="mean"` (default) or `"median"`."""
        if output not in ("mean", "median"):
            raise ValueError(f"output must be 'mean' or 'median', got {output!r}")
        dist = self._standardised_distribution(X)
        return self._in_target_units(dist.mean if output == "mean" else dist.icdf(0.5))

    def predict_quantiles(self, X: Any, quantiles: Any = (0.1, 0.5, 0.9)) -> np.ndarray:
        """Predictive quantiles (`n x len(quantiles)`) at levels strictly between 0 and 1."""
        levels = np.asarray(quantiles, dtype=np.float64).reshape(-1)
        if levels.size == 0 or not ((levels > 0) & (levels < 1)).all():
            raise ValueError(f"quantiles must lie strictly between 0 and 1, got {quantiles!r}")
        dist = self._standardised_distribution(X)
        return np.stack([self._in_target_units(dist.icdf(float(q))) for q in levels], axis=1)

"""`PFNClassifier` and `PFNRegressor`: scikit-learn estimators backed by a tabular PFN.

`fit` does no training: it encodes the table (categories, missing values), prepares
`n_estimators` ensemble members and runs the training rows through the network once (the
context cache). `predict` then decodes the test rows against that cache in chunks, so
memory stays bounded however many rows are predicted.

Ensemble members differ in (i) the preprocessing of numeric columns, cycling through
none (the network standardises each feature itself), a quantile transform to a normal and
a Yeo-Johnson power transform; (ii) for the classifier, a random permutation of the class
labels, undone on the output. The network has no feature positions (it is exactly
equivariant to the order of the features), so permuting features would change nothing and
is not done. Beyond the model's limits: with more rows than `max_context_rows` each
member uses its own random (for the classifier, stratified) subsample of that many rows as
context, and with more features than the model accepts each member uses its own random
subset of features. More classes than the model's head has raise an error.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import torch
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin
from sklearn.preprocessing import LabelEncoder, PowerTransformer, QuantileTransformer
from sklearn.utils import check_random_state, resample
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_array, check_consistent_length, check_is_fitted, column_or_1d, validate_data

from pfn.checkpoint import load
from pfn.model import PFN, FittedPFN
from pfn.riemann import RiemannDistribution
from pfn.tabular_encoding import TableEncoder
from pfn.training import resolve_device

PREPROCESSING = ("none", "quantile", "power")


class NumericTransform:
    """One member's preprocessing of the numeric columns (`kind` in `PREPROCESSING`); NaN passes through."""

    def __init__(self, kind: str, numeric: np.ndarray, seed: int) -> None:
        self.kind, self.numeric, self.seed = kind, numeric, seed

    def fit(self, x: np.ndarray) -> NumericTransform:
        self.transformer = None
        if self.kind == "none" or not self.numeric.any():
            return self
        if self.kind == "quantile":
            n_quantiles = max(2, min(1000, x.shape[0]))
            self.transformer = QuantileTransformer(n_quantiles=n_quantiles, output_distribution="normal",
                                                   random_state=self.seed)
        else:
            self.transformer = PowerTransformer(method="yeo-johnson")
        with warnings.catch_warnings(), np.errstate(all="ignore"):
            warnings.simplefilter("ignore")
            self.transformer.fit(x[:, self.numeric])
        return self

    def transform(self, x: np.ndarray) -> np.ndarray:
        """`x` (`n x F`) with its numeric columns transformed; non-finite results become NaN."""
        if self.transformer is None:
            return x
        out = x.copy()
        with warnings.catch_warnings(), np.errstate(all="ignore"):
            warnings.simplefilter("ignore")
            out[:, self.numeric] = self.transformer.transform(x[:, self.numeric])
        out[np.isinf(out)] = np.nan
        return out


class TabularPFNBase(BaseEstimator):
    """What `PFNClassifier` and `PFNRegressor` share: validation, members, cache, chunked decoding."""

    _default_model = ""
    _head = ""

    def __init__(self, n_estimators: int = 4, softmax_temperature: float = 0.9, device: str = "auto",
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

    def _check_params(self) -> None:
        for name in ("n_estimators", "max_context_rows", "chunk_size"):
            value = getattr(self, name)
            if not isinstance(value, (int, np.integer)) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        if not self.softmax_temperature > 0:
            raise ValueError(f"softmax_temperature must be positive, got {self.softmax_temperature!r}")

    def _load_model(self) -> PFN:
        model = load(self.model_path or self._default_model, device=resolve_device(self.device))
        if model.config.head != self._head or model.config.feature_encoding != "per_feature":
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

    def _prepare_members(self, x: np.ndarray, y: np.ndarray) -> None:
        """Draws the members' preprocessing, feature subsets and context rows; encodes the context."""
        self._check_params()
        self.model_ = self._load_model()
        self._check_limits(self.model_)
        rng = check_random_state(self.random_state)
        n, f = x.shape
        f_used = min(f, self.model_.config.max_features)
        n_used = min(n, self.max_context_rows)
        numeric = ~self.encoder_.categorical
        self.transforms_, self.feature_subsets_, contexts_x, contexts_y = [], [], [], []
        for i in range(self.n_estimators):
            features = np.sort(rng.choice(f, f_used, replace=False)) if f_used < f else np.arange(f)
            rows = self._context_rows(y, n_used, rng) if n_used < n else np.arange(n)
            seed = int(rng.randint(2**31 - 1))
            transform = NumericTransform(PREPROCESSING[i % len(PREPROCESSING)], numeric, seed).fit(x[rows])
            self.transforms_.append(transform)
            self.feature_subsets_.append(features)
            contexts_x.append(transform.transform(x[rows])[:, features])
            contexts_y.append(self._member_targets(y[rows], i, rng))
        self.fitted_: FittedPFN = self.model_.fit(np.stack(contexts_x), np.stack(contexts_y), **self._fit_kwargs())

    def _check_limits(self, model: PFN) -> None:
        """Raises if the training data lies beyond what `model` can serve (and no strategy applies)."""

    def _context_rows(self, y: np.ndarray, n_used: int, rng: np.random.RandomState) -> np.ndarray:
        return np.sort(rng.choice(len(y), n_used, replace=False))

    def _member_targets(self, y: np.ndarray, member: int, rng: np.random.RandomState) -> np.ndarray:
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

    Args:
        n_estimators: Ensemble members (different preprocessing, class-label permutations,
            and row or feature subsets beyond the model's limits); their probabilities are averaged.
        softmax_temperature: Divides each member's log-probabilities before renormalising;
            below 1 sharpens them.
        device: "auto" (GPU if there is one), "cpu", "cuda", ...
        random_state: Seed (or `RandomState`) of the members' random choices.
        model_path: A shipped model's name or a checkpoint folder; default "tabular-clf".
        max_context_rows: Training rows a member uses as context; more rows are subsampled
            per member (stratified).
        chunk_size: Test rows decoded per forward pass (bounds memory).

    Attributes:
        classes_: The class labels (`n_classes`), sorted.
        n_features_in_, feature_names_in_: As in scikit-learn.
    """

    _default_model = "tabular-clf"
    _head = "classification"

    def fit(self, X: Any, y: Any) -> PFNClassifier:
        """Encodes the training table as the model's context; returns self."""
        y = self._validate_y(X, y)
        x = self._validate_x(X, reset=True)
        check_classification_targets(y)
        self._label_encoder = LabelEncoder().fit(y)
        self.classes_ = self._label_encoder.classes_
        if len(self.classes_) < 2:
            raise ValueError("Classifier can't train when only one class is present.")
        self.class_permutations_: list[np.ndarray] = []
        self._prepare_members(x, self._label_encoder.transform(y).astype(np.float64))
        return self

    def _check_limits(self, model: PFN) -> None:
        max_classes = model.config.max_classes
        if len(self.classes_) > max_classes:
            raise ValueError(f"y has {len(self.classes_)} classes but the model supports at most {max_classes}; "
                             "merge rare classes or use one-vs-rest (sklearn.multiclass.OneVsRestClassifier)")

    def _context_rows(self, y: np.ndarray, n_used: int, rng: np.random.RandomState) -> np.ndarray:
        rows = resample(np.arange(len(y)), replace=False, n_samples=n_used, stratify=y, random_state=rng)
        return np.sort(rows)

    def _member_targets(self, y: np.ndarray, member: int, rng: np.random.RandomState) -> np.ndarray:
        k = len(self.classes_)
        perm = np.arange(k) if member == 0 else rng.permutation(k)
        self.class_permutations_.append(perm)
        return perm[y.astype(int)].astype(np.float64)

    def _fit_kwargs(self) -> dict[str, Any]:
        return {"n_classes": len(self.classes_)}

    def predict_proba(self, X: Any) -> np.ndarray:
        """Class probabilities (`n x n_classes`, columns in the order of `classes_`)."""
        log_probs = self._member_log_probs(X)
        probs = torch.stack([lp[:, torch.as_tensor(perm, device=lp.device)]
                             for lp, perm in zip(log_probs.exp(), self.class_permutations_, strict=True)])
        mean = probs.mean(0).double().cpu().numpy()
        return mean / mean.sum(axis=1, keepdims=True)

    def predict(self, X: Any) -> np.ndarray:
        """The most probable class label of each row (`n`)."""
        check_is_fitted(self)
        return self.classes_[np.argmax(self.predict_proba(X), axis=1)]


class PFNRegressor(RegressorMixin, TabularPFNBase):
    """Tabular regressor with a full predictive distribution: in-context inference with a pretrained PFN.

    Targets are standardised with the training mean and standard deviation; the members'
    Riemann distributions share bucket borders, so their average is again a Riemann
    distribution. `predict` returns its mean (or median), `predict_quantiles` quantiles and
    `predict_distribution` the distribution itself, all in the units of `y`.

    Args: as `PFNClassifier`, with `model_path` defaulting to "tabular-reg" and
    `softmax_temperature` (default 1.0) applied to the bucket logits.
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
        """Encodes the training table as the model's context; returns self."""
        y = self._validate_y(X, y)
        x = self._validate_x(X, reset=True)
        y = check_array(y, ensure_2d=False, dtype=np.float64, input_name="y")
        self.y_mean_ = float(y.mean())
        std = float(y.std())
        self.y_std_ = std if std > 1e-12 * (1.0 + abs(self.y_mean_)) else 1.0
        self._prepare_members(x, (y - self.y_mean_) / self.y_std_)
        return self

    def predict_distribution(self, X: Any) -> RiemannDistribution:
        """The predictive distribution of `y` at each row of `X` (batch shape `n`)."""
        log_probs = torch.logsumexp(self._member_log_probs(X), dim=0) - np.log(self.n_estimators)
        dist = RiemannDistribution(log_probs, self.model_.head.borders, normalized=True)
        return dist.affine(self.y_mean_, self.y_std_)

    def predict(self, X: Any, output: str = "mean") -> np.ndarray:
        """Point predictions (`n`): the predictive `output="mean"` (default) or `"median"`."""
        if output not in ("mean", "median"):
            raise ValueError(f"output must be 'mean' or 'median', got {output!r}")
        dist = self.predict_distribution(X)
        point = dist.mean if output == "mean" else dist.icdf(0.5)
        return point.double().cpu().numpy()

    def predict_quantiles(self, X: Any, quantiles: Any = (0.1, 0.5, 0.9)) -> np.ndarray:
        """Predictive quantiles (`n x len(quantiles)`) at levels strictly between 0 and 1."""
        levels = np.asarray(quantiles, dtype=np.float64).reshape(-1)
        if levels.size == 0 or not ((levels > 0) & (levels < 1)).all():
            raise ValueError(f"quantiles must lie strictly between 0 and 1, got {quantiles!r}")
        dist = self.predict_distribution(X)
        return np.stack([dist.icdf(float(q)).double().cpu().numpy() for q in levels], axis=1)

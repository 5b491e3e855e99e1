"""PFNClassifier and PFNRegressor against scikit-learn baselines on small tabular datasets.

Tables: from the registry in `tabular_datasets.py` (see its docstring for every table, its
source and the rule that split them), chosen by `--tables`: "reporting" (default; tables
never used to choose anything, the ones to report), "choosing" (the tables to look at while
choosing), "all", or "legacy", the original benchmark's nine tables (scikit-learn's bundled
iris, wine, breast_cancer, digits subsampled to 1000 rows; generated classification,
moons, diabetes, regression, friedman1), all of them choosing tables, kept so that earlier
results stay reproducible. Classification results are also averaged per class-count group
(2, 3 to 5, 6 to 10 classes), where the classification targets are checked again.

Protocol: `--repeats` random 50/50 train/test splits per dataset (stratified for
classification), the same splits for every method. Classification scores come from
`predict_proba` (ROC AUC, one-vs-rest macro for multiclass; accuracy of its argmax; log
loss; ECE of the top-class confidence in 15 equal-width bins); regression scores from
`predict` (RMSE, R^2; the PFN regressor predicts its predictive mean). Times are the wall
time of fit + predict.

Methods: the PFN (`--n-estimators` members, `--device`), scikit-learn baselines with default
hyperparameters (mean imputation everywhere but HGB; standardisation for LogReg / Ridge,
KNN, SVM and GP): logistic regression (max_iter=1000) or ridge regression, k-nearest
neighbours, an RBF SVM (classification: Platt-scaled with `CalibratedClassifierCV(SVC(),
ensemble=False)`, which replaces the deprecated `SVC(probability=True)`), random forest,
HistGradientBoosting, and (unless `--no-gp`) a Gaussian process with fitted kernel
hyperparameters; "HGB tuned", HistGradientBoosting tuned by a small random search, is the
tuned reference and not a default baseline in the targets.

A speed anchor times PFNClassifier against default HistGradientBoostingClassifier on a
1000 x 20 make_classification table (50/50 split, fit + predict_proba, median of 3 runs
each). Torch runs with its default thread count (set OMP_NUM_THREADS to change it).

`--rows-study` instead fits the PFN and logistic / ridge regression on nested subsets of 100,
300 and 1000 training rows (stratified for classification) of every table of the selection
with at least 2000 rows available, scoring each on the same 1000 held-out rows (issue: quality
must not fall as rows are added; no speed anchor).

Writes `benchmarks/results/tabular_<tables>.json` and `.md` (`tabular.*` for `--tables
legacy`, `tabular_rows_<tables>.*` for `--rows-study`; a `_quick` suffix with `--quick`).

    python benchmarks/tabular.py                                # reporting tables, shipped tabular-clf / -reg
    python benchmarks/tabular.py --tables legacy                # the original nine tables (tabular.*)
    python benchmarks/tabular.py --rows-study                   # 100 / 300 / 1000 training rows
    python benchmarks/tabular.py --quick --clf-model runs/tabular-clf --reg-model runs/tabular-reg
"""

from __future__ import annotations

import argparse
import importlib.metadata
import os
import re
import statistics
import sys
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import sklearn
from results_io import machine_record, write_results  # sibling modules: run as `python benchmarks/<name>.py`
from scipy.stats import loguniform, randint
from sklearn.base import BaseEstimator
from sklearn.calibration import CalibratedClassifierCV
from sklearn.ensemble import (
    HistGradientBoostingClassifier,
    HistGradientBoostingRegressor,
    RandomForestClassifier,
    RandomForestRegressor,
)
from sklearn.exceptions import ConvergenceWarning
from sklearn.gaussian_process import GaussianProcessClassifier, GaussianProcessRegressor
from sklearn.gaussian_process.kernels import RBF, ConstantKernel, WhiteKernel
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.metrics import accuracy_score, log_loss, r2_score, roc_auc_score, root_mean_squared_error
from sklearn.model_selection import RandomizedSearchCV, ShuffleSplit, StratifiedShuffleSplit
from sklearn.neighbors import KNeighborsClassifier, KNeighborsRegressor
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import FunctionTransformer, StandardScaler
from sklearn.svm import SVC, SVR
from tabular_datasets import (
    ALL,
    CHOOSING,
    CLASS_GROUPS,
    CLASSIFICATION,
    LEGACY,
    REGRESSION,
    REPORTING,
    SELECTIONS,
    TABLES,
    class_group,
    select,
)
from tqdm import tqdm

import pfn.checkpoint
from pfn import PFNClassifier, PFNRegressor

REPO = Path(__file__).resolve().parent.parent
TEST_SIZE = 0.5
ECE_BINS = 15
ANCHOR_TABLE, ANCHOR_TIMINGS = "classification", 3  # the registry's 1000 x 20 make_classification table
TARGET_AUC_GAP, TARGET_TIME_RATIO = 0.005, 3.0
M_PFN, M_HGB, M_TUNED, M_LOGREG, M_RIDGE = "PFN", "HGB", "HGB tuned", "LogReg", "Ridge"  # names the targets use
_QUICK_CHOOSING, _QUICK_REPORTING = ("iris", "moons", "diabetes"), ("circles", "modechoice", "cancer")
TABLES_NOTE = {LEGACY: "the original benchmark's nine tables, all choosing tables",
               CHOOSING: "the tables used for choosing", REPORTING: "reporting tables, never used to choose",
               ALL: "choosing and reporting tables together"}
QUICK_DATASETS = {LEGACY: _QUICK_CHOOSING, CHOOSING: _QUICK_CHOOSING, REPORTING: _QUICK_REPORTING,
                  ALL: _QUICK_CHOOSING + _QUICK_REPORTING}  # per --tables: the tables of a --quick run
ROWS_STUDY_SIZES, ROWS_STUDY_TEST = (100, 300, 1000), 1000  # nested training sizes; held-out rows
SHIPPED_MODELS = {CLASSIFICATION: "tabular-clf", REGRESSION: "tabular-reg"}  # the estimators' default model_path
METRICS = {  # per task: metric name -> column label in the report
    CLASSIFICATION: {"roc_auc": "ROC AUC", "accuracy": "accuracy", "log_loss": "log loss", "ece": "ECE",
                     "seconds": "time (s)"},
    REGRESSION: {"r2": "R^2", "rmse": "RMSE", "seconds": "time (s)"},
}
HGB_SEARCH_SPACE = {
    "learning_rate": loguniform(0.01, 0.5),
    "max_leaf_nodes": randint(4, 65),
    "min_samples_leaf": randint(2, 41),
    "l2_regularization": loguniform(1e-4, 10.0),
}


# --- datasets ----------------------------------------------------------------------------------
Splits = list[tuple[np.ndarray, np.ndarray]]  # (train, test) row indices, one pair per repeat


@dataclass(frozen=True)
class Dataset:
    """One table: `x` (`n x F` floats), `y` (`n`), its `task` and the `splits` every method shares."""

    name: str
    task: str
    x: np.ndarray
    y: np.ndarray
    splits: Splits

    @property
    def n_classes(self) -> int:
        return len(np.unique(self.y))


def make_splits(task: str, x: np.ndarray, y: np.ndarray, repeats: int, seed: int) -> Splits:
    """`repeats` 50/50 (train, test) index pairs: stratified for classification, plain for regression."""
    splitter_cls = StratifiedShuffleSplit if task == CLASSIFICATION else ShuffleSplit
    splitter = splitter_cls(n_splits=repeats, test_size=TEST_SIZE, random_state=seed)
    return list(splitter.split(x, y))


def load_dataset(name: str, repeats: int, seed: int) -> Dataset:
    """Builds table `name` of the registry (`tabular_datasets.TABLES`) with its shared splits."""
    table = TABLES[name]
    x, y = table.load(seed)
    return Dataset(name, table.task, x, y, make_splits(table.task, x, y, repeats, seed))


# --- methods ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class Method:
    """A named estimator factory (`seed -> unfitted estimator`); `default` marks untuned baselines."""

    name: str
    build: Callable[[int], BaseEstimator]
    default: bool = True


def scaled(estimator: BaseEstimator) -> Pipeline:
    """Mean imputation, standardisation, then `estimator` (for scale-sensitive models)."""
    return make_pipeline(SimpleImputer(), StandardScaler(), estimator)


def imputed(estimator: BaseEstimator) -> Pipeline:
    """Mean imputation, then `estimator`."""
    return make_pipeline(SimpleImputer(), estimator)


def tuned_hgb(task: str, n_iter: int, cv: int, seed: int) -> RandomizedSearchCV:
    """HistGradientBoosting tuned by `n_iter` random candidates from `HGB_SEARCH_SPACE`, `cv`-fold CV.

    Classification selects by one-vs-rest ROC AUC (the headline metric), regression by R^2.
    """
    hgb_cls = HistGradientBoostingClassifier if task == CLASSIFICATION else HistGradientBoostingRegressor
    scoring = "roc_auc_ovr" if task == CLASSIFICATION else "r2"
    return RandomizedSearchCV(hgb_cls(random_state=seed), HGB_SEARCH_SPACE, n_iter=n_iter, cv=cv, scoring=scoring,
                              random_state=seed)


def divide_by_sqrt_features(x: np.ndarray) -> np.ndarray:
    """`x / sqrt(F)`: standardised rows then lie about sqrt(2) apart, where a unit RBF length scale starts well."""
    return x / np.sqrt(x.shape[1])


def gaussian_process(task: str, seed: int) -> Pipeline:
    """GP on standardised inputs scaled by 1 / sqrt(F), kernel hyperparameters fitted by marginal likelihood.

    Classification: constant x RBF kernel (Laplace approximation, one-vs-rest beyond two classes);
    the estimator's default kernel has fixed hyperparameters and is near-uniform in many
    dimensions. Regression: constant x RBF plus a white-noise kernel, `normalize_y=True`.
    """
    if task == CLASSIFICATION:
        gp = GaussianProcessClassifier(ConstantKernel() * RBF(), random_state=seed)
    else:
        gp = GaussianProcessRegressor(ConstantKernel() * RBF() + WhiteKernel(), normalize_y=True)
    return make_pipeline(SimpleImputer(), StandardScaler(), FunctionTransformer(divide_by_sqrt_features), gp)


def build_methods(task: str, args: argparse.Namespace) -> list[Method]:
    """The PFN, the default baselines and the tuned HGB (GP baselines only with `args.gp`) for `task`."""
    clf = task == CLASSIFICATION

    def pick(for_classification: Any, for_regression: Any) -> Any:
        return for_classification if clf else for_regression

    pfn_cls, model_path = pick((PFNClassifier, args.clf_model), (PFNRegressor, args.reg_model))
    methods = [
        Method(M_PFN, lambda seed: pfn_cls(n_estimators=args.n_estimators, model_path=model_path,
                                           device=args.device, random_state=seed), default=False),
        Method(pick(M_LOGREG, M_RIDGE), lambda seed: scaled(pick(LogisticRegression(max_iter=1000), Ridge()))),
        Method("KNN", lambda seed: scaled(pick(KNeighborsClassifier(), KNeighborsRegressor()))),
        Method("SVM", lambda seed: scaled(pick(CalibratedClassifierCV(SVC(random_state=seed), ensemble=False),
                                               SVR()))),
        Method("RF", lambda seed: imputed(pick(RandomForestClassifier(random_state=seed),
                                               RandomForestRegressor(random_state=seed)))),
        Method(M_HGB, lambda seed: pick(HistGradientBoostingClassifier(random_state=seed),
                                        HistGradientBoostingRegressor(random_state=seed))),
        Method(M_TUNED, partial(tuned_hgb, task, args.search_iter, args.search_cv), default=False),
    ]
    if args.gp:
        methods.append(Method("GP", partial(gaussian_process, task)))
    return methods


# --- scoring ---------------------------------------------------------------------------------
def expected_calibration_error(y: np.ndarray, proba: np.ndarray, classes: np.ndarray, n_bins: int = ECE_BINS) -> float:
    """ECE of the top-class confidence: bin-weighted |accuracy - confidence| over `n_bins` bins (lo, hi] on [0, 1]."""
    confidence = proba.max(axis=1)
    correct = classes[proba.argmax(axis=1)] == y
    bins = np.clip(np.ceil(confidence * n_bins).astype(int) - 1, 0, n_bins - 1)
    ece = 0.0
    for b in np.unique(bins):
        in_bin = bins == b
        ece += in_bin.mean() * abs(correct[in_bin].mean() - confidence[in_bin].mean())
    return float(ece)


def classification_scores(y: np.ndarray, proba: np.ndarray, classes: np.ndarray) -> dict[str, float]:
    """ROC AUC (one-vs-rest macro beyond two classes), accuracy, log loss and ECE of `proba` (`n x K`).

    Rows are renormalised first (float32 outputs can miss sklearn's sum-to-one tolerance);
    `log_loss` clips probabilities away from 0 and 1 itself.
    """
    proba = np.asarray(proba, dtype=np.float64)
    proba = proba / proba.sum(axis=1, keepdims=True)
    if len(classes) == 2:
        auc = roc_auc_score(y, proba[:, 1])
    else:
        auc = roc_auc_score(y, proba, multi_class="ovr", average="macro", labels=classes)
    return {"roc_auc": float(auc), "accuracy": float(accuracy_score(y, classes[proba.argmax(axis=1)])),
            "log_loss": float(log_loss(y, proba, labels=classes)),
            "ece": expected_calibration_error(y, proba, classes)}


def regression_scores(y: np.ndarray, prediction: np.ndarray) -> dict[str, float]:
    """RMSE and R^2 of point predictions."""
    return {"rmse": float(root_mean_squared_error(y, prediction)), "r2": float(r2_score(y, prediction))}


def fit_predict(estimator: BaseEstimator, task: str, x_train: np.ndarray, y_train: np.ndarray,
                x_test: np.ndarray) -> tuple[np.ndarray, float]:
    """Fits `estimator`, predicts the test rows (`predict_proba` or `predict`); returns them and the wall time."""
    start = time.perf_counter()
    estimator.fit(x_train, y_train)
    prediction = estimator.predict_proba(x_test) if task == CLASSIFICATION else estimator.predict(x_test)
    return prediction, time.perf_counter() - start


def evaluate(method: Method, data: Dataset, repeat: int, seed: int) -> dict[str, float]:
    """Scores of `method` on split `repeat` of `data`, plus `seconds` (fit + predict)."""
    train, test = data.splits[repeat]
    estimator = method.build(seed + repeat)
    prediction, seconds = fit_predict(estimator, data.task, data.x[train], data.y[train], data.x[test])
    if data.task == CLASSIFICATION:
        scores = classification_scores(data.y[test], prediction, estimator.classes_)
    else:
        scores = regression_scores(data.y[test], prediction)
    return {**scores, "seconds": seconds}


Runs = dict[str, dict[str, list[dict[str, float]]]]  # dataset -> method -> per-repeat scores


def run_task(datasets: list[Dataset], methods: list[Method], seed: int) -> Runs:
    """Every method on every split of every dataset (all of one task)."""
    runs: Runs = {}
    with tqdm(total=sum(len(d.splits) for d in datasets) * len(methods), desc=datasets[0].task) as bar:
        for data in datasets:
            runs[data.name] = {}
            for method in methods:
                bar.set_postfix_str(f"{data.name} / {method.name}")
                runs[data.name][method.name] = [evaluate(method, data, r, seed) for r in range(len(data.splits))]
                bar.update(len(data.splits))
    return runs


# --- speed anchor ----------------------------------------------------------------------------
def speed_anchor(args: argparse.Namespace) -> dict[str, Any]:
    """Median fit + predict_proba time of PFNClassifier and default HGB on a 1000 x 20 table, and their ratio."""
    x, y = TABLES[ANCHOR_TABLE].load(args.seed)
    train, test = make_splits(CLASSIFICATION, x, y, 1, args.seed)[0]
    methods = {m.name: m for m in build_methods(CLASSIFICATION, args) if m.name in (M_PFN, M_HGB)}
    seconds = {name: [fit_predict(m.build(args.seed), CLASSIFICATION, x[train], y[train], x[test])[1]
                      for _ in range(ANCHOR_TIMINGS)] for name, m in methods.items()}
    median = {name: statistics.median(s) for name, s in seconds.items()}
    return {"rows": x.shape[0], "features": x.shape[1], "timings": ANCHOR_TIMINGS, "seconds": seconds,
            "pfn_s": median[M_PFN], "hgb_s": median[M_HGB], "ratio": median[M_PFN] / median[M_HGB]}


# --- summaries -------------------------------------------------------------------------------
def dataset_rows(runs: Runs, task: str) -> list[dict[str, Any]]:
    """One row per dataset and method: `<metric>_mean` and `<metric>_std` (over repeats) of the task's metrics."""
    rows = []
    for dataset, by_method in runs.items():
        for method, scores in by_method.items():
            row: dict[str, Any] = {"dataset": dataset, "method": method, "repeats": len(scores)}
            for metric in METRICS[task]:
                values = np.array([s[metric] for s in scores])
                row[f"{metric}_mean"], row[f"{metric}_std"] = float(values.mean()), float(values.std())
            rows.append(row)
    return rows


def overall_rows(rows: list[dict[str, Any]], task: str) -> list[dict[str, Any]]:
    """One row per method: each metric's per-dataset means averaged over the datasets."""
    methods = list(dict.fromkeys(r["method"] for r in rows))
    overall = []
    for method in methods:
        mine = [r for r in rows if r["method"] == method]
        overall.append({"method": method, "datasets": len(mine),
                        **{m: float(np.mean([r[f"{m}_mean"] for r in mine])) for m in METRICS[task]}})
    return overall


def class_group_rows(rows: list[dict[str, Any]], datasets: list[Dataset]) -> dict[str, list[dict[str, Any]]]:
    """Per class-count group ("2", "3-5", "6-10") that has datasets: `overall_rows` of its classification `rows`."""
    group = {d.name: class_group(d.n_classes) for d in datasets if d.task == CLASSIFICATION}
    by_group = {g: [r for r in rows if group[r["dataset"]] == g] for g in CLASS_GROUPS}
    return {g: overall_rows(mine, CLASSIFICATION) for g, mine in by_group.items() if mine}


def best_of(overall: list[dict[str, Any]], metric: str, names: list[str], higher: bool) -> dict[str, Any]:
    """The row among methods `names` with the best `metric`."""
    candidates = [r for r in overall if r["method"] in names]
    return (max if higher else min)(candidates, key=lambda r: r[metric])


def classification_targets(overall: list[dict[str, Any]], defaults: list[str], where: str = "") -> list[dict[str, Any]]:
    """The two classification targets (ROC AUC, log loss) on `overall` rows; `where` names the tables in the text."""
    rows = {r["method"]: r for r in overall}
    ours, tuned = rows[M_PFN], rows[M_TUNED]
    best_auc = best_of(overall, "roc_auc", defaults, higher=True)
    best_ll = best_of(overall, "log_loss", [m for m in rows if m != M_PFN], higher=False)
    return [
        {"target": f"PFNClassifier mean ROC AUC{where} >= best default baseline's and >= tuned HGB's - "
                   f"{TARGET_AUC_GAP}",
         "value": f"{ours['roc_auc']:.4f} vs {best_auc['roc_auc']:.4f} ({best_auc['method']}) and "
                  f"{tuned['roc_auc']:.4f} ({M_TUNED})",
         "met": ours["roc_auc"] >= best_auc["roc_auc"] and ours["roc_auc"] >= tuned["roc_auc"] - TARGET_AUC_GAP},
        {"target": f"PFNClassifier mean log loss{where} < every baseline's",
         "value": f"{ours['log_loss']:.4f} vs {best_ll['log_loss']:.4f} ({best_ll['method']})",
         "met": ours["log_loss"] < best_ll["log_loss"]},
    ]


def evaluate_targets(overall: dict[str, list[dict[str, Any]]], defaults: dict[str, list[str]],
                     anchor: dict[str, Any], groups: dict[str, list[dict[str, Any]]]) -> list[dict[str, Any]]:
    """The issue's targets, each as `{"target", "value", "met"}` (a task that was not run is skipped).

    Args:
        overall: per task, the `overall_rows`.
        defaults: per task, the names of the default (untuned) baselines that ran.
        anchor: the `speed_anchor` result.
        groups: per class-count group, the `overall_rows` of its classification tables (`class_group_rows`).
    """
    targets = []
    if overall.get(CLASSIFICATION):
        targets += classification_targets(overall[CLASSIFICATION], defaults[CLASSIFICATION])
        for group, rows in groups.items():
            targets += classification_targets(rows, defaults[CLASSIFICATION], f" on {group}-class tables")
    if overall.get(REGRESSION):
        ours = next(r for r in overall[REGRESSION] if r["method"] == M_PFN)
        best_r2 = best_of(overall[REGRESSION], "r2", defaults[REGRESSION], higher=True)
        targets.append({"target": "PFNRegressor mean R^2 >= best default baseline's",
                        "value": f"{ours['r2']:.4f} vs {best_r2['r2']:.4f} ({best_r2['method']})",
                        "met": ours["r2"] >= best_r2["r2"]})
    targets.append({"target": f"PFNClassifier fit + predict on {anchor['rows']}x{anchor['features']} <= "
                              f"{TARGET_TIME_RATIO:g}x default HGB's",
                    "value": f"{anchor['ratio']:.2f}x ({anchor['pfn_s']:.2f} s vs {anchor['hgb_s']:.2f} s)",
                    "met": anchor["ratio"] <= TARGET_TIME_RATIO})
    return targets


# --- report ----------------------------------------------------------------------------------
def markdown_table(header: list[str], rows: list[list[str]]) -> list[str]:
    """Lines of a markdown table."""
    return [f"| {' | '.join(header)} |", f"|{'---|' * len(header)}", *(f"| {' | '.join(r)} |" for r in rows)]


def task_section(task: str, rows: list[dict[str, Any]], overall: list[dict[str, Any]],
                 groups: dict[str, list[dict[str, Any]]] | None = None) -> list[str]:
    """Markdown of one task: the averages over datasets (and per class-count group in `groups`), then per dataset
    mean ± std over repeats."""
    metrics = list(METRICS[task])
    labels = list(METRICS[task].values())
    n_datasets = overall[0]["datasets"] if overall else 0
    lines = [f"## {task.capitalize()}", "",
             f"Mean over {plural(n_datasets, 'dataset')} of each method's per-dataset mean.", ""]
    lines += markdown_table(["method", *labels], [[r["method"], *(f"{r[m]:.4f}" for m in metrics)] for r in overall])
    if groups:
        lines += ["", "Per class-count group: the same means over the group's datasets.", ""]
        lines += markdown_table(["classes", "datasets", "method", *labels],
                                [[group, str(r["datasets"]), r["method"], *(f"{r[m]:.4f}" for m in metrics)]
                                 for group, group_rows in groups.items() for r in group_rows])
    lines += ["", "Per dataset: mean ± std over the repeats.", ""]
    lines += markdown_table(["dataset", "method", *labels],
                            [[r["dataset"], r["method"], *(f"{r[m + '_mean']:.4f} ± {r[m + '_std']:.4f}"
                                                           for m in metrics)] for r in rows])
    return lines + [""]


def markdown_report(record: dict[str, Any]) -> str:
    """The results as markdown: per task the tables, then the speed anchor, the targets and the settings."""
    anchor, targets, settings = record["speed_anchor"], record["targets"], record["settings"]
    lines = ["# Tabular PFN vs scikit-learn baselines", "",
             f"Tables: {settings['tables']} ({TABLES_NOTE[settings['tables']]}; roles and sources in the settings "
             "below and in `benchmarks/tabular_datasets.py`).", "",
             f"{plural(settings['repeats'], 'random 50/50 split')} per dataset (stratified for classification), "
             "the same for every method; times are fit + predict wall times.", ""]
    for task, overall in record["summary"].items():
        groups = record["by_class_group"] if task == CLASSIFICATION else None
        lines += task_section(task, record["per_dataset"][task], overall, groups)
    lines += ["## Speed anchor", "",
              f"fit + predict_proba on a {anchor['rows']}x{anchor['features']} make_classification table (50/50 "
              f"split), median of {anchor['timings']}: PFNClassifier {anchor['pfn_s']:.3f} s, default HGB "
              f"{anchor['hgb_s']:.3f} s, ratio {anchor['ratio']:.2f}x.", "", "## Targets", ""]
    lines += markdown_table(["target", "value", "met"],
                            [[t["target"], t["value"], "yes" if t["met"] else "NO"] for t in targets])
    lines += ["", "## Settings", ""]
    lines += [f"- {key}: {value}" for key, value in settings.items()]
    return "\n".join(lines) + "\n"


def describe_search_space() -> str:
    """`HGB_SEARCH_SPACE` as text, e.g. "learning_rate ~ loguniform(0.01, 0.5)"."""
    return ", ".join(f"{name} ~ {dist.dist.name}{dist.args}" for name, dist in HGB_SEARCH_SPACE.items())


def describe_estimator(estimator: BaseEstimator) -> str:
    """An estimator as scikit-learn prints it (non-default parameters only), on one line."""
    if isinstance(estimator, RandomizedSearchCV):
        return (f"RandomizedSearchCV({describe_estimator(estimator.estimator)}, n_iter={estimator.n_iter}, "
                f"cv={estimator.cv}, scoring={estimator.scoring!r}) over {describe_search_space()}")
    return re.sub(r" at 0x[0-9a-f]+", "", " ".join(repr(estimator).split()))  # no memory addresses


def plural(count: int, noun: str) -> str:
    """`count` and `noun`, with an "s" unless `count` is 1."""
    return f"{count} {noun}{'' if count == 1 else 's'}"


def model_record(model_path: str | None, task: str) -> dict[str, Any]:
    """The PFN model of `task` (`model_path`, or the estimator's shipped default) and its recorded training steps."""
    name = model_path or SHIPPED_MODELS[task]
    steps = pfn.checkpoint.load(name).info.get("record", {}).get("steps")
    return {"model": name if model_path else f"{name} (shipped)", "training_steps": steps}


def describe_data(data: Dataset) -> str:
    """Rows x features (and classes for classification), role and source, e.g. "210x18, 4 classes; reporting; ..."."""
    table = TABLES[data.name]
    shape = f"{data.x.shape[0]}x{data.x.shape[1]}"
    shape = f"{shape}, {data.n_classes} classes" if data.task == CLASSIFICATION else shape
    return f"{shape}; {table.role}; {table.source}: {table.about}"


def installed_version(package: str) -> str | None:
    """The installed version of `package`, or None when it is not installed."""
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return None


def settings_record(args: argparse.Namespace, datasets: list[Dataset], methods: dict[str, list[Method]],
                    ) -> dict[str, Any]:
    """Everything needed to reproduce and interpret the run (command, data, methods, hardware, versions)."""
    return {
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "quick": args.quick, "tables": args.tables, "repeats": args.repeats, "seed": args.seed,
        "datasets": {d.name: describe_data(d) for d in datasets},
        "pfn_models": {task: model_record(args.clf_model if task == CLASSIFICATION else args.reg_model, task)
                       for task in methods},
        "pfn": f"n_estimators={args.n_estimators}, device={args.device}, other parameters default",
        "hgb_search": f"RandomizedSearchCV, {args.search_iter} candidates, {args.search_cv}-fold CV, "
                      f"{describe_search_space()}; classification selects by ROC AUC (ovr), regression by R^2",
        "methods": {task: {m.name: describe_estimator(m.build(args.seed)) for m in ms} for task, ms in methods.items()},
        "default_baselines": {task: [m.name for m in ms if m.default] for task, ms in methods.items()},
        "scores": f"classification from predict_proba (rows renormalised; accuracy of its argmax; ECE of the top-class "
                  f"confidence, {ECE_BINS} equal-width bins); regression from predict",
        "machine": machine_record(sklearn=sklearn.__version__, numpy=np.__version__,
                                  statsmodels=installed_version("statsmodels")),
        "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
    }


# --- training-rows study ---------------------------------------------------------------------
ROWS_STUDY_GOAL = {CLASSIFICATION: ("roc_auc", "log_loss"), REGRESSION: ("r2", "rmse")}  # must not fall / rise


def nested_order(y: np.ndarray, task: str, rng: np.random.RandomState) -> np.ndarray:
    """A random order of the rows (indices into `y`); for classification every prefix is close to stratified."""
    perm = rng.permutation(len(y))
    if task == REGRESSION:
        return perm
    key = np.empty(len(y))
    for k in np.unique(y):
        rows = perm[y[perm] == k]  # class k in random order, spread evenly over [0, 1)
        key[rows] = (np.arange(len(rows)) + rng.uniform()) / len(rows)
    return np.argsort(key, kind="stable")


def rows_study_datasets(args: argparse.Namespace) -> list[Dataset]:
    """The tables of `args.datasets` with max(sizes) + `ROWS_STUDY_TEST` rows, each with its (pool, test) splits."""
    needed = max(ROWS_STUDY_SIZES) + ROWS_STUDY_TEST
    datasets = []
    for name in args.datasets:
        task = TABLES[name].task
        x, y = TABLES[name].load(args.seed, max_rows=needed)
        if len(y) == needed:
            splitter_cls = StratifiedShuffleSplit if task == CLASSIFICATION else ShuffleSplit
            splitter = splitter_cls(args.repeats, test_size=ROWS_STUDY_TEST, random_state=args.seed)
            datasets.append(Dataset(name, task, x, y, list(splitter.split(x, y))))
    if not datasets:
        raise SystemExit(f"no table of {args.datasets} has {needed} rows for the rows study")
    return datasets


def rows_study(args: argparse.Namespace) -> dict[str, Any]:
    """The PFN and LogReg / Ridge on nested training subsets of `ROWS_STUDY_SIZES` rows; returns the JSON record.

    Every table of `args.datasets` with at least max(sizes) + `ROWS_STUDY_TEST` rows takes part; each repeat
    draws a pool of max(sizes) training rows and `ROWS_STUDY_TEST` test rows (stratified for classification),
    and every size trains on a prefix of one order of the pool, so the smaller sets are subsets of the larger.
    """
    datasets = rows_study_datasets(args)
    methods = {task: [m for m in build_methods(task, args) if m.name in (M_PFN, M_LOGREG, M_RIDGE)]
               for task in {d.task for d in datasets}}
    runs: dict[str, Runs] = {str(n): {d.name: {m.name: [] for m in methods[d.task]} for d in datasets}
                             for n in ROWS_STUDY_SIZES}  # training rows -> dataset -> method -> per-repeat scores
    total = sum(len(methods[d.task]) for d in datasets) * args.repeats * len(ROWS_STUDY_SIZES)
    with warnings.catch_warnings(), tqdm(total=total, desc="rows study") as bar:
        warnings.simplefilter("ignore", ConvergenceWarning)
        for data in datasets:
            for r, (pool, test) in enumerate(data.splits):
                order = pool[nested_order(data.y[pool], data.task, np.random.RandomState(args.seed + r))]
                for n in ROWS_STUDY_SIZES:
                    for method in methods[data.task]:
                        bar.set_postfix_str(f"{data.name} / {n} / {method.name}")
                        split = Dataset(data.name, data.task, data.x, data.y, [(order[:n], test)])
                        runs[str(n)][data.name][method.name].append(evaluate(method, split, 0, args.seed + r))
                        bar.update()
    rows = [{"train_rows": int(n), "task": data.task, **row} for n, by_data in runs.items() for data in datasets
            for row in dataset_rows({data.name: by_data[data.name]}, data.task)]
    targets = []
    for data in datasets:
        mine = sorted((r for r in rows if r["dataset"] == data.name and r["method"] == M_PFN),
                      key=lambda r: r["train_rows"])
        up, down = ROWS_STUDY_GOAL[data.task]
        rising, falling = [r[f"{up}_mean"] for r in mine], [r[f"{down}_mean"] for r in mine]
        labels = METRICS[data.task]
        targets.append({"target": f"PFN on {data.name}: {labels[up]} does not fall and {labels[down]} does not rise "
                                  f"from {' to '.join(map(str, ROWS_STUDY_SIZES))} training rows",
                        "value": f"{labels[up]} {' / '.join(f'{v:.4f}' for v in rising)}, "
                                 f"{labels[down]} {' / '.join(f'{v:.4f}' for v in falling)}",
                        "met": bool(np.all(np.diff(rising) >= 0) and np.all(np.diff(falling) <= 0))})
    settings = settings_record(args, datasets, methods)
    return {"per_dataset": rows, "targets": targets, "settings": settings, "per_repeat": runs}


def rows_study_report(record: dict[str, Any]) -> str:
    """The rows study as markdown: per task, table, method and training size the scores, then targets and settings."""
    settings = record["settings"]
    lines = ["# Tabular PFN: test scores against training rows", "",
             f"Tables: {settings['tables']} ({TABLES_NOTE[settings['tables']]}), those with at least "
             f"{max(ROWS_STUDY_SIZES) + ROWS_STUDY_TEST} rows. {plural(settings['repeats'], 'repeat')}: a pool of "
             f"{max(ROWS_STUDY_SIZES)} training rows and {ROWS_STUDY_TEST} test rows (stratified for classification); "
             f"the training sets ({', '.join(map(str, ROWS_STUDY_SIZES))} rows) are nested subsets of the pool "
             "(stratified for classification), every one scored on the same test rows. Mean ± std over the repeats."]
    for task in (CLASSIFICATION, REGRESSION):
        rows = sorted((r for r in record["per_dataset"] if r["task"] == task),
                      key=lambda r: (r["dataset"], r["method"], r["train_rows"]))
        if rows:
            metrics = METRICS[task]
            lines += ["", f"## {task.capitalize()}", ""]
            lines += markdown_table(["dataset", "method", "training rows", *metrics.values()],
                                    [[r["dataset"], r["method"], str(r["train_rows"]),
                                      *(f"{r[m + '_mean']:.4f} ± {r[m + '_std']:.4f}" for m in metrics)]
                                     for r in rows])
    lines += ["", "## Targets", ""]
    lines += markdown_table(["target", "value", "met"],
                            [[t["target"], t["value"], "yes" if t["met"] else "NO"] for t in record["targets"]])
    lines += ["", "## Settings", ""]
    lines += [f"- {key}: {value}" for key, value in settings.items()]
    return "\n".join(lines) + "\n"


# --- main ------------------------------------------------------------------------------------
def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Parses the command line; `--quick` fills unset options with a smoke run's settings."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--clf-model", help="PFNClassifier model: shipped name or checkpoint folder (default: shipped)")
    p.add_argument("--reg-model", help="PFNRegressor model: shipped name or checkpoint folder (default: shipped)")
    p.add_argument("--n-estimators", type=int, default=4, help="PFN ensemble members (default 4)")
    p.add_argument("--device", default="cpu", help="PFN device: cpu, cuda, auto, ... (default cpu)")
    p.add_argument("--tables", choices=SELECTIONS, default=REPORTING,
                   help="table set of tabular_datasets.py: reporting (default), choosing, all, or legacy (the "
                        "original nine; writes results/tabular.*)")
    p.add_argument("--datasets", nargs="+", choices=list(TABLES), metavar="NAME",
                   help="tables of the --tables set to run (default all of them; with --quick: "
                        + "; ".join(f"{k}: {' '.join(v)}" for k, v in QUICK_DATASETS.items()) + ")")
    p.add_argument("--rows-study", action="store_true",
                   help=f"train on {'/'.join(map(str, ROWS_STUDY_SIZES))} rows instead (PFN and LogReg / Ridge)")
    p.add_argument("--repeats", type=int, help="50/50 splits per dataset (default 5; 1 with --quick)")
    p.add_argument("--search-iter", type=int, help="tuned HGB: random candidates (default 10; 2 with --quick)")
    p.add_argument("--search-cv", type=int, help="tuned HGB: CV folds (default 3; 2 with --quick)")
    p.add_argument("--gp", action=argparse.BooleanOptionalAction,
                   help="run the Gaussian-process baselines (default yes; no with --quick)")
    p.add_argument("--seed", type=int, default=0, help="seed of the generated data, subsamples, splits and estimators")
    p.add_argument("--quick", action="store_true", help="a smoke run (< 1 min); writes results/<name>_quick.*")
    args = p.parse_args(argv)
    selection = [t.name for t in select(args.tables)]
    quick_datasets = selection if args.rows_study else list(QUICK_DATASETS[args.tables])
    defaults = {"datasets": (selection, quick_datasets), "repeats": (5, 1), "search_iter": (10, 2),
                "search_cv": (3, 2), "gp": (True, False)}
    for name, (full, quick) in defaults.items():
        if getattr(args, name) is None:
            setattr(args, name, quick if args.quick else full)
    if outside := [name for name in args.datasets if name not in selection]:
        p.error(f"--datasets {' '.join(outside)}: not in --tables {args.tables}")
    for name in ("n_estimators", "repeats", "search_iter"):
        if getattr(args, name) < 1:
            p.error(f"--{name.replace('_', '-')} must be at least 1")
    if args.search_cv < 2:
        p.error("--search-cv must be at least 2")
    return args


def run_benchmark(args: argparse.Namespace) -> dict[str, Any]:
    """Runs every method on every dataset and the speed anchor; returns the JSON record (without the report)."""
    datasets = [load_dataset(name, args.repeats, args.seed) for name in args.datasets]
    methods, runs, rows, summary, groups = {}, {}, {}, {}, {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)  # default-parameter baselines may not converge
        for task in (CLASSIFICATION, REGRESSION):
            task_data = [d for d in datasets if d.task == task]
            if task_data:
                methods[task] = build_methods(task, args)
                runs[task] = run_task(task_data, methods[task], args.seed)
                rows[task] = dataset_rows(runs[task], task)
                summary[task] = overall_rows(rows[task], task)
        anchor = speed_anchor(args)
    if CLASSIFICATION in rows:
        groups = class_group_rows(rows[CLASSIFICATION], datasets)
    settings = settings_record(args, datasets, methods)
    targets = evaluate_targets(summary, settings["default_baselines"], anchor, groups)
    return {"summary": summary, "by_class_group": groups, "per_dataset": rows, "speed_anchor": anchor,
            "targets": targets, "settings": settings, "per_repeat": runs}


def results_stem(args: argparse.Namespace) -> str:
    """The results' file stem: tabular (legacy), tabular_<tables> or tabular_rows_<tables>, + "_quick"."""
    stem = f"tabular_rows_{args.tables}" if args.rows_study else (
        "tabular" if args.tables == LEGACY else f"tabular_{args.tables}")
    return f"{stem}_quick" if args.quick else stem


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Runs the benchmark (or the rows study), prints the report and writes the results; returns the JSON record."""
    args = parse_args(argv)
    if args.rows_study:
        record = rows_study(args)
        report = rows_study_report(record)
    else:
        record = run_benchmark(args)
        report = markdown_report(record)
    print(report)
    write_results(results_stem(args), record, report)
    return record


if __name__ == "__main__":
    main()

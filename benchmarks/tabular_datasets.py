"""The tables of the tabular benchmark, each with a fixed role: "choosing" or "reporting".

Choosing tables are the ones to look at while choosing anything (priors, model sizes,
estimator defaults, checkpoints); reporting tables are for the reported benchmark only and
were never used to choose. Everything loads offline: scikit-learn's bundled `load_*` tables
(not the downloading `fetch_*`), the tables bundled as CSV inside statsmodels
(`statsmodels.datasets`; needs `pip install statsmodels`, imported only when such a table
is loaded) and scikit-learn's generators with known structure.

Rule used to assign the roles (a fixed list below, not a random draw):

1. The nine tables of the original benchmark (`legacy=True`: iris, wine, breast_cancer,
   digits, classification, moons, diabetes, regression, friedman1) were already used while
   developing the shipped models and the estimator defaults, so they are choosing tables.
2. Tables built from the same source data share a role (fair: three choosing tables;
   anes96 and randhie: two reporting tables each), so no reporting table has seen its rows
   in a choosing table.
3. The other tables are split so that both roles hold real and generated tables in every
   class-count group (2, 3 to 5, 6 to 10 classes) and in regression, the reporting role
   getting at least three tables per group and more of the new real data.

Classification, choosing (11): iris (3 classes), wine (3), breast_cancer (2), digits (10),
classification (2), moons (2), fair_affair (2), fair_rating (5), fair_occupation (6),
classification_5c (5), classification_10c (10).

Classification, reporting (10): anes96_vote (2), randhie_any_visit (2), hastie_10_2 (2),
circles (2), modechoice (4), classification_4c (4), quantiles_3c (3), anes96_party (7),
classification_8c (8), quantiles_6c (6).

Regression, choosing (6): diabetes, regression, friedman1, friedman2, engel, grunfeld.

Regression, reporting (7): friedman3, sparse_uncorrelated, regression_lowrank, star98,
randhie_log_visits, sunspots, cancer.

Every table has at most `MAX_ROWS` = 1000 rows: larger ones (digits, fair, randhie,
hastie_10_2, classification_8c) are subsampled with the seed, stratified for
classification; `Table.load(max_rows=None)` gives all rows. Generated tables and the
subsamples depend on the seed (default 0), the bundled rows do not. Features are float64
(NaN allowed; none of these tables has any), with small nominal categoricals one-hot
encoded; classification labels are encoded as 0..K-1. Rows with a missing target are
dropped. Left out: linnerud (20 rows) and statsmodels tables with under 50 rows, time
series without a natural regression table, and statecrime and ccard (51 and 72 rows, R^2
of linear and forest baselines near zero under random splits: split noise only).

    python benchmarks/tabular_datasets.py     # loads every table and prints the list
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any

import numpy as np
from sklearn.datasets import (
    load_breast_cancer,
    load_diabetes,
    load_digits,
    load_iris,
    load_wine,
    make_circles,
    make_classification,
    make_friedman1,
    make_friedman2,
    make_friedman3,
    make_gaussian_quantiles,
    make_hastie_10_2,
    make_moons,
    make_regression,
    make_sparse_uncorrelated,
)
from sklearn.model_selection import train_test_split

CLASSIFICATION, REGRESSION = "classification", "regression"
CHOOSING, REPORTING = "choosing", "reporting"
LEGACY, ALL = "legacy", "all"
SELECTIONS = (LEGACY, CHOOSING, REPORTING, ALL)  # what `select` accepts
MAX_ROWS = 1000
CLASS_GROUPS = {"2": (2, 2), "3-5": (3, 5), "6-10": (6, 10)}  # label -> (fewest, most) classes

XY = tuple[np.ndarray, np.ndarray]


def class_group(n_classes: int) -> str:
    """The class-count group ("2", "3-5" or "6-10") of a table with `n_classes` classes."""
    for label, (low, high) in CLASS_GROUPS.items():
        if low <= n_classes <= high:
            return label
    raise ValueError(f"{n_classes} classes is outside every class-count group")


@dataclass(frozen=True)
class Table:
    """A benchmark table: `loader(seed)` gives all its rows as (`x` `n x F`, `y` `n`).

    `source` names where it comes from ("scikit-learn bundled", "statsmodels bundled" or
    "scikit-learn generator", then the function or dataset); `about` says what the target
    and features are; `legacy` marks the original benchmark's nine tables.
    """

    name: str
    task: str
    role: str
    source: str
    about: str
    loader: Callable[[int], XY]
    legacy: bool = False

    @property
    def generated(self) -> bool:
        """Whether the table comes from a generator (known structure) rather than real data."""
        return "generator" in self.source

    def load(self, seed: int = 0, max_rows: int | None = MAX_ROWS) -> XY:
        """`x` (`n x F` float64) and `y` (`n`; classes 0..K-1 for classification), at most `max_rows` rows.

        A larger table is subsampled with `seed` (stratified for classification); `max_rows=None` keeps every row.
        """
        x, y = self.loader(seed)
        x, y = np.asarray(x, dtype=np.float64), np.asarray(y)
        if self.task == CLASSIFICATION:
            y = np.unique(y, return_inverse=True)[1]
        else:
            y = y.astype(np.float64)
        if max_rows is not None and len(y) > max_rows:
            stratify = y if self.task == CLASSIFICATION else None
            x, _, y, _ = train_test_split(x, y, train_size=max_rows, stratify=stratify, random_state=seed)
        return x, y


# --- loaders ---------------------------------------------------------------------------------
def bundled(loader: Callable[..., Any], seed: int) -> XY:
    """A scikit-learn bundled table (the seed is unused)."""
    return loader(return_X_y=True)


def statsmodels_frame(name: str) -> Any:
    """The pandas frame of the statsmodels bundled dataset `name` (read from the installed package, offline)."""
    import importlib

    return importlib.import_module(f"statsmodels.datasets.{name}").load_pandas().data


def frame_xy(frame: Any, target: Any, drop: tuple[str, ...] = (), one_hot: tuple[str, ...] = ()) -> XY:
    """Features = `frame` without `drop` columns, `one_hot` columns one-hot encoded; rows with a NaN target dropped.

    Args:
        frame: the table (pandas DataFrame).
        target: the target, a Series aligned with `frame`.
        drop: columns that are not features (the target's own columns and any it is computed from).
        one_hot: small nominal columns to expand into 0/1 indicator columns.
    """
    import pandas as pd

    keep = target.notna().to_numpy()
    features = pd.get_dummies(frame.drop(columns=list(drop)), columns=list(one_hot), dtype=float)
    return features.to_numpy(dtype=np.float64)[keep], target.to_numpy()[keep]


def anes96(target: str, seed: int) -> XY:
    """1996 American National Election Study (944 voters): `target` "PID" (7-point party identification) or
    "vote" (Clinton 0 / Dole 1) from the other columns (the other target included)."""
    frame = statsmodels_frame("anes96")
    return frame_xy(frame, frame[target], drop=(target,))


def fair(target: str, seed: int) -> XY:
    """Fair's 1974 extramarital-affairs survey (6366 women): "affair" (any time in affairs, 2 classes),
    "rate_marriage" (1-5) or "occupation" (1-6) from the other columns; occupations one-hot."""
    frame = statsmodels_frame("fair")
    if target == "affair":
        y, drop = frame["affairs"] > 0, ("affairs",)
    else:
        y, drop = frame[target], (target,)
    one_hot = tuple(c for c in ("occupation", "occupation_husb") if c not in drop)
    return frame_xy(frame, y.astype(float), drop=drop, one_hot=one_hot)


def randhie(target: str, seed: int) -> XY:
    """RAND health insurance experiment (20190 person-years): "any_visit" (mdvis > 0, 2 classes) or
    "log_visits" (log(1 + mdvis)) from the insurance and health columns."""
    frame = statsmodels_frame("randhie")
    visits = frame["mdvis"].astype(float)
    y = (visits > 0).astype(float) if target == "any_visit" else np.log1p(visits)
    return frame_xy(frame, y, drop=("mdvis",))


def modechoice(seed: int) -> XY:
    """Travel mode choice Sydney-Melbourne (210 travellers, long format pivoted wide): the chosen mode (air,
    train, bus, car) from each mode's terminal time, in-vehicle cost and time and generalised cost, plus
    household income and party size (18 features)."""
    import pandas as pd

    frame = statsmodels_frame("modechoice")
    wide = frame.pivot(index="individual", columns="mode", values=["ttme", "invc", "invt", "gc"])
    wide.columns = [f"{name}_{int(mode)}" for name, mode in wide.columns]
    person = frame.groupby("individual")[["hinc", "psize"]].first()
    chosen = frame[frame["choice"] == 1].set_index("individual")["mode"]
    table = pd.concat([wide, person], axis=1)
    return table.to_numpy(dtype=np.float64), chosen.loc[table.index].to_numpy()


def star98(seed: int) -> XY:
    """California 1998 school districts (303): share of students above the national median maths score from
    20 demographic, spending and school columns."""
    frame = statsmodels_frame("star98")
    share = frame["NABOVE"] / (frame["NABOVE"] + frame["NBELOW"])
    return frame_xy(frame, share, drop=("NABOVE", "NBELOW"))


def single_column(name: str, target: str, feature: str, seed: int) -> XY:
    """Statsmodels table `name` as a one-feature regression of `target` on `feature`."""
    frame = statsmodels_frame(name)
    return frame_xy(frame[[feature]], frame[target])


def grunfeld(seed: int) -> XY:
    """Grunfeld investment panel (11 US firms x 20 years): gross investment from firm value, capital stock,
    year and the firm (one-hot)."""
    frame = statsmodels_frame("grunfeld")
    return frame_xy(frame, frame["invest"], drop=("invest",), one_hot=("firm",))


def generated(maker: Callable[..., XY], seed: int, **kwargs: Any) -> XY:
    """`maker(random_state=seed, **kwargs)`: a scikit-learn generator's (x, y)."""
    return maker(random_state=seed, **kwargs)[:2]


def gen(maker: Callable[..., XY], **kwargs: Any) -> Callable[[int], XY]:
    """A `seed -> (x, y)` loader of generator `maker` with fixed `kwargs`."""
    return partial(generated, maker, **kwargs)


SKL, SM, GEN = "scikit-learn bundled", "statsmodels bundled", "scikit-learn generator"
C, R = CLASSIFICATION, REGRESSION
_TABLES = [
    # the original benchmark's nine tables, in its order (choosing: used while developing)
    Table("iris", C, CHOOSING, f"{SKL} load_iris", "3 iris species from 4 flower measurements",
          partial(bundled, load_iris), legacy=True),
    Table("wine", C, CHOOSING, f"{SKL} load_wine", "3 cultivars from 13 chemical measurements",
          partial(bundled, load_wine), legacy=True),
    Table("breast_cancer", C, CHOOSING, f"{SKL} load_breast_cancer", "malignant/benign from 30 cell-nucleus features",
          partial(bundled, load_breast_cancer), legacy=True),
    Table("digits", C, CHOOSING, f"{SKL} load_digits", "10 handwritten digits from 8x8 pixels (1797 rows)",
          partial(bundled, load_digits), legacy=True),
    Table("classification", C, CHOOSING, f"{GEN} make_classification",
          "1000 x 20, 6 informative + 4 redundant features, 2 classes of 2 Gaussian clusters (speed-anchor table)",
          gen(make_classification, n_samples=1000, n_features=20, n_informative=6, n_redundant=4), legacy=True),
    Table("moons", C, CHOOSING, f"{GEN} make_moons", "two interleaved half circles, 500 rows, noise 0.3",
          gen(make_moons, n_samples=500, noise=0.3), legacy=True),
    Table("diabetes", R, CHOOSING, f"{SKL} load_diabetes", "disease progression after a year from 10 baselines",
          partial(bundled, load_diabetes), legacy=True),
    Table("regression", R, CHOOSING, f"{GEN} make_regression",
          "linear, 500 x 10, 6 informative features, noise sd 20",
          gen(make_regression, n_samples=500, n_features=10, n_informative=6, noise=20.0), legacy=True),
    Table("friedman1", R, CHOOSING, f"{GEN} make_friedman1",
          "Friedman #1, 500 x 10 (5 used), noise sd 1", gen(make_friedman1, n_samples=500, n_features=10, noise=1.0),
          legacy=True),
    # classification, choosing
    Table("fair_affair", C, CHOOSING, f"{SM} fair", "any affair (2 classes) from the other 8 columns",
          partial(fair, "affair")),
    Table("fair_rating", C, CHOOSING, f"{SM} fair", "self-rated marriage 1-5 from the other 8 columns",
          partial(fair, "rate_marriage")),
    Table("fair_occupation", C, CHOOSING, f"{SM} fair", "own occupation class 1-6 from the other 8 columns",
          partial(fair, "occupation")),
    Table("classification_5c", C, CHOOSING, f"{GEN} make_classification",
          "600 x 12, 5 informative + 3 redundant features, 5 classes of 2 clusters",
          gen(make_classification, n_samples=600, n_features=12, n_informative=5, n_redundant=3, n_classes=5)),
    Table("classification_10c", C, CHOOSING, f"{GEN} make_classification",
          "1000 x 24, 8 informative + 4 redundant features, 10 classes of 1 cluster",
          gen(make_classification, n_samples=1000, n_features=24, n_informative=8, n_redundant=4, n_classes=10,
              n_clusters_per_class=1)),
    # classification, reporting
    Table("anes96_vote", C, REPORTING, f"{SM} anes96", "Clinton/Dole vote from the other 10 columns",
          partial(anes96, "vote")),
    Table("anes96_party", C, REPORTING, f"{SM} anes96", "7-point party identification from the other 10 columns",
          partial(anes96, "PID")),
    Table("randhie_any_visit", C, REPORTING, f"{SM} randhie", "any outpatient visit in the year from 9 columns",
          partial(randhie, "any_visit")),
    Table("modechoice", C, REPORTING, f"{SM} modechoice", "chosen travel mode (4) from 18 mode and traveller columns",
          modechoice),
    Table("hastie_10_2", C, REPORTING, f"{GEN} make_hastie_10_2",
          "sum of 10 squared standard normals > 9.34 (2 classes), 12000 rows", gen(make_hastie_10_2)),
    Table("circles", C, REPORTING, f"{GEN} make_circles", "two concentric circles, 500 rows, noise 0.15, factor 0.5",
          gen(make_circles, n_samples=500, noise=0.15, factor=0.5)),
    Table("classification_4c", C, REPORTING, f"{GEN} make_classification",
          "400 x 8, 4 informative + 2 redundant features, 4 classes of 2 clusters",
          gen(make_classification, n_samples=400, n_features=8, n_informative=4, n_redundant=2, n_classes=4)),
    Table("classification_8c", C, REPORTING, f"{GEN} make_classification",
          "3000 x 16, 6 informative + 4 redundant features, 8 classes of 1 cluster",
          gen(make_classification, n_samples=3000, n_features=16, n_informative=6, n_redundant=4, n_classes=8,
              n_clusters_per_class=1)),
    Table("quantiles_3c", C, REPORTING, f"{GEN} make_gaussian_quantiles",
          "3 nested shells of a 3-d standard normal by radius, 300 rows",
          gen(make_gaussian_quantiles, n_samples=300, n_features=3, n_classes=3)),
    Table("quantiles_6c", C, REPORTING, f"{GEN} make_gaussian_quantiles",
          "6 nested shells of a 4-d standard normal by radius, 900 rows",
          gen(make_gaussian_quantiles, n_samples=900, n_features=4, n_classes=6)),
    # regression, choosing
    Table("friedman2", R, CHOOSING, f"{GEN} make_friedman2", "Friedman #2, 500 x 4, noise sd 125 (signal:noise 3:1)",
          gen(make_friedman2, n_samples=500, noise=125.0)),
    Table("engel", R, CHOOSING, f"{SM} engel", "household food expenditure from income (235, heteroscedastic)",
          partial(single_column, "engel", "foodexp", "income")),
    Table("grunfeld", R, CHOOSING, f"{SM} grunfeld", "firm investment from value, capital, year, firm (one-hot)",
          grunfeld),
    # regression, reporting
    Table("friedman3", R, REPORTING, f"{GEN} make_friedman3", "Friedman #3, 500 x 4, noise sd 0.1 (signal:noise 3:1)",
          gen(make_friedman3, n_samples=500, noise=0.1)),
    Table("sparse_uncorrelated", R, REPORTING, f"{GEN} make_sparse_uncorrelated",
          "y = x1 + 2 x2 - 2 x3 - 1.5 x4 + N(0, 1), 500 x 10", gen(make_sparse_uncorrelated, n_samples=500)),
    Table("regression_lowrank", R, REPORTING, f"{GEN} make_regression",
          "linear, 800 x 20, 5 informative, inputs of effective rank 5, noise sd 0.3",
          gen(make_regression, n_samples=800, n_features=20, n_informative=5, effective_rank=5, noise=0.3)),
    Table("star98", R, REPORTING, f"{SM} star98", "district share above the median maths score from 20 columns",
          star98),
    Table("randhie_log_visits", R, REPORTING, f"{SM} randhie", "log(1 + outpatient visits) from 9 columns",
          partial(randhie, "log_visits")),
    Table("sunspots", R, REPORTING, f"{SM} sunspots", "yearly sunspot activity from the year (309, 1700-2008)",
          partial(single_column, "sunspots", "SUNACTIVITY", "YEAR")),
    Table("cancer", R, REPORTING, f"{SM} cancer", "breast-cancer deaths from population (301 counties)",
          partial(single_column, "cancer", "cancer", "population")),
]
TABLES: dict[str, Table] = {t.name: t for t in _TABLES}


def select(which: str) -> list[Table]:
    """The tables of `which`: "legacy" (the original nine), "choosing", "reporting" or "all", in registry order."""
    if which not in SELECTIONS:
        raise ValueError(f"unknown table selection {which!r}; expected one of {SELECTIONS}")
    if which == LEGACY:
        return [t for t in _TABLES if t.legacy]
    return [t for t in _TABLES if which in (ALL, t.role)]


def check_and_list(seed: int = 0) -> list[str]:
    """Loads every table and checks it (50..MAX_ROWS rows, finite y, 2..10 classes); returns one line per table.

    Raises:
        AssertionError: a table breaks one of the checks.
    """
    lines = []
    for table in _TABLES:
        x, y = table.load(seed)
        assert x.ndim == 2 and x.dtype == np.float64 and len(y) == len(x), table.name
        assert 50 <= len(y) <= MAX_ROWS, f"{table.name}: {len(y)} rows"
        assert np.isfinite(y).all() and not np.isinf(x).any(), table.name
        shape = f"{x.shape[0]}x{x.shape[1]}"
        if table.task == CLASSIFICATION:
            counts = np.bincount(y)
            assert 2 <= len(counts) <= 10 and counts.min() >= 2, f"{table.name}: class counts {counts}"
            shape += f", {len(counts)} classes (group {class_group(len(counts))}, smallest {counts.min()})"
        available = len(table.loader(seed)[1])
        lines.append(f"{table.role:9} {table.task:14} {table.name:20} {shape:48} of {available:5} | {table.source}")
    return lines


if __name__ == "__main__":
    print("\n".join(check_and_list(int(sys.argv[1]) if len(sys.argv) > 1 else 0)))

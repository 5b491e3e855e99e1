"""Real learning curves, made here: validation accuracy and log-loss per epoch of small searches.

Three sources, each a few hyperparameter searches (one per dataset) of randomly drawn settings:

- `sklearn_mlp`: scikit-learn `MLPClassifier`, one `partial_fit` pass over the training set per
  epoch (60 epochs), on the bundled digits, breast-cancer and wine tables.
- `torch_mlp`: small torch MLPs trained with SGD or Adam on digits (50 epochs).
- `gradient_boosting`: `GradientBoostingClassifier` read out after each boosting stage with
  `staged_predict_proba` (100 stages) on the same three tables.

Every run scores the same stratified validation split of its table (30% of the rows; features
standardised on the training rows). The hyperparameters are drawn at random (log-uniform
learning rates etc.), so a search holds good, slow, diverging and overfitting runs, in the order
it would have run them. Each source is one `benchmarks/data/<source>.npz` with

- `accuracy`, `loss`: `runs x horizon` float32, validation accuracy and mean log-loss
  (probabilities clipped to [1e-7, 1]) after each epoch;
- `search`: `runs` int, which search (dataset) a run belongs to, runs in their order;
- `datasets`: the dataset name of each search; `params`: one JSON string per run;
- `seconds`: the wall time that made the source.

    nice -n 10 python benchmarks/data/make_curves.py          # all sources, about 5-10 minutes, one core
    python benchmarks/data/make_curves.py --runs-scale 0.1    # a quick smoke run into a scratch folder
"""

from __future__ import annotations

import argparse
import json
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from sklearn.datasets import load_breast_cancer, load_digits, load_wine
from sklearn.ensemble import GradientBoostingClassifier
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import train_test_split
from sklearn.neural_network import MLPClassifier
from sklearn.preprocessing import StandardScaler

DATA_DIR = Path(__file__).resolve().parent
LOADERS = {"digits": load_digits, "breast_cancer": load_breast_cancer, "wine": load_wine}
PROB_FLOOR = 1e-7
# Settings per search and the horizon (epochs) of each source.
SOURCES = {"sklearn_mlp": (60, 60), "torch_mlp": (100, 50), "gradient_boosting": (30, 100)}


def split(name: str) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Standardised training and validation rows (70/30, stratified, seed 0) of a bundled table."""
    x, y = LOADERS[name](return_X_y=True)
    x_train, x_val, y_train, y_val = train_test_split(x, y, test_size=0.3, stratify=y, random_state=0)
    scaler = StandardScaler().fit(x_train)
    return scaler.transform(x_train), scaler.transform(x_val), y_train, y_val


def scores(proba: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """Accuracy and mean log-loss of class probabilities `proba` (`n x classes`) for labels `y`."""
    picked = np.clip(proba[np.arange(len(y)), y], PROB_FLOOR, 1.0)
    return float(np.mean(proba.argmax(1) == y)), float(-np.mean(np.log(picked)))


def log_uniform(rng: np.random.Generator, low: float, high: float) -> float:
    return float(np.exp(rng.uniform(np.log(low), np.log(high))))


def sklearn_mlp_curves(data, horizon: int, rng: np.random.Generator) -> tuple[list[tuple[float, float]], dict]:
    x_train, x_val, y_train, y_val = data
    params = {"hidden_layer_sizes": [int(rng.choice([8, 16, 32, 64, 128]))] * int(rng.integers(1, 3)),
              "activation": str(rng.choice(["relu", "tanh", "logistic"])),
              "solver": str(rng.choice(["sgd", "adam"])),
              "learning_rate_init": log_uniform(rng, 1e-4, 0.3), "alpha": log_uniform(rng, 1e-6, 1.0),
              "batch_size": min(int(rng.choice([16, 32, 64, 128])), len(y_train)),
              "momentum": float(rng.uniform(0.0, 0.95)),
              "random_state": int(rng.integers(2**31))}
    model = MLPClassifier(**params)
    classes = np.unique(y_train)
    curve = []
    for _ in range(horizon):
        model.partial_fit(x_train, y_train, classes=classes)
        curve.append(scores(model.predict_proba(x_val), y_val))
    return curve, params


def torch_mlp_curves(data, horizon: int, rng: np.random.Generator) -> tuple[list[tuple[float, float]], dict]:
    x_train, x_val, y_train, y_val = data
    params = {"width": int(rng.choice([16, 32, 64, 128])), "depth": int(rng.integers(1, 4)),
              "optimizer": str(rng.choice(["sgd", "adam"])), "lr": log_uniform(rng, 1e-4, 1.0),
              "weight_decay": log_uniform(rng, 1e-6, 1e-1), "dropout": float(rng.choice([0.0, 0.2, 0.5])),
              "batch_size": int(rng.choice([16, 32, 64, 128])), "seed": int(rng.integers(2**31))}
    gen = torch.Generator().manual_seed(params["seed"])
    torch.manual_seed(params["seed"])
    layers, width_in = [], x_train.shape[1]
    for _ in range(params["depth"]):
        layers += [torch.nn.Linear(width_in, params["width"]), torch.nn.ReLU(), torch.nn.Dropout(params["dropout"])]
        width_in = params["width"]
    net = torch.nn.Sequential(*layers, torch.nn.Linear(width_in, int(y_train.max()) + 1))
    if params["optimizer"] == "sgd":
        opt = torch.optim.SGD(net.parameters(), lr=params["lr"], momentum=0.9, weight_decay=params["weight_decay"])
    else:
        opt = torch.optim.Adam(net.parameters(), lr=params["lr"], weight_decay=params["weight_decay"])
    xt, yt = torch.as_tensor(x_train, dtype=torch.float32), torch.as_tensor(y_train)
    xv = torch.as_tensor(x_val, dtype=torch.float32)
    curve = []
    for _ in range(horizon):
        net.train()
        for idx in torch.randperm(len(yt), generator=gen).split(params["batch_size"]):
            opt.zero_grad()
            torch.nn.functional.cross_entropy(net(xt[idx]), yt[idx]).backward()
            opt.step()
        net.eval()
        with torch.no_grad():
            proba = torch.softmax(net(xv).double(), -1).nan_to_num(1.0 / net[-1].out_features).numpy()
        curve.append(scores(proba, y_val))
    return curve, params


def boosting_curves(data, horizon: int, rng: np.random.Generator) -> tuple[list[tuple[float, float]], dict]:
    x_train, x_val, y_train, y_val = data
    params = {"learning_rate": log_uniform(rng, 0.005, 1.0), "max_depth": int(rng.integers(1, 5)),
              "subsample": float(rng.uniform(0.3, 1.0)), "max_features": float(rng.uniform(0.1, 1.0)),
              "min_samples_leaf": int(rng.integers(1, 20)), "random_state": int(rng.integers(2**31))}
    model = GradientBoostingClassifier(n_estimators=horizon, **params).fit(x_train, y_train)
    return [scores(p, y_val) for p in model.staged_predict_proba(x_val)], params


MAKERS: dict[str, tuple[Callable, tuple[str, ...]]] = {
    "sklearn_mlp": (sklearn_mlp_curves, ("digits", "breast_cancer", "wine")),
    "torch_mlp": (torch_mlp_curves, ("digits",)),
    "gradient_boosting": (boosting_curves, ("digits", "breast_cancer", "wine")),
}


def make_source(source: str, runs_scale: float, out_dir: Path) -> Path:
    """Runs every search of `source` and writes `out_dir/<source>.npz`; returns its path."""
    maker, datasets = MAKERS[source]
    n_settings, horizon = SOURCES[source]
    n_settings = max(2, round(n_settings * runs_scale))
    start = time.perf_counter()
    accuracy, loss, search, params = [], [], [], []
    for s, name in enumerate(datasets):
        data = split(name)
        rng = np.random.default_rng([s, len(source)])
        for _ in range(n_settings):
            curve, setting = maker(data, horizon, rng)
            accuracy.append([a for a, _ in curve])
            loss.append([v for _, v in curve])
            search.append(s)
            params.append(json.dumps(setting))
        print(f"{source}/{name}: {n_settings} runs x {horizon} epochs, {time.perf_counter() - start:.0f} s so far")
    path = out_dir / f"{source}.npz"
    np.savez_compressed(path, accuracy=np.asarray(accuracy, np.float32), loss=np.asarray(loss, np.float32),
                        search=np.asarray(search), datasets=np.asarray(datasets), params=np.asarray(params),
                        seconds=np.float64(time.perf_counter() - start))
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sources", nargs="+", default=list(MAKERS), choices=list(MAKERS))
    parser.add_argument("--runs-scale", type=float, default=1.0, help="fraction of the settings per search")
    parser.add_argument("--out", type=Path, default=DATA_DIR, help="folder of the .npz files")
    args = parser.parse_args()
    torch.set_num_threads(1)
    warnings.filterwarnings("ignore", category=ConvergenceWarning)
    args.out.mkdir(parents=True, exist_ok=True)
    for source in args.sources:
        path = make_source(source, args.runs_scale, args.out)
        print(f"wrote {path} ({path.stat().st_size / 1024:.0f} KiB)")


if __name__ == "__main__":
    main()

"""Parallel Bayesian optimisation on a Dask cluster: `bo.optimize(..., executor=client.get_executor())`.

A `LocalCluster` stands in for a cluster of machines (point a `Client` at a scheduler address
to use real ones); each worker evaluates a trial, and a new suggestion goes out as soon as a
worker is free, with the trials still running treated as pending. Needs `pip install -e ".[dask]"`.

    python examples/bo_dask_parallel.py            # 24 trials on 2 workers
    python examples/bo_dask_parallel.py --quick    # what CI runs
"""

from __future__ import annotations

import argparse
import time

from dask.distributed import Client, LocalCluster

import bo


def slow_objective(params: dict) -> float:
    """A 2-D function that takes 50 ms to evaluate, as a stand-in for training a model."""
    time.sleep(0.05)
    return (params["x"] - 0.3) ** 2 + (params["y"] + 0.2) ** 2


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="8 trials")
    parser.add_argument("--pfn-model", help="checkpoint folder of a BO PFN to use instead of the GP")
    args = parser.parse_args()
    surrogate = "gp" if args.pfn_model is None else bo.PFNSurrogate(model=args.pfn_model)
    space = {"x": bo.Float(-1.0, 1.0), "y": bo.Float(-1.0, 1.0)}
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=False, dashboard_address=None) as cluster, \
            Client(cluster) as client:
        result = bo.optimize(slow_objective, space, n_trials=8 if args.quick else 24, surrogate=surrogate,
                             batch_size=2, executor=client.get_executor(), seed=0, progress=False)
    done = (result.history["state"] == "complete").sum()
    print(f"{done} trials evaluated on 2 Dask workers; best {result.best_value:.4f} at {result.best_params}")


if __name__ == "__main__":
    main()

"""`bo.optimize` on a Dask cluster: trials run on the workers through `Client.get_executor()`."""

from __future__ import annotations

import threading

import pytest

import bo

distributed = pytest.importorskip("distributed", reason="dask[distributed] is not installed")

SPACE = {"x": bo.Float(0.0, 1.0), "n": bo.Int(1, 5), "act": bo.Categorical(["relu", "tanh"])}


def objective(p: dict) -> float:
    return (p["x"] - 0.3) ** 2 + (p["n"] - 2) ** 2 / 10 + (p["act"] == "relu")


@pytest.fixture(scope="module")
def client():
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=False, dashboard_address=None) \
            as cluster, distributed.Client(cluster) as dask_client:
        yield dask_client


def test_optimize_on_a_local_cluster_completes_every_trial(client):
    threads: set[str] = set()

    def tracked(p: dict) -> float:
        threads.add(threading.current_thread().name)
        return objective(p)

    result = bo.optimize(tracked, SPACE, 8, surrogate="gp", batch_size=2, executor=client.get_executor(), seed=0,
                         progress=False)
    history = result.history
    assert len(history) == 8
    assert (history["state"] == "complete").all()
    assert result.best_value == pytest.approx(history["value"].min())
    assert result.best_params == result.optimizer.best_params
    assert threading.current_thread().name not in threads  # evaluated on the workers, not here
    assert len({tuple(sorted(p.items())) for p in (t.params for t in result.optimizer.trials)}) == 8


def test_a_failing_trial_on_the_cluster_is_recorded_and_the_run_goes_on(client):
    def flaky(p: dict) -> float:
        if p["x"] > 0.6:
            raise RuntimeError("worker-side failure")
        return objective(p)

    result = bo.optimize(flaky, SPACE, 6, surrogate="gp", batch_size=2, executor=client.get_executor(), seed=1,
                         progress=False)
    states = result.history["state"]
    assert len(states) == 6 and set(states) <= {"complete", "failed"}
    assert (states == "complete").any() and (states == "failed").any()

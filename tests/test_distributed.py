"""Multi-process training: `torchrun` with two CPU ranks (gloo) keeps the replicas identical."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import torch
from safetensors.torch import load_file

from pfn.training import train

ROOT = Path(__file__).resolve().parent.parent
WORKER = ROOT / "tests" / "ddp_worker.py"


def worker_module():
    spec = importlib.util.spec_from_file_location("ddp_worker", WORKER)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_two_rank_ddp_training_keeps_replicas_identical(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    env.pop("WORLD_SIZE", None)
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "--standalone", str(WORKER),
           str(tmp_path)]
    proc = subprocess.run(cmd, env=env, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, f"torchrun failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-5000:]}"

    rank0 = load_file(str(tmp_path / "rank0.safetensors"))
    rank1 = load_file(str(tmp_path / "rank1.safetensors"))
    assert rank0.keys() == rank1.keys()
    for key in rank0:
        assert torch.equal(rank0[key], rank1[key]), f"ranks disagree on {key}"

    w = worker_module()
    initial = train(w.PRIOR, w.MODEL, w.TRAIN, None, progress=False, stop_after=0).state_dict()
    assert initial.keys() == rank0.keys()
    changed = [k for k in rank0 if not torch.equal(rank0[k], initial[k])]
    assert "head.proj.weight" in changed and len(changed) > len(rank0) // 2, "training did not move the weights"

    # Each rank drew its own batches: averaging their gradients differs from one process
    # training alone on rank 0's batches (with identical batches the two would agree exactly).
    single = train(w.PRIOR, w.MODEL, w.TRAIN, None, progress=False).state_dict()
    assert not torch.equal(single["head.proj.weight"], rank0["head.proj.weight"])

    # Rank 0 wrote the checkpoint; every rank wrote its own RNG state for exact resume, all in one
    # complete step folder.
    run = tmp_path / "run"
    assert [p.name for p in run.iterdir()] == ["step-00000003"]
    step = run / "step-00000003"
    saved = load_file(str(step / "model.safetensors"))
    assert all(torch.equal(saved[k], rank0[k]) for k in rank0)
    rng0 = load_file(str(step / "rng_rank0.safetensors"))["state"]
    rng1 = load_file(str(step / "rng_rank1.safetensors"))["state"]
    assert not torch.equal(rng0, rng1)
    assert {"rng_rank0.safetensors", "rng_rank1.safetensors"} <= set(json.loads((step / "checksums.json").read_text()))
    record = json.loads((step / "config.json").read_text())["record"]
    assert record["tables"] == 3 * w.TRAIN.batch_size * 2

"""Run under torchrun (see test_distributed.py): trains a tiny PFN for 3 steps with
DistributedDataParallel on CPU (gloo) and saves each rank's final weights.

    python -m torch.distributed.run --nproc_per_node=2 --standalone tests/ddp_worker.py OUTDIR

Writes `OUTDIR/rank{r}.safetensors` per rank; the run's checkpoint goes to `OUTDIR/run`.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import torch
from safetensors.torch import save_file

from pfn.config import ModelConfig, TrainConfig
from pfn.training import train
from priors import GPPrior

PRIOR = GPPrior()
MODEL = ModelConfig(d_model=32, n_layers=2, n_heads=2, d_ff=64, n_buckets=50, max_features=4)
TRAIN = TrainConfig(steps=3, batch_size=8, n_points=20, max_context=10, border_samples=2000, checkpoint_every=2,
                    val_every=100, val_batches=1, warmup_steps=1, lr=1e-3, device="cpu", seed=0)


def main(out: Path) -> None:
    torch.set_num_threads(1)
    rank = int(os.environ["RANK"])
    model = train(PRIOR, MODEL, TRAIN, out / "run", progress=False)
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    save_file(state, str(out / f"rank{rank}.safetensors"))
    if torch.distributed.is_initialized():
        torch.distributed.destroy_process_group()


if __name__ == "__main__":
    main(Path(sys.argv[1]))

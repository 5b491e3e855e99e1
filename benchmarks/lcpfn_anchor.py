"""The equal-compute anchor of `benchmarks/curves.py`: the `lcpfn` package's model, trained by its own code.

The `lcpfn` package (0.1.3, Adriaensen et al.) pins `torch<=1.11` and Python < 3.12. Its code
runs unchanged on current torch after two compatibility patches applied here at import time
(`patch_lcpfn_for_current_torch`), which change no numerics:

- its layer module star-imports `torch.nn.modules.transformer`, whose `__all__` no longer
  lists `MultiheadAttention`, `Dropout`, `Linear` and `LayerNorm`: they are added back;
- `torch.nn.TransformerEncoder` now passes `is_causal` to its layers, which its layer's
  `forward` does not accept: the argument is dropped (it is never set).

Install it beside this project without its pins: `pip install lcpfn==0.1.3 --no-deps`.

Equal compute: the CPU time of our shipped `pretrained/lcpfn` (its training record's wall
time on 2 cores, `--budget-min` to override). The package's step is timed on a few warm-up
steps first; the number of epochs (100 steps each, its own unit) is then set so that its whole
schedule (its warm-up of a quarter of the epochs and cosine decay) fits that budget on a quiet
machine. The step count is fixed from then on, so other work on the machine slows the run
down but does not shorten it. Everything else is the package's `train_lcpfn` default (its
Domhan-style prior over 100 epochs, batch 100, lr 1e-4, 1000 buckets), except the size, which
is ours (`--emsize 128 --nlayers 4`, as `pretrained/lcpfn`) so that the two differ in prior and
training code, not in width.

Writes `runs/lcpfn-anchor/model.pt` (the pickled model; loading it needs `lcpfn` installed)
and `info.json`; `python benchmarks/curves.py --anchor runs/lcpfn-anchor` then scores it.

    nice python benchmarks/lcpfn_anchor.py --out runs/lcpfn-anchor
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import torch
from results_io import machine_record  # sibling module: run as `python benchmarks/<name>.py`

from pfn.checkpoint import read_checkpoint, verify_shipped
from pfn.run_state import cpu_hours, stages

STEPS_PER_EPOCH = 100  # fixed inside lcpfn.train_lcpfn
SEQ_LEN = 100  # the package's horizon: its curves have 100 epochs, x = 1..100


def patch_lcpfn_for_current_torch() -> Any:
    """Imports `lcpfn` with the two compatibility patches of the module docstring; returns the module."""
    import torch.nn.modules.transformer as transformer

    missing = [n for n in ("MultiheadAttention", "Dropout", "Linear", "LayerNorm", "ModuleList")
               if hasattr(transformer, n) and n not in transformer.__all__]
    transformer.__all__ = [*transformer.__all__, *missing]
    import lcpfn
    import lcpfn.layer as layer

    if not getattr(layer.TransformerEncoderLayer, "_is_causal_patched", False):
        forward = layer.TransformerEncoderLayer.forward

        def forward_without_is_causal(self, src, src_mask=None, src_key_padding_mask=None, is_causal=None, **_):
            return forward(self, src, src_mask=src_mask, src_key_padding_mask=src_key_padding_mask)

        layer.TransformerEncoderLayer.forward = forward_without_is_causal
        layer.TransformerEncoderLayer._is_causal_patched = True
    return lcpfn


def train_anchor(out: Path, budget_s: float, emsize: int, nlayers: int, timing_epochs: int = 1) -> dict[str, Any]:
    """Times `timing_epochs` epochs, then trains for as many epochs as fit `budget_s`; returns the info saved."""
    lcpfn = patch_lcpfn_for_current_torch()
    get_batch = lcpfn.create_get_batch_func(prior=lcpfn.sample_from_prior)
    start = time.perf_counter()
    lcpfn.train_lcpfn(get_batch, seq_len=SEQ_LEN, emsize=emsize, nlayers=nlayers, epochs=timing_epochs)
    epoch_s = (time.perf_counter() - start) / timing_epochs
    epochs = max(4, int(budget_s // epoch_s))
    print(f"timing: {epoch_s:.1f} s per epoch of {STEPS_PER_EPOCH} steps; training {epochs} epochs", flush=True)
    start = time.perf_counter()
    result = lcpfn.train_lcpfn(get_batch, seq_len=SEQ_LEN, emsize=emsize, nlayers=nlayers, epochs=epochs)
    wall = time.perf_counter() - start
    out.mkdir(parents=True, exist_ok=True)
    torch.save(result[2], out / "model.pt")
    info = {"package": f"lcpfn {getattr(lcpfn, '__version__', '?')}", "emsize": emsize, "nlayers": nlayers,
            "epochs": epochs, "steps": epochs * STEPS_PER_EPOCH, "curves_seen": epochs * STEPS_PER_EPOCH * 100,
            "budget_s": budget_s, "timed_epoch_s": epoch_s, "wall_s": wall, "final_loss": float(result[0]),
            "machine": machine_record()}
    (out / "info.json").write_text(json.dumps(info, indent=1))
    return info


def load_anchor(folder: Path) -> torch.nn.Module:
    """The trained package model of `folder` (needs `lcpfn` importable), in eval mode."""
    patch_lcpfn_for_current_torch()
    model = torch.load(Path(folder) / "model.pt", weights_only=False)
    return model.eval()


def main(argv: list[str] | None = None) -> dict[str, Any]:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--out", type=Path, default=Path("runs/lcpfn-anchor"))
    p.add_argument("--budget-min", type=float,
                   help="training minutes (default: the wall time of pretrained/lcpfn's CPU training)")
    p.add_argument("--emsize", type=int, default=128)
    p.add_argument("--nlayers", type=int, default=4)
    args = p.parse_args(argv)
    if args.budget_min is not None:
        budget_s = 60 * args.budget_min
    else:
        config, _ = read_checkpoint(verify_shipped("lcpfn"))
        budget_s = 3600 * cpu_hours(stages(config))
    info = train_anchor(args.out, budget_s, args.emsize, args.nlayers)
    print(json.dumps(info, indent=1))
    return info


if __name__ == "__main__":
    sys.exit(main() and 0)

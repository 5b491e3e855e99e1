"""Ask/tell Bayesian optimisation that survives a kill: save after every trial, resume from the file.

A run of 12 trials on a 3-parameter function is "killed" after 6 (the optimiser object is
dropped) and resumed from its JSON state; the resumed run suggests exactly the trials an
uninterrupted run does, which the script checks.

    python examples/bo_ask_tell_resume.py            # GP surrogate (any machine)
    python examples/bo_ask_tell_resume.py --quick    # what CI runs (fewer trials)
    python examples/bo_ask_tell_resume.py --pfn-model runs/bo/checkpoint   # with a PFN surrogate
"""

from __future__ import annotations

import argparse
import math
import tempfile
from pathlib import Path

import bo

SPACE = {"x": bo.Float(-2.0, 2.0), "depth": bo.Int(1, 6), "mode": bo.Categorical(["a", "b"])}


def objective(p: dict) -> float:
    penalty = 0.0 if p["mode"] == "b" else 0.5
    return (p["x"] - 0.7) ** 2 + 0.1 * (p["depth"] - 4) ** 2 + penalty + 0.05 * math.sin(9 * p["x"])


def make_surrogate(pfn_model: str | None) -> str | bo.Surrogate:
    """The GP, or the PFN of a checkpoint folder (a `Surrogate` instance: `Optimizer.load` needs it again)."""
    return "gp" if pfn_model is None else bo.PFNSurrogate(model=pfn_model)


def run(n_trials: int, state_file: Path, kill_after: int | None = None, pfn_model: str | None = None) -> list[dict]:
    """Ask/tell loop saving the state after each trial; returns the parameters tried, in order."""
    surrogate = make_surrogate(pfn_model)
    opt = (bo.Optimizer.load(state_file, surrogate=surrogate) if state_file.exists()
           else bo.Optimizer(SPACE, surrogate=surrogate, seed=0))
    while len(opt.trials) < n_trials:
        [params] = opt.ask()
        opt.tell(params, objective(params))
        opt.save(state_file)
        if kill_after is not None and len(opt.trials) == kill_after:
            return [t.params for t in opt.trials]  # the process "dies" here
    return [t.params for t in opt.trials]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="8 trials, killed after 4")
    parser.add_argument("--pfn-model", help="checkpoint folder of a BO PFN to use instead of the GP")
    args = parser.parse_args()
    n, kill = (8, 4) if args.quick else (12, 6)
    with tempfile.TemporaryDirectory() as tmp:
        interrupted = Path(tmp) / "interrupted.json"
        run(n, interrupted, kill_after=kill, pfn_model=args.pfn_model)
        print(f"killed after {kill} trials; resuming from {interrupted.name}")
        resumed = run(n, interrupted, pfn_model=args.pfn_model)
        uninterrupted = run(n, Path(tmp) / "uninterrupted.json", pfn_model=args.pfn_model)
    assert resumed == uninterrupted, "the resumed run differs from the uninterrupted one"
    best = min(resumed, key=objective)
    print(f"resumed run suggested the same {n} trials as an uninterrupted one; best {best} -> {objective(best):.4f}")


if __name__ == "__main__":
    main()

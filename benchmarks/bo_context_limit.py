"""The BO PFN past its trained context: which observations should it see when a run has more?

`pretrained/bo` was trained on at most `train.max_context` observations (200). On held-out
functions of its own prior (`priors.BOPrior`, a seed not used in training) with 300, 400 and 800
observations, this compares the predictive at 100 held-out query points when the model is
conditioned on

- `all`: every observation (a context size it never saw in training);
- `random`: a random subset of `max_context`;
- `best`: the `max_context` best-valued (lowest) observations;
- `best_quarter+random`: the `max_context / 4` best plus random others;
- `best_half+random`: the `max_context / 2` best plus random others, the rule `PFNSurrogate`
  uses (`bo.surrogates.pfn.context_subset`).

Targets are transformed as `PFNSurrogate` does (`OutcomeTransform` fitted on every observation),
so the NLL (nats per query, of the noise-free function, in the transformed units: the Jacobian is
the same for every rule) compares the rules as the surrogate would use them. Scores: mean NLL
over all queries; mean NLL over the best quarter of the queries (by the true function: the
region an acquisition function cares about); Spearman rank correlation of the predictive mean
with the truth over that best quarter (how well it ranks candidates near the optimum).

Writes `benchmarks/results/bo_context_limit.json` and `.md` (about 3 minutes of one CPU core).

    PYTHONPATH=. python benchmarks/bo_context_limit.py   # --tasks 24 (default)
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from typing import Any

import torch
from results_io import machine_record, write_results  # sibling module: run as `python benchmarks/<name>.py`

import pfn
from bo.surrogates.outcome import OutcomeTransform
from bo.surrogates.pfn import context_subset
from priors import BOPrior

SEED = 4242
N_QUERY = 100
OBSERVATIONS = (300, 400, 800)
Rule = Callable[[torch.Tensor, int, torch.Generator], torch.Tensor]


def _best_plus_random(n_best_fraction: float) -> Rule:
    def rule(y: torch.Tensor, k: int, gen: torch.Generator) -> torch.Tensor:
        order = torch.argsort(y)
        n_best = int(k * n_best_fraction)
        rest = order[n_best:][torch.randperm(len(y) - n_best, generator=gen)[:k - n_best]]
        return torch.cat([order[:n_best], rest])
    return rule


RULES: dict[str, Rule | None] = {
    "all": None,
    "random": lambda y, k, gen: torch.randperm(len(y), generator=gen)[:k],
    "best": lambda y, k, gen: torch.argsort(y)[:k],
    "best_quarter+random": _best_plus_random(0.25),
    "best_half+random": lambda y, k, gen: context_subset(y, k),
}


def spearman(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Rank correlation of `a` and `b` along the last dimension (`B x M` each), `B`."""
    ra, rb = a.argsort(-1).argsort(-1).double(), b.argsort(-1).argsort(-1).double()
    ra, rb = ra - ra.mean(-1, keepdim=True), rb - rb.mean(-1, keepdim=True)
    return (ra * rb).sum(-1) / (ra.norm(dim=-1) * rb.norm(dim=-1))


def score_tasks(model: Any, n_obs: int, n_features: int, n_tasks: int, max_context: int) -> dict[str, dict[str, float]]:
    """Every rule's scores on `n_tasks` prior functions with `n_obs` observations in `n_features` dimensions."""
    gen = torch.Generator().manual_seed(SEED + 1000 * n_features + n_obs)
    batch = BOPrior().sample(n_tasks, n_obs + N_QUERY, n_features, generator=gen, n_context=n_obs)
    x, y = batch.x.double(), batch.y.double()
    xq, fq = x[:, n_obs:], batch.target_y[:, n_obs:].double()
    scores: dict[str, list[list[float]]] = {name: [[], [], []] for name in RULES}
    for i in range(n_tasks):
        transform = OutcomeTransform(y[i, :n_obs])
        z, zq = transform(y[i, :n_obs]), transform(fq[i])
        near = torch.argsort(fq[i])[:N_QUERY // 4]
        for name, rule in RULES.items():
            idx = torch.arange(n_obs) if rule is None else rule(y[i, :n_obs], max_context,
                                                                  torch.Generator().manual_seed(SEED + i))
            with torch.no_grad():
                dist = model.predict(x[i, idx], z[idx], xq[i])
            nll = -dist.log_prob(zq).double()
            scores[name][0].append(float(nll.mean()))
            scores[name][1].append(float(nll[near].mean()))
            scores[name][2].append(float(spearman(dist.mean[near].double().unsqueeze(0), zq[near].unsqueeze(0))))
    keys = ("nll", "nll_best_quarter", "spearman_best_quarter")
    return {name: {key: sum(v) / len(v) for key, v in zip(keys, values, strict=True)}
            for name, values in scores.items()}


def report(record: dict[str, Any]) -> str:
    lines = [f"# BO PFN past its trained context ({record['max_context']} observations)", "",
             f"`{record['model']}` on held-out `BOPrior` functions (seed {SEED}), {record['tasks']} tasks per row, "
             f"{N_QUERY} uniform-or-crowded queries of the prior each; NLL in nats per query of the noise-free "
             "function in the surrogate's transformed units (lower is better); `best 1/4` = the quarter of the "
             "queries with the lowest true values; rho = Spearman rank correlation of the predictive mean with "
             "the truth there (higher is better).", "",
             "| features, observations | rule | NLL | NLL best 1/4 | rho best 1/4 |", "|---|---|---|---|---|"]
    for row in record["rows"]:
        for name, s in row["scores"].items():
            lines.append(f"| {row['features']}, {row['observations']} | {name} | {s['nll']:.3f} | "
                         f"{s['nll_best_quarter']:.3f} | {s['spearman_best_quarter']:.3f} |")
    lines += ["", "Mean over the rows:", "", "| rule | NLL | NLL best 1/4 | rho best 1/4 |", "|---|---|---|---|"]
    for name, s in record["mean"].items():
        lines.append(f"| {name} | {s['nll']:.3f} | {s['nll_best_quarter']:.3f} | {s['spearman_best_quarter']:.3f} |")
    chosen, every, machine = record["mean"]["best_half+random"], record["mean"]["all"], record["machine"]
    near, rho = "nll_best_quarter", "spearman_best_quarter"
    lines += ["", f"`PFNSurrogate` conditions on `best_half+random` past {record['max_context']} observations: "
              f"near the optimum it has the lowest NLL ({chosen[near]:.3f} against {every[near]:.3f} with every "
              f"observation) and the rank correlation of every observation ({chosen[rho]:.3f} against "
              f"{every[rho]:.3f}); over all queries it pays {chosen['nll'] - every['nll']:.2f} nats against every "
              "observation, which the model reads without a loss up to 800 though it never saw more than "
              f"{record['max_context']} in training.",
              "", f"{record['wall_time_s']:.0f} s on {machine['cpu']} ({machine['torch_threads']} torch thread), "
              f"{machine['date']}.", ""]
    return "\n".join(lines)


def main() -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tasks", type=int, default=24, help="prior functions per (features, observations)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    t0 = time.perf_counter()
    model = pfn.load("bo")
    max_context = int(model.info["train"]["max_context"])
    rows = []
    for n_features in (2, 5, 8):
        for n_obs in OBSERVATIONS:
            scores = score_tasks(model, n_obs, n_features, args.tasks, max_context)
            rows.append({"features": n_features, "observations": n_obs, "scores": scores})
            print(n_features, n_obs, {k: round(v["nll"], 3) for k, v in scores.items()}, flush=True)
    mean = {name: {key: sum(r["scores"][name][key] for r in rows) / len(rows) for key in rows[0]["scores"][name]}
            for name in RULES}
    record = {"model": "bo", "max_context": max_context, "tasks": args.tasks, "seed": SEED, "rows": rows,
              "mean": mean, "wall_time_s": time.perf_counter() - t0, "machine": machine_record()}
    text = report(record)
    print(text)
    write_results("bo_context_limit", record, text)
    return record


if __name__ == "__main__":
    main()

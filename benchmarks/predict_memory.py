"""Peak memory of a large GP-PFN predict and of the statistics of its predictive.

The shipped model "gp" (1000 buckets) is fitted to a 50-point, 2-feature context and
predicts `M` queries; then the predictive's `.mean` and `.stddev` are computed, and then
`.icdf(0.9)`, `.cdf`, `.log_prob` and `.expected_improvement`. Each size runs in a fresh
Python process, which reads its own resident memory from `/proc/self/status`: the baseline
is `VmRSS` after loading the model, drawing the inputs and fitting the context; each stage
reports the peak `VmHWM` so far above that baseline, and its own peak above the resident
memory before it (the peak is reset between stages through `/proc/self/clear_refs`), next to
the size of the `M x K` float32 log-probability table the predictive holds. Target: 1e6
queries plus `.mean` and `.stddev` under 4 GiB of added memory.

    PYTHONPATH=. nice python benchmarks/predict_memory.py
    PYTHONPATH=. python benchmarks/predict_memory.py --sizes 10000   # one quick size
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from results_io import machine_record, write_results  # sibling module: run as `python benchmarks/<name>.py`

REPO = Path(__file__).resolve().parents[1]
SIZES = (10_000, 100_000, 1_000_000)
N_CONTEXT, N_FEATURES = 50, 2
TARGET_GIB = 4.0
GIB = 2**30


def status_kib(field: str) -> int:
    """A `kB` field of `/proc/self/status`, e.g. `VmRSS` (current) or `VmHWM` (peak) resident memory."""
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith(f"{field}:"))


def reset_peak() -> bool:
    """Resets `VmHWM` to the current resident memory (Linux `clear_refs`); False where that is not permitted."""
    try:
        with open("/proc/self/clear_refs", "w") as clear_refs:
            clear_refs.write("5")
    except OSError:
        return False
    return True


def peak_of(stage: Callable[[], Any]) -> tuple[Any, float, float | None, float]:
    """Runs `stage`; returns its result, the process's peak after it (KiB), the stage's own peak
    above the resident memory before it (KiB; None where the peak cannot be reset) and its seconds."""
    before = status_kib("VmRSS")
    reset = reset_peak()
    start = time.perf_counter()
    result = stage()
    seconds = time.perf_counter() - start
    peak = status_kib("VmHWM")
    return result, peak, (peak - before) if reset else None, seconds


def measure(n_queries: int) -> dict[str, Any]:
    """Runs one size in this process; returns added peak memory (GiB) and seconds per stage."""
    import pfn

    model = pfn.load("gp")
    g = torch.Generator().manual_seed(0)
    xc = torch.rand(N_CONTEXT, N_FEATURES, generator=g)
    yc = torch.sin(6.0 * xc).sum(-1) + 0.05 * torch.randn(N_CONTEXT, generator=g)
    xq = torch.rand(n_queries, N_FEATURES, generator=g)
    fitted = model.fit(xc, yc)
    baseline = status_kib("VmRSS")
    best = float(yc.max())

    dist, peak_predict, _, predict_s = peak_of(lambda: fitted.predict(xq))
    (mean, std), peak_mean_std, own_mean_std, mean_std_s = peak_of(lambda: (dist.mean, dist.stddev))
    others, peak_others, own_others, others_s = peak_of(
        lambda: (dist.icdf(0.9), dist.cdf(best), dist.log_prob(mean), dist.expected_improvement(best)))
    if not all(torch.isfinite(t).all() for t in (mean, std, *others)):
        raise RuntimeError("non-finite statistics")
    table = dist.log_probs

    def gib(kib: float | None) -> float | None:
        return None if kib is None else kib * 1024 / GIB

    return {
        "n_queries": n_queries, "n_buckets": table.shape[-1], "table_gib": table.numel() * table.element_size() / GIB,
        "baseline_rss_gib": gib(baseline), "added_gib_predict": gib(peak_predict - baseline),
        "added_gib_mean_std": gib(max(peak_predict, peak_mean_std) - baseline),
        "added_gib_all": gib(max(peak_predict, peak_mean_std, peak_others) - baseline),
        "own_gib_mean_std": gib(own_mean_std), "own_gib_others": gib(own_others),
        "predict_s": predict_s, "mean_std_s": mean_std_s, "others_s": others_s,
    }


def run_child(n_queries: int) -> dict[str, Any]:
    """`measure(n_queries)` in a fresh Python process (so that each peak is its own)."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
    proc = subprocess.run([sys.executable, __file__, "--child", str(n_queries)], capture_output=True, text=True,
                          cwd=REPO, env=env)
    if proc.returncode != 0:
        raise RuntimeError(f"the measurement of {n_queries} queries failed:\n{proc.stderr}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def mib(gib: float | None) -> str:
    return "n/a" if gib is None else f"{gib * 1024:.0f}"


def markdown_report(rows: list[dict[str, Any]], settings: dict[str, Any]) -> str:
    """The results table, the target and the settings as markdown."""
    lines = [
        "# Memory of a large predict and its statistics",
        "",
        f"Model `gp` ({rows[0]['n_buckets']} buckets), {N_CONTEXT} context points, {N_FEATURES} features; each size "
        "in a fresh process. Added memory = peak resident memory (`VmHWM`) minus the resident memory (`VmRSS`) "
        "after loading the model and fitting the context, in GiB; the table is the predictive's `M x K` float32 "
        "log-probabilities. 'all stats' adds `icdf(0.9)`, `cdf`, `log_prob` and `expected_improvement`. "
        "'Own peak': a stage's peak above the resident memory before it (the peak reset with `clear_refs`), "
        "which the predict's transient peak can hide in the cumulative columns.",
        "",
        "| queries | table (GiB) | added: predict | added: + mean, stddev | added: + all stats "
        "| own peak: mean, stddev (MiB) | own peak: other stats (MiB) | predict (s) | mean + stddev (s) "
        "| other stats (s) |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(f"| {r['n_queries']:,} | {r['table_gib']:.3f} | {r['added_gib_predict']:.3f} "
                     f"| {r['added_gib_mean_std']:.3f} | {r['added_gib_all']:.3f} | {mib(r['own_gib_mean_std'])} "
                     f"| {mib(r['own_gib_others'])} | {r['predict_s']:.1f} | {r['mean_std_s']:.2f} "
                     f"| {r['others_s']:.2f} |")
    largest = max(rows, key=lambda r: r["n_queries"])
    met = "yes" if largest["added_gib_mean_std"] < TARGET_GIB else "NO"
    lines += ["", f"Target: {largest['n_queries']:,} queries plus `.mean` and `.stddev` under {TARGET_GIB:g} GiB "
              f"of added memory: {largest['added_gib_mean_std']:.3f} GiB, met: {met}.", "", "## Settings", ""]
    lines += [f"- {key}: {value}" for key, value in settings.items()]
    return "\n".join(lines) + "\n"


def settings_record() -> dict[str, Any]:
    """The machine and versions of the run, and its memory."""
    return {"machine": machine_record(),
            "ram_gib": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / GIB, 1)}


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Measures every size in its own process, prints the table and writes the results; returns the record."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--sizes", type=int, nargs="+", default=list(SIZES), help="query counts (default: 1e4 1e5 1e6)")
    p.add_argument("--child", type=int, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child is not None:
        print(json.dumps(measure(args.child)))
        return {}
    rows = []
    for n in args.sizes:
        rows.append(run_child(n))
        print(json.dumps(rows[-1]), flush=True)
    settings = settings_record()
    report = markdown_report(rows, settings)
    print(report)
    largest = max(rows, key=lambda r: r["n_queries"])
    record = {"rows": rows, "target": {"n_queries": largest["n_queries"], "max_added_gib": TARGET_GIB,
                                       "met": largest["added_gib_mean_std"] < TARGET_GIB}, "settings": settings}
    write_results("predict_memory", record, report)
    return record


if __name__ == "__main__":
    main()

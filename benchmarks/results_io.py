"""Writing a benchmark's results: `benchmarks/results/<stem>.json` and `.md`, with one record of the machine."""

from __future__ import annotations

import contextlib
import datetime
import json
import os
import platform
from pathlib import Path
from typing import Any

import torch

RESULTS_DIR = Path(__file__).resolve().parent / "results"


def write_results(stem: str, record: dict[str, Any], report: str) -> None:
    """Writes `record` as JSON and the markdown `report` under `RESULTS_DIR`, and says where."""
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    (RESULTS_DIR / f"{stem}.json").write_text(json.dumps(record, indent=1) + "\n")
    (RESULTS_DIR / f"{stem}.md").write_text(report)
    print(f"wrote {RESULTS_DIR / stem}.json and .md")


def cpu_model() -> str:
    """The CPU's model name from /proc/cpuinfo, else what `platform` says."""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def machine_record(**versions: str | None) -> dict[str, Any]:
    """The machine and software a benchmark ran on, under the same keys in every benchmark's results
    (`record["machine"]`).

    Args:
        versions: Versions of further packages the benchmark measured, by name (`gpytorch=gpytorch.__version__`).

    Returns:
        `cpu` (model name), `cores` (`os.cpu_count()`), `usable_cores` (this process's CPU affinity),
        `torch_threads`, `gpu` (the CUDA device's name, or None), `platform`, `date` (UTC, ISO 8601),
        `load` (the 1-, 5- and 15-minute load averages, or None where the OS has none) and `versions`
        (python, torch, then `versions`).
    """
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    load = list(os.getloadavg()) if hasattr(os, "getloadavg") else None
    return {"cpu": cpu_model(), "cores": os.cpu_count(), "usable_cores": usable,
            "torch_threads": torch.get_num_threads(),
            "gpu": torch.cuda.get_device_name() if torch.cuda.is_available() else None,
            "platform": platform.platform(),
            "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"), "load": load,
            "versions": {"python": platform.python_version(), "torch": torch.__version__, **versions}}


def describe_machine(machine: dict[str, Any]) -> str:
    """One line for a report from a `machine_record`: CPU, cores, torch threads, GPU, versions, date."""
    gpu = f", GPU {machine['gpu']}" if machine["gpu"] else ""
    versions = ", ".join(f"{name} {version}" for name, version in machine["versions"].items())
    return (f"{machine['cpu']}, {machine['cores']} cores ({machine['usable_cores']} usable), "
            f"{machine['torch_threads']} torch threads{gpu}; {versions}; {machine['date']}")

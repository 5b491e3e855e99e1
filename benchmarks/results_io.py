"""Writing a benchmark's results: `benchmarks/results/<stem>.json` and `.md`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

RESULTS_DIR = Path(__file__).resolve().parent / "results"


def write_results(stem: str, record: dict[str, Any], report: str) -> None:
    """Writes `record` as JSON and the markdown `report` under `RESULTS_DIR`, and says where."""
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    (RESULTS_DIR / f"{stem}.json").write_text(json.dumps(record, indent=1) + "\n")
    (RESULTS_DIR / f"{stem}.md").write_text(report)
    print(f"wrote {RESULTS_DIR / stem}.json and .md")

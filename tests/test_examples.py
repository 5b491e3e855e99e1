"""The examples, the demo and the CLI run end to end (quick modes)."""

import subprocess
import sys
from pathlib import Path

import pytest

from pfn.checkpoint import read_manifest
from pfn.cli import main

ROOT = Path(__file__).resolve().parent.parent
needs_gp = pytest.mark.skipif("gp" not in read_manifest()["models"], reason="pretrained/gp is not shipped")


def test_custom_prior_example_runs_in_quick_mode(tmp_path):
    script = ROOT / "examples" / "custom_prior.py"
    out = subprocess.run([sys.executable, str(script), "--quick", "--out", str(tmp_path)],
                         capture_output=True, text=True, cwd=ROOT, timeout=600)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "exact grid posterior" in out.stdout


@needs_gp
def test_demo_fits_real_signal_and_writes_plot(tmp_path):
    from pfn.demo import run_demo

    result = run_demo(tmp_path)
    assert (tmp_path / "demo_gp.png").stat().st_size > 10_000
    # Petal width has a standard deviation of 0.76 cm; both models explain most of it.
    assert result["rmse_pfn"] < 0.3
    assert result["rmse_pfn"] < 1.25 * result["rmse_gp"]


@needs_gp
def test_list_shows_shipped_model_with_its_training_record(capsys):
    main(["list"])
    text = capsys.readouterr().out
    assert "gp:" in text and "GPPrior" in text and "reproduce: pfn train" in text

"""Packaging: a wheel built from the sources ships the pretrained models, and an ordinary
(non-editable) install of it loads them from outside the repository."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

from pfn.checkpoint import read_manifest

ROOT = Path(__file__).resolve().parent.parent
SOURCES = ("pyproject.toml", "setup.py", "MANIFEST.in", "README.md", "pfn", "priors", "bo", "pretrained")
MAX_WHEEL_BYTES = 30 * 2**20


def run(cmd: list[str], cwd: Path) -> str:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PFN_PRETRAINED_DIR")}
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, f"{' '.join(cmd)} failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-3000:]}"
    return proc.stdout


def build_wheel(tmp_path: Path) -> Path:
    """Builds the wheel from a copy of the sources (the build writes into its source folder)."""
    src = tmp_path / "src"
    src.mkdir()
    for name in SOURCES:
        if (ROOT / name).is_dir():
            shutil.copytree(ROOT / name, src / name, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
        else:
            shutil.copy2(ROOT / name, src / name)
    run([sys.executable, "-m", "pip", "wheel", str(src), "--no-deps", "--no-build-isolation", "-q",
         "-w", str(tmp_path / "dist")], cwd=tmp_path)
    (wheel,) = (tmp_path / "dist").glob("pfn-*.whl")
    return wheel


def test_an_installed_wheel_loads_the_shipped_models_outside_the_repository(tmp_path):
    names = sorted(read_manifest(ROOT / "pretrained")["models"])
    wheel = build_wheel(tmp_path)
    assert wheel.stat().st_size < MAX_WHEEL_BYTES
    with zipfile.ZipFile(wheel) as z:
        files = set(z.namelist())
    assert "pfn/_pretrained/MANIFEST.json" in files
    assert {f"pfn/_pretrained/{name}/model.safetensors" for name in names} <= files
    assert not any(f.startswith(("pretrained/", "tests/")) for f in files)

    # A fresh venv without pip; the wheel goes in with this interpreter's pip. Only afterwards does a
    # .pth file make this environment's packages (torch, ...) importable there, behind the installed pfn.
    venv = tmp_path / "venv"
    run([sys.executable, "-m", "venv", "--without-pip", str(venv)], cwd=tmp_path)
    python = venv / "bin" / "python"
    run([sys.executable, "-m", "pip", "--python", str(python), "install", "--no-deps", "--no-index", "-q",
         str(wheel)], cwd=tmp_path)
    site = Path(run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                    cwd=tmp_path).strip())
    (site / "current_env.pth").write_text(f"{sysconfig.get_paths()['purelib']}\n")

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    script = ("import pfn, pfn.checkpoint as c; "
              f"models = [pfn.load(n) for n in {names!r}]; "
              "print(pfn.__file__); print(c.PRETRAINED_DIR)")
    module, pretrained = run([str(python), "-c", script], cwd=elsewhere).splitlines()
    assert Path(module).is_relative_to(site)
    assert Path(pretrained) == site / "pfn" / "_pretrained"

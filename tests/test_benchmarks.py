"""The benchmark scripts: none shadows a package of ours, none edits `sys.path`, and every one records the
machine it ran on through the one helper beside `write_results` (same keys everywhere)."""

from __future__ import annotations

import ast
import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
BENCHMARKS = ROOT / "benchmarks"
SCRIPTS = sorted(BENCHMARKS.glob("*.py"))
# A benchmark that other work of issue 20 is writing and that still builds its own machine record: adopt
# machine_record there, then drop it from this set.
OWN_MACHINE_RECORD: set[str] = set()



def results_io():
    """`benchmarks/results_io.py`, imported from its file (the scripts import it as a sibling module)."""
    spec = importlib.util.spec_from_file_location("results_io", BENCHMARKS / "results_io.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def tree_of(path: Path) -> ast.Module:
    return ast.parse(path.read_text(), filename=str(path))


def is_sys_path(node: ast.AST) -> bool:
    """Whether `node` is `sys.path` or a subscript of it."""
    node = node.value if isinstance(node, ast.Subscript) else node
    return (isinstance(node, ast.Attribute) and node.attr == "path" and isinstance(node.value, ast.Name)
            and node.value.id == "sys")


def test_no_benchmark_is_named_like_one_of_our_packages():
    assert not {p.stem for p in SCRIPTS} & {"bo", "pfn", "priors"}


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.name)
def test_no_benchmark_edits_sys_path(script):
    for node in ast.walk(tree_of(script)):
        calls = isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and is_sys_path(node.func.value)
        assigns = isinstance(node, ast.Assign | ast.AugAssign) and any(
            is_sys_path(t) for t in (node.targets if isinstance(node, ast.Assign) else [node.target]))
        assert not (calls or assigns), f"{script.name}:{node.lineno} edits sys.path"


def test_the_bo_suite_runs_as_a_script_with_the_bo_package():
    proc = subprocess.run([sys.executable, str(BENCHMARKS / "bo_suite.py"), "--help"], capture_output=True, text=True,
                          cwd=ROOT, timeout=300)
    assert proc.returncode == 0 and "--pfn-model" in proc.stdout, proc.stderr[-2000:]


def writes_a_machine(tree: ast.Module) -> tuple[bool, bool]:
    """Whether a script calls `machine_record`, and whether it reads the machine from `platform` itself."""
    names = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name)}
    attributes = {(n.value.id, n.attr) for n in ast.walk(tree)
                  if isinstance(n, ast.Attribute) and isinstance(n.value, ast.Name)}
    own = bool({("platform", "machine"), ("platform", "processor"), ("os", "cpu_count")} & attributes)
    return "machine_record" in names, own


@pytest.mark.parametrize("script", [p for p in SCRIPTS if p.name not in OWN_MACHINE_RECORD | {"results_io.py"}],
                         ids=lambda p: p.name)
def test_every_benchmark_records_its_machine_with_the_shared_helper(script):
    tree = tree_of(script)
    calls = {n.func.id for n in ast.walk(tree) if isinstance(n, ast.Call) and isinstance(n.func, ast.Name)}
    uses_helper, own = writes_a_machine(tree)
    assert not own, f"{script.name} reads the machine itself: use results_io.machine_record"
    if "write_results" in calls or script.name == "lcpfn_anchor.py":  # the anchor writes its own info.json
        assert uses_helper, f"{script.name} writes results without results_io.machine_record"


def test_the_machine_record_has_the_same_keys_and_one_line():
    io = results_io()
    machine = io.machine_record(numpy="1.0")
    assert set(machine) == {"cpu", "cores", "usable_cores", "torch_threads", "gpu", "platform", "date", "load",
                            "versions"}
    assert list(machine["versions"]) == ["python", "torch", "numpy"]
    line = io.describe_machine(machine)
    assert f"{machine['cores']} cores" in line and "numpy 1.0" in line and "\n" not in line

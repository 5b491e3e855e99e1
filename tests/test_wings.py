"""The engine and its wings: the engine (the top-level modules of `pfn` and `pfn/heads`) never imports a wing,
and a model whose architecture and head a wing provides loads without the wing being imported first."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
WINGS = ("pfn.tabular", "pfn.curves", "pfn.linreg", "pfn.distribution_transformer", "pfn.dist", "pfn.gp", "bo")
ENGINE = sorted([*(ROOT / "pfn").glob("*.py"), *(ROOT / "pfn" / "heads").glob("*.py")])


def imported_modules(tree: ast.Module, inside_functions: bool) -> set[str]:
    """The modules that `tree` imports (`from pfn import x` counts as `pfn.x`); imports inside functions only
    where `inside_functions`."""
    nodes = list(ast.walk(tree)) if inside_functions else [
        n for stmt in tree.body if not isinstance(stmt, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef)
        for n in ast.walk(stmt)]
    found = set()
    for node in nodes:
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            found |= {node.module} | {f"{node.module}.{alias.name}" for alias in node.names}
    return found


def is_wing(module: str) -> bool:
    return any(module == wing or module.startswith(wing + ".") for wing in WINGS)


def test_engine_modules_import_no_wing():
    # `pfn/__init__.py` may re-export a wing's model lazily (its module `__getattr__`), never at import.
    offenders = {}
    for path in ENGINE:
        tree = ast.parse(path.read_text(), filename=str(path))
        wings = sorted(m for m in imported_modules(tree, path.name != "__init__.py") if is_wing(m))
        if wings:
            offenders[str(path.relative_to(ROOT))] = wings
    assert not offenders, f"engine modules import wings: {offenders}"


def test_a_wing_model_loads_without_importing_the_wing_first():
    script = """
import sys
import pfn
from pfn.architectures import architecture_class
wings = lambda: sorted(m for m in sys.modules if m.startswith(("pfn.distribution_transformer", "pfn.dist.")))
assert not wings(), wings()
try:
    architecture_class("no-such-architecture")
except ValueError as e:
    assert "'dist'" in str(e), e  # the wing's declared architecture is listed before it is imported
assert not wings(), wings()
model = pfn.load("dist-gmm")
assert type(model).__name__ == "DistributionTransformer" and type(model).__module__ in wings(), type(model)
assert pfn.DistributionTransformer is type(model)
print("ok")
"""
    proc = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and proc.stdout.strip() == "ok", proc.stderr[-3000:]

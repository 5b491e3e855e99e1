"""The token layouts: a registry by name (`pfn.layouts`) whose classes declare their properties, which hold, and
which share their helpers through `pfn.tokens` instead of borrowing them from each other."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
import torch

from pfn.checkpoint import load, read_manifest
from pfn.config import ModelConfig
from pfn.layouts import LAYOUTS, layout_class, layout_names, layout_properties
from pfn.model import PFN
from pfn.tokens import LayoutProperties

ROOT = Path(__file__).resolve().parent.parent
LAYOUT_MODULES = ("pfn.transformer", "pfn.row_table_transformer", "pfn.feature_transformer")
SOURCES = ("pfn", "bo", "priors", "benchmarks", "examples", "tests")


def tiny_perturbed_pfn(name: str) -> PFN:
    """An untrained tiny PFN of layout `name`, every parameter perturbed (its layers are not identities)."""
    torch.manual_seed(0)
    config = ModelConfig(feature_encoding=name, max_features=5, d_model=16, n_layers=2, n_heads=2, d_ff=32,
                         n_buckets=20)
    model = PFN(config, {"borders": torch.linspace(-3.0, 3.0, 21)})
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.add_(0.1 * torch.randn_like(parameter))
    return model.eval()


def table(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(12, 4, generator=g), torch.randn(12, generator=g), torch.randn(5, 4, generator=g)


def test_every_registered_layout_declares_its_own_properties():
    assert set(LAYOUTS) == {"pad", "pad_standardised", "per_feature"}  # the keys of shipped checkpoints
    for name, cls in LAYOUTS.items():
        # declared on the class itself: a subclass (the standardised row tokens) does not inherit its parent's
        assert isinstance(vars(cls).get("properties"), LayoutProperties), name
        assert layout_properties(name) is cls.properties


def test_layouts_declare_what_they_read():
    assert layout_properties("pad") == LayoutProperties(reads_missing=False, feature_order_invariant=False)
    assert layout_properties("pad_standardised") == LayoutProperties(reads_missing=True, feature_order_invariant=False)
    assert layout_properties("per_feature") == LayoutProperties(reads_missing=True, feature_order_invariant=True)
    assert layout_names(reads_missing=True) == ("pad_standardised", "per_feature")
    assert layout_names(feature_order_invariant=True) == ("per_feature",)
    assert layout_names() == tuple(LAYOUTS)
    with pytest.raises(TypeError, match="reads_missing"):
        layout_names(reads_nan=True)


@pytest.mark.parametrize("name", sorted(LAYOUTS))
def test_declared_properties_hold(name):
    model, properties = tiny_perturbed_pfn(name), layout_properties(name)
    x_context, y_context, x_query = table()
    reference = model.predict(x_context, y_context, x_query).mean
    order = torch.tensor([2, 0, 3, 1])
    permuted = model.predict(x_context[:, order], y_context, x_query[:, order]).mean
    assert torch.allclose(permuted, reference, atol=1e-5) == properties.feature_order_invariant
    x_context[3, 1] = float("nan")
    if properties.reads_missing:
        assert torch.isfinite(model.predict(x_context, y_context, x_query).mean).all()
    else:
        with pytest.raises(ValueError, match=r"NaN values.*\('pad_standardised', 'per_feature'\) read NaN"):
            model.predict(x_context, y_context, x_query)


@pytest.mark.parametrize("bad", ["tokens", "PAD", "per-feature"])
def test_config_refuses_an_unknown_layout_naming_the_known_ones(bad):
    with pytest.raises(ValueError, match=f"feature_encoding '{bad}' is not supported") as info:
        ModelConfig(feature_encoding=bad)
    assert all(repr(name) in str(info.value) for name in LAYOUTS), info.value
    with pytest.raises(ValueError, match="is not supported"):
        ModelConfig.from_dict({"feature_encoding": bad})
    with pytest.raises(ValueError, match="'pad', 'pad_standardised', 'per_feature'"):
        layout_class(bad)


@pytest.mark.parametrize("name", sorted(read_manifest()["models"]))
def test_shipped_checkpoints_build_the_layout_their_config_names(name):
    model = load(name)
    if model.config.architecture == "pfn":
        assert type(model.transformer) is layout_class(model.config.feature_encoding)


def test_nothing_borrows_helpers_from_a_layout_module():
    # Masking, padding, context scaling and the cache come from `pfn.tokens`, the context-attention layer from
    # `pfn.attention`; a layout module is imported only for its layout class (the standardised row tokens subclass
    # the row tokens).
    layout_classes = {cls.__name__ for cls in LAYOUTS.values()}
    borrowed = []
    for path in sorted(p for folder in SOURCES for p in (ROOT / folder).rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if isinstance(node, ast.ImportFrom) and node.module in LAYOUT_MODULES:
                borrowed += [f"{path.relative_to(ROOT)}: {node.module}.{alias.name}" for alias in node.names
                             if alias.name not in layout_classes]
    assert not borrowed, borrowed

"""The registry of token layouts by name: `ModelConfig.feature_encoding` picks the transformer body of a `PFN`.

- `"pad"`: `pfn.transformer.PFNTransformer`, one token per row, features zero-padded and rescaled;
- `"pad_standardised"`: `pfn.row_table_transformer.StandardisedRowTransformer`, one token per row,
  features standardised by the context rows;
- `"per_feature"`: `pfn.feature_transformer.FeatureTokenTransformer`, one token per cell plus one
  per row for its target.

The name is the serialised key (a checkpoint's `config.json` stores it), so it never changes. A
layout is an `nn.Module` class built as `cls(config)` with `forward(x, y_context, context_mask)`,
`encode_context(x_context, y_context, context_mask) -> pfn.tokens.KVCache` and `decode(cache, x_query)`,
and it declares what it does with its inputs as `properties` (a `pfn.tokens.LayoutProperties`) on its
own class. Code that depends on those (which inputs `predict` accepts, which models `pfn.tabular`
takes, whether ensemble members shuffle the features) asks `layout_properties`, never the name.
"""

from __future__ import annotations

from dataclasses import fields

from torch import nn

from pfn.feature_transformer import FeatureTokenTransformer
from pfn.row_table_transformer import StandardisedRowTransformer
from pfn.tokens import LayoutProperties
from pfn.transformer import PFNTransformer

LAYOUTS: dict[str, type[nn.Module]] = {"pad": PFNTransformer, "pad_standardised": StandardisedRowTransformer,
                                       "per_feature": FeatureTokenTransformer}


def layout_class(name: str) -> type[nn.Module]:
    """The layout class registered as `name`; raises a ValueError naming the known layouts."""
    if name not in LAYOUTS:
        raise ValueError(f"feature_encoding {name!r} is not supported; use one of {tuple(LAYOUTS)}")
    return LAYOUTS[name]


def layout_properties(name: str) -> LayoutProperties:
    """The properties that the layout registered as `name` declares; raises a ValueError for an unknown name."""
    return layout_class(name).properties


def layout_names(**properties: bool) -> tuple[str, ...]:
    """The names of the layouts whose declared properties have the given values, in registry order.

    E.g. `layout_names(reads_missing=True)`; without arguments, every layout. Raises a TypeError
    for a property that `LayoutProperties` does not have.
    """
    known = [f.name for f in fields(LayoutProperties)]
    unknown = sorted(set(properties) - set(known))
    if unknown:
        raise TypeError(f"LayoutProperties has no {unknown}; it has {known}")
    return tuple(name for name, cls in LAYOUTS.items()
                 if all(getattr(cls.properties, key) == value for key, value in properties.items()))

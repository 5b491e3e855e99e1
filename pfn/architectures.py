"""The registry of model architectures by name: `ModelConfig.architecture` picks the model class.

An architecture is an `nn.Module` class built as `cls(config, head_state, info)` with the
attributes and methods the training loop and checkpoints use: `config`, `info`, `head` (a
`pfn.heads.Head`), `transformer` (the body, what `init_parts="transformer"` transfers),
`forward(x, y_context, context_mask)`, `batch_loss(outputs, batch)` and `loss(batch)`. It registers
itself with `@register_architecture(name)`; training and loading build every model through
`build_model`, so nothing else branches on the kind. A wing's architecture is declared as an entry
point of group `pfn.architectures` (`pfn.registry`), so the engine finds it without importing the wing.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from torch import nn

from pfn.registry import lookup

if TYPE_CHECKING:
    from pfn.config import ModelConfig

ARCHITECTURES: dict[str, type[nn.Module]] = {}
ENTRY_POINT_GROUP = "pfn.architectures"


def register_architecture(name: str) -> Callable[[type[nn.Module]], type[nn.Module]]:
    """Class decorator: makes a model class selectable by `ModelConfig(architecture=name)`."""
    def register(cls: type[nn.Module]) -> type[nn.Module]:
        ARCHITECTURES[name] = cls
        return cls
    return register


def architecture_class(name: str) -> type[nn.Module]:
    """The model class registered under `name`, or declared by a wing's `pfn.architectures` entry point (its
    module is imported then); raises a ValueError naming the known architectures."""
    return lookup(ARCHITECTURES, ENTRY_POINT_GROUP, "architecture", name)



def build_model(config: ModelConfig, head_state: dict[str, Any] | None = None,
                info: dict[str, Any] | None = None) -> nn.Module:
    """A fresh model of `config.architecture` (e.g. a `PFN` for "pfn") with the head's saved state and `info`."""
    return architecture_class(config.architecture)(config, head_state, info)

"""Registries of named classes (architectures, heads) that the wings fill in from their own modules.

A class registers itself where it is defined, with a decorator (`@register_architecture(name)`,
`@register_head(name)`). The engine never imports a wing: a wing declares its module as a Python
entry point in `pyproject.toml` (group `pfn.architectures` or `pfn.heads`, `name = "module:Class"`),
and `lookup` imports that module the first time a config or checkpoint names it, so loading a
wing's model needs no import of the wing first.
"""

from __future__ import annotations

from importlib.metadata import entry_points
from typing import TypeVar

T = TypeVar("T")


def known_names(registry: dict[str, T], group: str) -> tuple[str, ...]:
    """The names registered in `registry` or declared as entry points of `group`, sorted."""
    return tuple(sorted(set(registry) | {ep.name for ep in entry_points(group=group)}))


def lookup(registry: dict[str, T], group: str, kind: str, name: str) -> T:
    """The class registered as `name`, importing the module of the `group` entry point `name` on a miss.

    Raises:
        ValueError: naming the known names when `name` is neither registered nor declared, or naming
            the entry point when its module did not register `name`.
    """
    if name in registry:
        return registry[name]
    declared = entry_points(group=group, name=name)
    if not declared:
        raise ValueError(f"{kind} {name!r} is not supported; use one of {known_names(registry, group)}")
    for ep in declared:
        ep.load()  # the module registers its class under `name` with its decorator
    if name not in registry:
        raise ValueError(f"the {group!r} entry point {name!r} ({', '.join(ep.value for ep in declared)}) did not "
                         f"register a {kind} {name!r}; its module needs the register decorator with that name")
    return registry[name]

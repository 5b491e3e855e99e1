"""Output heads: map transformer states to predictive distributions, behind one protocol.

A head is an `nn.Module` subclass of `pfn.heads.base.Head`, registered under the name that
`ModelConfig.head` selects. Nothing outside a head's own module branches on its kind: a new
head is one new module with `@register_head("name")`. A wing's head lives in the wing and is declared
as a `pfn.heads` entry point in `pyproject.toml` (the Distribution Transformer's `"gmm"` head:
`pfn.distribution_transformer.head`), so the engine finds it without importing the wing.
"""

from pfn.heads.bar import BarHead
from pfn.heads.base import HEADS, Head, head_class, register_head
from pfn.heads.classification import ClassificationHead

__all__ = ["HEADS", "BarHead", "ClassificationHead", "Head", "head_class", "register_head"]

"""Output heads: map transformer states to predictive distributions, behind one protocol.

A head is an `nn.Module` subclass of `pfn.heads.base.Head`, registered under the name that
`ModelConfig.head` selects. Nothing outside a head's own module branches on its kind: a new
head (say, a Gaussian mixture) is one new module with `@register_head("name")`.
"""

from pfn.heads.bar import BarHead
from pfn.heads.base import HEADS, Head, head_class, register_head
from pfn.heads.classification import ClassificationHead
from pfn.heads.gmm import GMMHead

__all__ = ["HEADS", "BarHead", "ClassificationHead", "GMMHead", "Head", "head_class", "register_head"]

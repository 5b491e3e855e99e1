"""Configuration objects of the PFN: architecture and training."""

from __future__ import annotations

import math
import numbers
from dataclasses import asdict, dataclass, fields
from typing import Any, get_args, get_type_hints

from pfn.architectures import architecture_class
from pfn.heads import head_class
from pfn.layouts import layout_class


class _Config:
    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]):
        known = {f.name for f in fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise ValueError(f"unknown {cls.__name__} fields {sorted(unknown)}; known: {sorted(known)}")
        return cls(**d)

    def _check_fields(self, minimums: dict[str, float]) -> None:
        """Checks the type of every integer, float and boolean field, taking a whole float (60.0) as its
        int, and the lower bounds `minimums` (field name -> smallest value allowed).

        Raises:
            TypeError: naming the field, for a value of another type ("60", or true for a count).
            ValueError: naming the field, for a float that is not whole where a count is wanted (60.5),
                a float that is not finite, or a value below its bound.
        """
        hints = get_type_hints(type(self))
        for f in fields(self):
            name = f"{type(self).__name__}.{f.name}"
            object.__setattr__(self, f.name, _checked_value(name, getattr(self, f.name), hints[f.name]))
        low = [f"{k}={getattr(self, k)} must be >= {bound}" for k, bound in minimums.items()
               if getattr(self, k) is not None and getattr(self, k) < bound]
        if low:
            raise ValueError(f"{type(self).__name__}: {'; '.join(low)}")


def _checked_value(name: str, value: Any, hint: Any) -> Any:
    """`value` of field `name` as its type `hint` (int, float or bool, or None where the hint allows it)
    wants it; values of other hints as they are."""
    kinds = set(get_args(hint)) or {hint}
    if value is None and type(None) in kinds:
        return value
    kinds.discard(type(None))
    if kinds == {bool}:
        if not isinstance(value, bool):
            raise TypeError(f"{name} must be true or false, got {value!r}")
        return value
    if kinds not in ({int}, {float}):
        return value
    what = "a whole number" if kinds == {int} else "a number"
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be {what}, got {value!r} ({type(value).__name__})")
    if kinds == {float}:
        if not math.isfinite(value):
            raise ValueError(f"{name} must be a finite number, got {value!r}")
        return float(value)
    if not isinstance(value, numbers.Integral) and not float(value).is_integer():
        raise ValueError(f"{name} must be a whole number, got {value!r}")
    return int(value)


@dataclass(frozen=True)
class ModelConfig(_Config):
    """Architecture of the PFN transformer.

    `feature_encoding` names a registered token layout (`pfn.layouts`), which declares its
    properties (reads missing values, invariance to feature order) on its class.
    `feature_encoding="pad"` zero-pads inputs to `max_features` and rescales them by
    `sqrt(max_features / n_features)` so that their total scale does not depend on the
    feature count: one token per row. `feature_encoding="per_feature"` gives every cell
    its own token and alternates attention across the features of a row with attention
    across the (context) rows of a feature (`pfn.feature_transformer`); it standardises
    each feature by its context rows and reads NaN as missing. There `max_features` is
    only the largest feature count accepted, not a layer size. `feature_encoding=
    "pad_standardised"` is the row-token model with the per-feature model's input handling:
    features standardised by their context rows, NaN read as missing (`pfn.row_table_transformer`).

    `head` names a registered head (`pfn.heads`): `"bar"` predicts a Riemann distribution
    over `n_buckets` buckets (regression); `"classification"` predicts up to `max_classes`
    classes, and context targets are class indices `0, ..., max_classes - 1` (embedded as
    numbers, like real targets).

    `architecture` names a registered model class (`pfn.architectures`): `"pfn"` is the `PFN`
    above; `"dist"` is the `pfn.distribution_transformer.DistributionTransformer` (head `"gmm"`), which maps a
    Gaussian-mixture prior of at most `max_components` components in at most `max_latent_dim`
    dimensions and linear-Gaussian measurements to the posterior mixture; there `max_features`
    is the width of its tokens, `priors.gmm.token_width(max_latent_dim)`.
    """

    max_features: int = 4
    d_model: int = 256
    n_layers: int = 6
    n_heads: int = 4
    d_ff: int = 512
    n_buckets: int = 1000
    feature_encoding: str = "pad"
    head: str = "bar"
    max_classes: int = 10
    architecture: str = "pfn"
    max_components: int = 4
    max_latent_dim: int = 2

    def __post_init__(self) -> None:
        self._check_fields({"max_features": 1, "d_model": 1, "n_layers": 1, "n_heads": 1, "d_ff": 1, "n_buckets": 3,
                            "max_classes": 2, "max_components": 1, "max_latent_dim": 1})
        if self.d_model % self.n_heads:
            raise ValueError(f"d_model={self.d_model} must be divisible by n_heads={self.n_heads}")
        layout_class(self.feature_encoding)  # raises for an unknown layout, naming the known ones
        head_class(self.head)  # raises for an unknown head
        architecture_class(self.architecture)  # raises for an unknown architecture


INIT_PARTS = ("auto", "all", "transformer", "deepen")


@dataclass(frozen=True)
class TrainConfig(_Config):
    """How to train: optimiser, schedule, batches, precision, checkpoints, initialisation.

    Each step draws `batch_size * accumulate` datasets of `n_points` rows with a feature
    count uniform in `[min_features, max_features]` and a context size uniform in
    `[min_context, max_context]`, drawn once per step, or per dataset with `mixed_context`
    (the batch then pads the shorter contexts: the model trains on datasets of different
    context sizes in one batch); the remaining rows are queries.

    `amp` runs the forward pass under bf16 autocast on the CPU and the GPU alike (fp32 master
    weights and fp32 validation) where the device does bf16 fast: a GPU that supports bf16, a CPU
    with bf16 instructions (AVX512-BF16, AMX or Arm's BF16; `pfn.device.bf16_is_fast`). Elsewhere,
    e.g. on an AVX2-only CPU, where a bf16 step ran about 20x slower than fp32, the run trains in
    fp32 and says so on stderr; the run's record keeps what was used ("amp_used", "amp_reason").
    It is off by default: on a CPU with bf16 it pays only for wide models (measure it; on the
    project's 2 AVX512-BF16 cores, faster at width 256, slower at width 96-128).
    Checkpoints trained before `amp` covered the CPU record `amp: true` but ran in fp32 there.
    `compile` runs the training forward pass through `torch.compile` (dynamic shapes; needs a
    C compiler on the CPU). Its first few dozen steps compile (seconds to tens of seconds each),
    after which a bf16 step of the row-token GP job ran 1.27x faster at width 128 on the
    project's 2 cores and no faster at width 256 (`benchmarks/results/throughput.md`): measure
    it for a config, and use it for runs of thousands of steps.
    A checkpoint is written every `checkpoint_every` steps, the validation NLL computed every
    `val_every` steps on `val_batches` fixed prior batches. Those are drawn with `val_seed`
    (default: `seed + 104729`); a continuation stage with another `seed` sets `val_seed` to its
    source's so that the stages' validation NLLs compare.

    `init_from` starts the run from a trained model: a shipped name (e.g. "gp") or a checkpoint
    or run folder. `init_parts="all"` takes the whole model, head and its state (bucket
    borders) included, and needs the same architecture; `"transformer"` takes only the
    transformer and gives the head a fresh start, e.g. a classifier fine-tuned from a regression
    model that has already learned to read its context; `"auto"` is "all" where the head kind is
    the same and "transformer" otherwise; `"deepen"` takes the whole model into one with more
    layers and otherwise the same architecture: source layer `k` of `L` becomes layer
    `k * L' // L` of `L'`, and the layers between start as identities (a fresh layer's output
    projections are zero), so the deeper model begins with its source's predictions. Either
    way the optimiser and warm-up start afresh, and the source's stages are kept in the new
    checkpoint's record (its lineage).
    """

    steps: int = 1000
    batch_size: int = 64
    accumulate: int = 1
    lr: float = 3e-4
    weight_decay: float = 0.0
    warmup_steps: int = 100
    grad_clip: float = 1.0
    n_points: int = 150
    min_context: int = 1
    max_context: int = 100
    mixed_context: bool = False
    min_features: int = 1
    max_features: int = 4
    seed: int = 0
    amp: bool = False
    compile: bool = False
    device: str = "auto"
    checkpoint_every: int = 500
    val_every: int = 500
    val_batches: int = 8
    val_seed: int | None = None
    border_samples: int = 200_000
    init_from: str | None = None
    init_parts: str = "auto"

    def __post_init__(self) -> None:
        self._check_fields({"steps": 1, "batch_size": 1, "accumulate": 1, "warmup_steps": 0, "checkpoint_every": 1,
                            "val_every": 1, "val_batches": 1, "border_samples": 1, "weight_decay": 0})
        if not 1 <= self.min_context <= self.max_context < self.n_points:
            raise ValueError(f"need 1 <= min_context <= max_context < n_points (at least one query), got min_context="
                             f"{self.min_context}, max_context={self.max_context}, n_points={self.n_points}")
        if not 1 <= self.min_features <= self.max_features:
            raise ValueError(f"need 1 <= min_features <= max_features, got {self.min_features} and {self.max_features}")
        if not self.lr > 0 or not self.grad_clip > 0:
            raise ValueError(f"need lr > 0 and grad_clip > 0, got {self.lr} and {self.grad_clip}")
        if self.init_parts not in INIT_PARTS:
            raise ValueError(f"init_parts={self.init_parts!r} is not one of {INIT_PARTS}")

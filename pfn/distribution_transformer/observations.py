"""Linear-Gaussian observation models, their conversion to scalar measurements, and the stages in which a model
reads more measurements than it was trained on."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from pfn.distribution_transformer.gmm import GMM
from pfn.validation import as_float_tensor

# Stage `j > 0` of a long series holds the observations `[m growth^(j-1), m growth^j)`. A one-off comparison on the
# shipped dist-gmm (64 GMMTaskPrior tasks, one sensor row, mean KL(predicted || exact) at 1000 / 10,000 / 100,000
# observations): growth 10: 0.13 / 0.11 / 0.19 nats; growth 4: 0.17 / 0.19 / 0.32; growth 2: 0.20 / 0.32 / 0.66;
# chunks of m raw observations chained: 0.80 at 1000 (NaN at 10,000); all in one pass: 25 / 792. Growth 10 is
# measured again by benchmarks/dist_long_series.py.
STAGE_GROWTH = 10


class LinearGaussian:
    """Observations `y_i = A z + b + e_i`, `e_i ~ N(0, diag(noise_var))`, independent across `i`.

    Args:
        matrix: `A`, `o x D` (or `B x o x D`, one per task of a batch).
        noise_var: The noise variances: a number (isotropic), `o` (diagonal) or `B x o`.
        offset: `b`: None (zero), `o` or `B x o`.
    """

    def __init__(self, matrix: Any, noise_var: Any, offset: Any = None) -> None:
        cpu = torch.device("cpu")
        self.matrix = as_float_tensor("matrix", matrix, cpu).double()
        if self.matrix.dim() not in (2, 3):
            raise ValueError(f"matrix must be (obs_dim, latent_dim) or (B, obs_dim, latent_dim), got "
                             f"{tuple(self.matrix.shape)}")
        noise = as_float_tensor("noise_var", noise_var, cpu).double()
        if noise.dim() == 0:
            noise = noise.expand(self.obs_dim)
        if noise.shape[-1:] != (self.obs_dim,) or noise.dim() > 2:
            raise ValueError(f"noise_var must be a number, ({self.obs_dim},) or (B, {self.obs_dim}) for a matrix with "
                             f"{self.obs_dim} rows, got {tuple(noise.shape)}")
        if not (noise > 0).all():
            raise ValueError("noise_var must be > 0 (a noise-free observation has no Gaussian likelihood)")
        self.noise_var = noise
        self.offset = None if offset is None else as_float_tensor("offset", offset, cpu).double()
        if self.offset is not None and (self.offset.shape[-1:] != (self.obs_dim,) or self.offset.dim() > 2):
            raise ValueError(f"offset must be ({self.obs_dim},) or (B, {self.obs_dim}), got {tuple(self.offset.shape)}")

    @property
    def obs_dim(self) -> int:
        return self.matrix.shape[-2]

    @property
    def latent_dim(self) -> int:
        return self.matrix.shape[-1]


@dataclass
class Problem:
    """A batch of inference problems "mixture prior + scalar measurements", all float64.

    Attributes:
        prior: The prior with batch shape `(B,)`.
        a: `B x T x D` measurement vectors (rows of `A`, one per scalar measurement).
        noise_var: `B x T` noise variances.
        values: `B x T` measured values minus the offset.
        batched: Whether any input had a batch dimension (else `B = 1` and results are unbatched).
    """

    prior: GMM
    a: torch.Tensor
    noise_var: torch.Tensor
    values: torch.Tensor
    batched: bool


def _batch_size(shapes: dict[str, tuple[int, ...] | None]) -> int:
    sizes = {name: shape[0] for name, shape in shapes.items() if shape is not None}
    if len(set(sizes.values())) > 1:
        raise ValueError(f"batch sizes differ: {sizes}; batched inputs need the same leading dimension B")
    return next(iter(sizes.values()), 1)


def problem(prior: GMM, observations: Any, obs_model: LinearGaussian) -> Problem:
    """Checks a prior, observations and an observation model against each other and flattens the
    observations into scalar measurements (observation `i`, output `j` -> measurement `i * o + j`).

    Args:
        prior: Batch shape `()` or `(B,)`.
        observations: `n x o` (`n` when `o == 1`) or `B x n x o`.
        obs_model: With `obs_model.latent_dim == prior.dim`.

    Raises:
        ValueError: for mismatched dimensions or batch sizes.
    """
    if not isinstance(prior, GMM):
        raise TypeError(f"prior must be a pfn.distribution_transformer.GMM, got {type(prior).__name__}")
    if not isinstance(obs_model, LinearGaussian):
        raise TypeError(f"obs_model must be a pfn.distribution_transformer.LinearGaussian, got "
                        f"{type(obs_model).__name__}")
    o, d = obs_model.obs_dim, obs_model.latent_dim
    if d != prior.dim:
        raise ValueError(f"the observation matrix has {d} columns but the prior has {prior.dim} dimensions")
    y = as_float_tensor("observations", observations, prior.means.device).double()
    if y.dim() == 1 and o == 1:
        y = y.unsqueeze(-1)
    if y.dim() not in (2, 3) or y.shape[-1] != o:
        raise ValueError(f"observations must be (n, {o}) or (B, n, {o}) for an observation matrix with {o} rows, got "
                         f"{tuple(y.shape)}")
    offset = obs_model.offset
    batched = {"prior": tuple(prior.batch_shape) if len(prior.batch_shape) else None,
               "observations": tuple(y.shape) if y.dim() == 3 else None,
               "matrix": tuple(obs_model.matrix.shape) if obs_model.matrix.dim() == 3 else None,
               "noise_var": tuple(obs_model.noise_var.shape) if obs_model.noise_var.dim() == 2 else None,
               "offset": tuple(offset.shape) if offset is not None and offset.dim() == 2 else None}
    b = _batch_size(batched)
    device = prior.means.device
    y = y.expand(b, *y.shape[-2:]) if y.dim() == 2 else y
    n = y.shape[1]
    if offset is not None:
        y = y - offset.to(device).reshape(-1, 1, o)
    a = obs_model.matrix.to(device).expand(b, o, d).unsqueeze(1).expand(b, n, o, d).reshape(b, n * o, d)
    noise = obs_model.noise_var.to(device).expand(b, o).unsqueeze(1).expand(b, n, o).reshape(b, n * o)
    k = prior.n_components
    gmm = GMM.from_scale_tril(prior.log_weights.expand(b, k), prior.means.expand(b, k, d),
                              prior.scale_tril.expand(b, k, d, d))
    return Problem(gmm, a, noise, y.reshape(b, n * o), any(v is not None for v in batched.values()))


def unbatched(gmm: GMM, batched: bool) -> GMM:
    """`gmm` (batch shape `(1,)`) without its batch dimension unless `batched`."""
    if batched:
        return gmm
    return GMM.from_scale_tril(gmm.log_weights[0], gmm.means[0], gmm.scale_tril[0])


@dataclass
class Measurements:
    """Scalar measurements of a batch of tasks (float64): `a` (`B x T x D`), `noise_var` and `values` (`B x T`),
    made of the observations `span = (start, end)` of a `Problem`, one observation (or one group mean of
    observations) per `obs_dim` consecutive measurements."""

    a: torch.Tensor
    noise_var: torch.Tensor
    values: torch.Tensor
    span: tuple[int, int]
    obs_dim: int

    def describe(self, index: int) -> str:
        """Which observations scalar measurement `index` comes from, in words."""
        start, end = self.span
        row, output = divmod(index, self.obs_dim)
        groups = self.values.shape[1] // self.obs_dim
        if groups == end - start:
            return f"observation {start + row}, output {output}"
        return f"output {output} of the mean of group {row} of {groups} of observations {start}..{end - 1}"


def stages(p: Problem, obs_dim: int, max_measurements: int) -> list[Measurements]:
    """The measurements of `p` in stages of at most `max_measurements` scalar measurements each, to be read in turn
    (each stage's posterior the next stage's prior), whose exact posterior is that of all of them at once.

    With `m = max_measurements // obs_dim` observations per stage, the first stage holds observations `[0, m)`
    as they are and stage `j > 0` the observations `[m g^(j-1), m g^j)` (`g = STAGE_GROWTH`), averaged in `m`
    consecutive groups of (nearly) equal size. All observations share the matrix and the noise of their
    `LinearGaussian`, so a group's mean is a sufficient statistic of its observations: one observation with the
    noise variance divided by the group's size. Each stage thus adds about `g - 1` times the information of the
    stages before it, as the model's training tasks did, instead of ever smaller updates whose errors add up.

    Raises:
        ValueError: if one observation (`obs_dim` scalar measurements) exceeds `max_measurements`.
    """
    m = max_measurements // obs_dim
    if m < 1:
        raise ValueError(f"one observation has {obs_dim} outputs but the model was trained on at most "
                         f"{max_measurements} scalar measurements per pass; use fewer outputs per observation")
    b, t, d = p.a.shape
    n = t // obs_dim
    bounds = [0, min(m, n)]
    while bounds[-1] < n:
        bounds.append(min(bounds[-1] * STAGE_GROWTH, n))
    return [grouped(p, obs_dim, start, end, m) for start, end in zip(bounds[:-1], bounds[1:], strict=True)]


def grouped(p: Problem, obs_dim: int, start: int, end: int, n_groups: int) -> Measurements:
    """Observations `[start, end)` of `p` averaged in `min(n_groups, end - start)` consecutive groups whose sizes
    differ by at most one (see `stages`)."""
    b, t, d = p.a.shape
    size = end - start
    groups = min(n_groups, size)
    group = torch.arange(size, device=p.a.device) * groups // size
    counts = torch.bincount(group, minlength=groups).to(p.values.dtype).view(1, groups, 1)
    values = p.values.view(b, -1, obs_dim)[:, start:end]
    means = values.new_zeros(b, groups, obs_dim).index_add_(1, group, values) / counts
    noise = p.noise_var.view(b, -1, obs_dim)[:, start:start + groups] / counts
    a = p.a.view(b, -1, obs_dim, d)[:, start:start + groups]
    return Measurements(a.reshape(b, -1, d), noise.reshape(b, -1), means.reshape(b, -1), (start, end), obs_dim)

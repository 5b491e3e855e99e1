"""Linear-Gaussian observation models and their conversion to scalar measurements."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from pfn.distribution_transformer.gmm import GMM
from pfn.validation import as_float_tensor


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

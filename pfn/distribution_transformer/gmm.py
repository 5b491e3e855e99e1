"""`GMM`: a (batch of) Gaussian mixture(s) in float64, the distribution type of the Distribution Transformer."""

from __future__ import annotations

import math

import torch

from pfn.validation import as_float_tensor

WEIGHT_SUM_TOL = 1e-4  # |sum(weights) - 1| allowed (float32 weights round)
SYMMETRY_TOL = 1e-6  # allowed |cov - cov^T| relative to the largest |cov| entry

__all__ = ["GMM", "gaussian_log_prob", "mixture_log_prob"]


def gaussian_log_prob(z: torch.Tensor, means: torch.Tensor, scale_tril: torch.Tensor,
                      dim_mask: torch.Tensor | None = None) -> torch.Tensor:
    """Log-density of `z` under Gaussians `N(means, L L^T)`, or of the marginal of their leading dimensions.

    Args:
        z: `... x D` points (broadcast against `means`).
        means: `... x D`.
        scale_tril: `... x D x D` lower Cholesky factors with positive diagonals.
        dim_mask: None (all dimensions) or `... x D` bool, True on a leading block of dimensions: the
            density of their marginal (the leading block of `L` is the marginal's Cholesky factor).

    Returns:
        `...` log-densities.
    """
    r = torch.linalg.solve_triangular(scale_tril, (z - means).unsqueeze(-1), upper=False).squeeze(-1)
    terms = -0.5 * (r**2 + math.log(2 * math.pi)) - scale_tril.diagonal(dim1=-2, dim2=-1).log()
    if dim_mask is not None:
        terms = torch.where(dim_mask, terms, terms.new_zeros(()))
    return terms.sum(-1)


def mixture_log_prob(z: torch.Tensor, log_weights: torch.Tensor, means: torch.Tensor, scale_tril: torch.Tensor,
                     dim_mask: torch.Tensor | None = None) -> torch.Tensor:
    """Log-density of `z` (`... x D`) under mixtures (`log_weights`: `... x K`, `means`: `... x K x D`,
    `scale_tril`: `... x K x D x D`); `dim_mask` (`... x D`) as in `gaussian_log_prob`. Returns `...`."""
    mask = None if dim_mask is None else dim_mask.unsqueeze(-2)
    return torch.logsumexp(log_weights + gaussian_log_prob(z.unsqueeze(-2), means, scale_tril, mask), dim=-1)


class GMM:
    """Gaussian mixture(s) `sum_k w_k N(mean_k, cov_k)` with batch shape `()` or `(B,)`, held in float64.

    Args:
        weights: `K` (or `B x K`) non-negative weights summing to one (up to rounding: they are
            renormalised).
        means: `K x D` (or `B x K x D`).
        covs: `K x D x D` (or `B x K x D x D`) symmetric positive-definite covariances.

    Raises:
        ValueError: for inconsistent shapes, non-finite values, weights that are negative or do not
            sum to one, or a covariance that is not symmetric positive definite.
    """

    def __init__(self, weights: torch.Tensor, means: torch.Tensor, covs: torch.Tensor) -> None:
        cpu = torch.device("cpu")
        device = weights.device if isinstance(weights, torch.Tensor) else cpu
        w = as_float_tensor("weights", weights, device).double()
        m = as_float_tensor("means", means, device).double()
        s = as_float_tensor("covs", covs, device).double()
        if w.dim() not in (1, 2) or m.shape[:-1] != w.shape or s.shape != (*m.shape, m.shape[-1]):
            raise ValueError(f"a GMM needs weights (K,), means (K, D) and covs (K, D, D), or each with a leading batch "
                             f"dimension; got {tuple(w.shape)}, {tuple(m.shape)} and {tuple(s.shape)}")
        if w.shape[-1] < 1 or m.shape[-1] < 1:
            raise ValueError("a GMM needs at least one component and one dimension")
        if (w < 0).any() or ((w.sum(-1) - 1).abs() > WEIGHT_SUM_TOL).any():
            raise ValueError(f"GMM weights must be non-negative and sum to 1, got sums {w.sum(-1).tolist()}; "
                             "divide them by their sum")
        if ((s - s.transpose(-1, -2)).abs() > SYMMETRY_TOL * s.abs().amax().clamp_min(1e-300)).any():
            raise ValueError("GMM covs must be symmetric")
        chol, info = torch.linalg.cholesky_ex(s)
        if (info > 0).any():
            bad = torch.nonzero(info.reshape(-1) > 0).flatten().tolist()
            raise ValueError(f"GMM covs at flat indices {bad} are not positive definite (Cholesky failed); every "
                             "covariance needs strictly positive eigenvalues")
        self._init((w / w.sum(-1, keepdim=True)).log(), m, chol)

    def _init(self, log_weights: torch.Tensor, means: torch.Tensor, scale_tril: torch.Tensor) -> None:
        self.log_weights, self.means, self.scale_tril = log_weights, means, scale_tril

    @classmethod
    def from_scale_tril(cls, log_weights: torch.Tensor, means: torch.Tensor, scale_tril: torch.Tensor) -> GMM:
        """A GMM from trusted parameters (no checks): normalised `log_weights` (`... x K`, -inf for an absent
        component), `means` (`... x K x D`) and lower Cholesky factors `scale_tril` (`... x K x D x D`)."""
        gmm = cls.__new__(cls)
        gmm._init(log_weights.double(), means.double(), scale_tril.double())
        return gmm

    @property
    def weights(self) -> torch.Tensor:
        """`... x K`."""
        return self.log_weights.exp()

    @property
    def covs(self) -> torch.Tensor:
        """`... x K x D x D`."""
        return self.scale_tril @ self.scale_tril.transpose(-1, -2)

    @property
    def batch_shape(self) -> torch.Size:
        return self.log_weights.shape[:-1]

    @property
    def n_components(self) -> int:
        return self.log_weights.shape[-1]

    @property
    def dim(self) -> int:
        return self.means.shape[-1]

    @property
    def mean(self) -> torch.Tensor:
        """The mixture's mean, `... x D`."""
        return (self.weights.unsqueeze(-1) * self.means).sum(-2)

    @property
    def cov(self) -> torch.Tensor:
        """The mixture's covariance, `... x D x D` (within- plus between-component)."""
        w = self.weights[..., None, None]
        diff = (self.means - self.mean.unsqueeze(-2)).unsqueeze(-1)
        return (w * (self.covs + diff @ diff.transpose(-1, -2))).sum(-3)

    def log_prob(self, z: torch.Tensor) -> torch.Tensor:
        """Log-density of `z`: `... x D` where `...` ends with the batch shape; returns `...`."""
        z = torch.as_tensor(z, dtype=torch.float64, device=self.means.device)
        if z.shape[-1] != self.dim:
            raise ValueError(f"z has {z.shape[-1]} dimensions but the GMM has {self.dim}")
        return mixture_log_prob(z, self.log_weights, self.means, self.scale_tril)

    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """`n` independent draws, `n x ... x D` (`...` the batch shape)."""
        flat_w = self.weights.reshape(-1, self.n_components)
        pick = torch.multinomial(flat_w, n, replacement=True, generator=generator).T  # n x prod(batch)
        rows = torch.arange(flat_w.shape[0], device=pick.device)
        means = self.means.reshape(-1, self.n_components, self.dim)[rows, pick]
        tril = self.scale_tril.reshape(-1, self.n_components, self.dim, self.dim)[rows, pick]
        eps = torch.randn(*pick.shape, self.dim, 1, generator=generator, dtype=torch.float64, device=pick.device)
        return (means + (tril @ eps).squeeze(-1)).reshape(n, *self.batch_shape, self.dim)

    def marginal(self, n_dims: int) -> GMM:
        """The mixture of the first `n_dims` dimensions."""
        if not 1 <= n_dims <= self.dim:
            raise ValueError(f"n_dims={n_dims} must lie in [1, {self.dim}]")
        return GMM.from_scale_tril(self.log_weights, self.means[..., :n_dims],
                                   self.scale_tril[..., :n_dims, :n_dims])

    def linear_step(self, matrix: torch.Tensor, noise_cov: torch.Tensor | None = None) -> GMM:
        """The mixture of `F z + w`, `w ~ N(0, Q)` independent of `z` (a state-space model's predict step).

        Args:
            matrix: `F`, `D' x D` (or `B x D' x D`).
            noise_cov: `Q`, `D' x D'` (or `B x D' x D'`) positive semi-definite; None for no noise.
                `F cov F^T + Q` must be positive definite.
        """
        f = torch.as_tensor(matrix, dtype=torch.float64, device=self.means.device).unsqueeze(-3)
        if f.shape[-1] != self.dim:
            raise ValueError(f"matrix has {f.shape[-1]} columns but the GMM has {self.dim} dimensions")
        covs = f @ self.covs @ f.transpose(-1, -2)
        if noise_cov is not None:
            covs = covs + torch.as_tensor(noise_cov, dtype=torch.float64, device=covs.device).unsqueeze(-3)
        chol, info = torch.linalg.cholesky_ex(covs)
        if (info > 0).any():
            raise ValueError("F cov F^T + Q is not positive definite; add process noise Q")
        return GMM.from_scale_tril(self.log_weights, (f @ self.means.unsqueeze(-1)).squeeze(-1), chol)

    def describe(self) -> str:
        """One line for an unbatched mixture: `weight x N([mean], sd [per-dimension sd])` per component."""
        if len(self.batch_shape):
            raise ValueError(f"describe needs an unbatched GMM, this one has batch shape {tuple(self.batch_shape)}")

        def vector(values: list[float], fmt: str) -> str:
            return "[" + ", ".join(format(v, fmt) for v in values) + "]"

        sds = self.covs.diagonal(dim1=-2, dim2=-1).sqrt().tolist()
        return " + ".join(f"{w:.2f} x N({vector(m, '+.2f')}, sd {vector(s, '.2f')})"
                          for w, m, s in zip(self.weights.tolist(), self.means.tolist(), sds, strict=True))

    def __repr__(self) -> str:
        return f"GMM(batch_shape={tuple(self.batch_shape)}, n_components={self.n_components}, dim={self.dim})"

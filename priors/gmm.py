"""Gaussian-mixture tasks: a latent `z` drawn from a random Gaussian mixture, observed linearly with noise.

Each task of a `GMMTaskPrior` batch is one inference problem, "prior mixture + observations ->
posterior mixture", whose exact answer is again a Gaussian mixture (`mixture_posterior`).

Token layout of a batch (`x`: `B x N x W`, `W = token_width(max_latent_dim)`, `Dm = max_latent_dim`):

- Context rows `[:n_context]` are scalar measurements `y_t = a_t . z + e_t`, `e_t ~ N(0, s_t^2)`:
  `x[b, t] = [a_t (Dm), s_t, 0, ...]` and `y[b, t] = y_t`. A vector observation of `o` outputs
  (`y_i = A z + e_i`, `A`: `o x Dm`, diagonal noise) is `o` consecutive rows, one per row of `A`;
  with independent noise the two are the same likelihood.
- Query rows `[n_context, n_context + max_components)` are the prior's mixture components:
  `x[b, n_context + k] = [w_k, mean_k (Dm), L_k (Dm (Dm + 1) / 2)]`, `L_k` the lower Cholesky
  factor of the covariance, its entries in row-major order (`torch.tril_indices`). A slot past
  the task's component count has weight 0 (and mean 0, `L = I`). Further query rows are zero.
- A task with latent dimension `D < Dm` is padded: dimensions `D, ..., Dm - 1` have prior mean
  0 and unit variance, independent of the rest, and no measurement sees them (`a_t` is 0 there),
  so their posterior stays N(0, 1) and the marginal of the first `D` dimensions is the task's.
- `y` and `target_y` are 0 at the query rows; the loss scores `meta["latent"]`, not `target_y`.

`meta` (first dimension `B`): `latent` (`B x Dm`, the true `z`, 0 in padded dimensions),
`latent_dim`, `n_components`, `obs_dim` (`B`, int64), `weights` (`B x K`), `means` (`B x K x Dm`),
`covs` (`B x K x Dm x Dm`), `obs_matrix` (`B x max_obs_dim x Dm`), `noise_std` (`B x max_obs_dim`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from priors.batch import Batch
from priors.hyperpriors import (
    DataclassConfig,
    Gamma,
    Hyperprior,
    LogNormal,
    Uniform,
    as_hyperprior,
    check_positive_support,
    check_unit_support,
)
from priors.registry import register_prior


def token_width(max_latent_dim: int) -> int:
    """Features per row of a batch: weight, mean and Cholesky entries of a `max_latent_dim`-dimensional component."""
    return 1 + max_latent_dim + max_latent_dim * (max_latent_dim + 1) // 2


def component_rows(weights: torch.Tensor, means: torch.Tensor, scale_tril: torch.Tensor) -> torch.Tensor:
    """Packs mixture components into rows.

    Args:
        weights: `... x K` component weights (0 marks an absent slot).
        means: `... x K x D`.
        scale_tril: `... x K x D x D` lower Cholesky factors of the covariances.

    Returns:
        `... x K x token_width(D)` rows `[w, mean, tril entries]`.
    """
    d = means.shape[-1]
    rows, cols = torch.tril_indices(d, d, device=means.device)
    return torch.cat([weights.unsqueeze(-1), means, scale_tril[..., rows, cols]], dim=-1)


def split_component_rows(rows: torch.Tensor, dim: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Inverse of `component_rows` for `dim`-dimensional components: weights (`... x K`), means
    (`... x K x dim`) and Cholesky factors (`... x K x dim x dim`) of `rows` (`... x K x W`)."""
    r, c = torch.tril_indices(dim, dim, device=rows.device)
    tril = rows.new_zeros(*rows.shape[:-1], dim, dim)
    tril[..., r, c] = rows[..., 1 + dim:1 + dim + r.numel()]
    return rows[..., 0], rows[..., 1:1 + dim], tril


def measurement_rows(a: torch.Tensor, noise_std: torch.Tensor, width: int) -> torch.Tensor:
    """Packs scalar measurements `y_t = a_t . z + N(0, noise_std_t^2)` into rows `[a_t, noise_std_t, 0...]`.

    Args:
        a: `... x T x D` measurement vectors.
        noise_std: `... x T` noise standard deviations.
        width: Row width (`>= D + 1`).

    Returns:
        `... x T x width`.
    """
    row = torch.cat([a, noise_std.unsqueeze(-1)], dim=-1)
    return torch.nn.functional.pad(row, (0, width - row.shape[-1]))


def mixture_posterior(
    weights: torch.Tensor, means: torch.Tensor, covs: torch.Tensor, a: torch.Tensor, noise_var: torch.Tensor,
    values: torch.Tensor, mask: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Exact posterior of a Gaussian-mixture prior under scalar linear-Gaussian measurements, in float64.

    Every component gets the linear-Gaussian (Kalman) update in information form,
    `P_k = inv(S_k) + J`, `P_k m'_k = inv(S_k) m_k + h` with `J = sum_t a_t a_t^T / r_t` and
    `h = sum_t a_t y_t / r_t`, and its weight is multiplied by the component's marginal likelihood
    of the data, `N(y; A m_k, A S_k A^T + R)`, computed in the latent dimension through the
    determinant lemma.

    Args:
        weights: `B x K` prior weights (0 marks an absent component).
        means: `B x K x D`.
        covs: `B x K x D x D` positive-definite covariances.
        a: `B x T x D` measurement vectors.
        noise_var: `B x T` positive noise variances.
        values: `B x T` measured values.
        mask: None or `B x T` bool, True for a real measurement (the others are ignored).

    Returns:
        Posterior weights (`B x K`), means (`B x K x D`), covariances (`B x K x D x D`) and the log
        marginal likelihood of the measurements (`B`).
    """
    w, m, s = weights.double(), means.double(), covs.double()
    a, values = a.double(), values.double()
    inv_r = 1.0 / noise_var.double()
    if mask is not None:
        inv_r = torch.where(mask, inv_r, inv_r.new_zeros(()))
        values = torch.where(mask, values, values.new_zeros(()))
    n_real = (inv_r > 0).sum(-1)
    info = torch.einsum("bt,bti,btj->bij", inv_r, a, a).unsqueeze(1)  # B x 1 x D x D
    shift = torch.einsum("bt,bti,bt->bi", inv_r, a, values).unsqueeze(1)  # B x 1 x D
    prior_chol = torch.linalg.cholesky(s)
    prior_prec = torch.cholesky_inverse(prior_chol)
    prec = prior_prec + info
    prec_chol = torch.linalg.cholesky(prec)
    post_cov = torch.cholesky_inverse(prec_chol)
    prior_eta = (prior_prec @ m.unsqueeze(-1)).squeeze(-1)
    eta = prior_eta + shift
    post_mean = (post_cov @ eta.unsqueeze(-1)).squeeze(-1)

    def logdet(chol: torch.Tensor) -> torch.Tensor:
        return 2.0 * chol.diagonal(dim1=-2, dim2=-1).log().sum(-1)

    log_lik = -0.5 * (logdet(prior_chol) + logdet(prec_chol) + (m * prior_eta).sum(-1) - (post_mean * eta).sum(-1))
    log_lik = log_lik - 0.5 * (n_real * math.log(2 * math.pi) - torch.where(inv_r > 0, inv_r.log(), 0.0).sum(-1)
                               + (inv_r * values**2).sum(-1)).unsqueeze(-1)
    joint = torch.where(w > 0, w.log() + log_lik, torch.full_like(log_lik, -math.inf))
    evidence = torch.logsumexp(joint, dim=-1)
    return (joint - evidence.unsqueeze(-1)).exp(), post_mean, post_cov, evidence


def batch_posterior(batch: Batch) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The exact posterior mixture of every task of a `GMMTaskPrior` batch (honouring `batch.context_mask`),
    computed from the rows a model reads.

    Returns:
        Weights (`B x K`), means (`B x K x Dm`) and covariances (`B x K x Dm x Dm`), float64.
    """
    c, (k, dm) = batch.n_context, batch.meta["means"].shape[-2:]
    weights, means, chol = split_component_rows(batch.x[:, c:c + k].double(), dm)
    rows = batch.x[:, :c].double()
    post = mixture_posterior(weights, means, chol @ chol.transpose(-1, -2), rows[..., :dm], rows[..., dm] ** 2,
                             batch.y[:, :c], batch.context_mask)
    return post[0], post[1], post[2]


def _dirichlet(concentration: float, mask: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    """Dirichlet(concentration) weights over the True entries of `mask` (`B x K`); 0 elsewhere."""
    g = Gamma(concentration, 1.0).sample(tuple(mask.shape), generator, mask.device).clamp_min(1e-30)
    g = torch.where(mask, g, g.new_zeros(()))
    return g / g.sum(-1, keepdim=True)


def _wishart(batch_shape: tuple[int, ...], dim: int, df: int, generator: torch.Generator | None,
             device: torch.device | str) -> torch.Tensor:
    """`batch_shape x dim x dim` draws from Wishart(df, I / df): the mean of `df` outer products of N(0, I) vectors."""
    g = torch.randn(*batch_shape, df, dim, generator=generator, device=device, dtype=torch.float64)
    return g.transpose(-1, -2) @ g / df


@register_prior
@dataclass(frozen=True)
class GMMTaskPrior(DataclassConfig):
    """Tasks "Gaussian-mixture prior + linear-Gaussian measurements" with their true latent.

    Per task (all drawn independently; see the module docstring for the batch layout):

    - latent dimension `D` uniform in `1..max_latent_dim`; `K` components uniform in
      `1..max_components`; weights Dirichlet(`concentration`, ..., `concentration`);
    - means `N(0, s^2 I)` with the spread `s ~ mean_scale` drawn per task;
    - covariances Wishart with `wishart_df` degrees of freedom and scale `I / wishart_df`: mean
      `I`, the average of `wishart_df` outer products of standard normal vectors. With the default
      `wishart_df=8` in two dimensions 95% of the eigenvalues lie in [0.2, 2.4] and 95% of the
      draws have a condition number below 7, so components are well conditioned;
    - the latent `z` from the mixture;
    - an observation matrix `A` (`o x D`, `o` uniform in `1..max_obs_dim`) with N(0, 1) entries;
      diagonal noise: a base standard deviation `noise_std` per task, and with probability
      `diagonal_noise` each output scales it by its own `exp(0.5 N(0, 1))` (else isotropic);
    - `n_context` scalar measurements `y_t = A[t mod o] . z + e_t` (whole vector observations of
      `o` outputs, the last possibly partial). An offset `y = A z + b + e` needs no prior: it is
      subtracted from `y` before the data reach a model.

    `n_points` must leave `max_components` query rows after the context (`n_points - n_context >=
    max_components`), and `n_features` must be `token_width(max_latent_dim)` (6 for two dimensions).
    """

    max_components: int = 4
    max_latent_dim: int = 2
    max_obs_dim: int = 2
    concentration: float = 1.0
    mean_scale: Hyperprior = Uniform(0.5, 3.0)
    wishart_df: int = 8
    noise_std: Hyperprior = LogNormal(0.0, 0.5)
    diagonal_noise: float = 0.5

    def __post_init__(self) -> None:
        for name in ("mean_scale", "noise_std"):
            object.__setattr__(self, name, as_hyperprior(getattr(self, name)))
            check_positive_support(name, getattr(self, name))
        if min(self.max_components, self.max_latent_dim, self.max_obs_dim) < 1:
            raise ValueError("max_components, max_latent_dim and max_obs_dim must be >= 1, got "
                             f"{self.max_components}, {self.max_latent_dim} and {self.max_obs_dim}")
        if self.concentration <= 0:
            raise ValueError(f"concentration must be > 0, got {self.concentration}")
        if self.wishart_df < self.max_latent_dim:
            raise ValueError(f"wishart_df={self.wishart_df} must be >= max_latent_dim={self.max_latent_dim} "
                             "(else the covariances are singular)")
        check_unit_support("diagonal_noise", as_hyperprior(self.diagonal_noise))

    @property
    def token_width(self) -> int:
        """`n_features` of this prior's batches."""
        return token_width(self.max_latent_dim)

    def sample(
        self, batch_size: int, n_points: int, n_features: int, *,
        generator: torch.Generator | None = None, device: torch.device | str = "cpu",
        n_context: int | None = None,
    ) -> Batch:
        """Draws `batch_size` tasks with `n_context` measurements each (default `n_points - max_components`).

        Returns:
            A `Batch` with `x` (`B x n_points x token_width`), `y` (`B x n_points`) and the `meta`
            of the module docstring.
        """
        b, km, dm, om = batch_size, self.max_components, self.max_latent_dim, self.max_obs_dim
        c = n_points - km if n_context is None else n_context
        if n_features != self.token_width:
            raise ValueError(f"GMMTaskPrior(max_latent_dim={dm}) writes rows of {self.token_width} features; got "
                             f"n_features={n_features} (train with min_features = max_features = {self.token_width})")
        if not 0 <= c <= n_points - km:
            raise ValueError(f"n_context={c} must leave max_components={km} query rows of n_points={n_points}")

        def count(high: int) -> torch.Tensor:
            return torch.randint(1, high + 1, (b,), generator=generator, device=device)

        dims, n_comp, obs_dim = count(dm), count(km), count(om)
        present = torch.arange(km, device=device) < n_comp.unsqueeze(1)  # B x K
        real_dim = torch.arange(dm, device=device) < dims.unsqueeze(1)  # B x Dm
        pair = real_dim.unsqueeze(-1) & real_dim.unsqueeze(-2)  # B x Dm x Dm
        eye = torch.eye(dm, dtype=torch.float64, device=device)

        weights = _dirichlet(self.concentration, present, generator)
        spread = self.mean_scale.sample((b,), generator, device).double()
        means = spread.view(b, 1, 1) * torch.randn(b, km, dm, generator=generator, device=device, dtype=torch.float64)
        covs = _wishart((b, km), dm, self.wishart_df, generator, device)
        means = torch.where(real_dim.unsqueeze(1) & present.unsqueeze(-1), means, 0.0)
        covs = torch.where(pair.unsqueeze(1) & present.view(b, km, 1, 1), covs, eye)  # padded dims: N(0, 1)
        chol = torch.linalg.cholesky(covs)

        pick = torch.multinomial(weights, 1, generator=generator).squeeze(-1)
        eps = torch.randn(b, dm, generator=generator, device=device, dtype=torch.float64)
        arange = torch.arange(b, device=device)
        latent = means[arange, pick] + (chol[arange, pick] @ eps.unsqueeze(-1)).squeeze(-1)
        latent = torch.where(real_dim, latent, 0.0)

        matrix = torch.randn(b, om, dm, generator=generator, device=device, dtype=torch.float64)
        matrix = torch.where(real_dim.unsqueeze(1) & (torch.arange(om, device=device) < obs_dim.unsqueeze(1)
                                                      ).unsqueeze(-1), matrix, 0.0)
        base = self.noise_std.sample((b, 1), generator, device).double()
        jitter = torch.exp(0.5 * torch.randn(b, om, generator=generator, device=device, dtype=torch.float64))
        diagonal = torch.rand(b, 1, generator=generator, device=device) < self.diagonal_noise
        noise_std = base * torch.where(diagonal, jitter, 1.0)

        output = torch.arange(c, device=device).unsqueeze(0) % obs_dim.unsqueeze(1)  # B x C: row of A per slot
        a = matrix[arange.unsqueeze(1), output]  # B x C x Dm
        std = noise_std.gather(1, output)
        values = (a @ latent.unsqueeze(-1)).squeeze(-1)
        values = values + std * torch.randn(b, c, generator=generator, device=device, dtype=torch.float64)

        width = self.token_width
        x = torch.zeros(b, n_points, width, dtype=torch.float64, device=device)
        x[:, :c] = measurement_rows(a, std, width)
        x[:, c:c + km] = component_rows(weights, means, chol)
        y = torch.zeros(b, n_points, dtype=torch.float64, device=device)
        y[:, :c] = values
        meta = {"latent": latent, "latent_dim": dims, "n_components": n_comp, "obs_dim": obs_dim,
                "weights": weights, "means": means, "covs": covs, "obs_matrix": matrix, "noise_std": noise_std}
        meta = {k: v.float() if v.is_floating_point() else v for k, v in meta.items()}
        return Batch(x=x.float(), y=y.float(), target_y=y.float(), n_context=c, meta=meta)


__all__ = ["GMMTaskPrior", "batch_posterior", "component_rows", "measurement_rows", "mixture_posterior",
           "split_component_rows", "token_width"]

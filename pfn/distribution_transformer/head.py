"""The Gaussian-mixture head `"gmm"`: turns component-token states into a refinement of the prior mixture.

It serves the Distribution Transformer (`ModelConfig.architecture="dist"`, `model.py` beside it), which feeds it
one state per prior component. The head registers itself below with `@register_head("gmm")`; the engine
finds this module through the `pfn.heads` entry point in `pyproject.toml` when a checkpoint names the head.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch
from torch import nn
from torch.distributions import Categorical, MixtureSameFamily, MultivariateNormal

from pfn.distribution_transformer.gmm import mixture_log_prob
from pfn.heads.base import Head, register_head
from priors.batch import Batch
from priors.gmm import component_rows, split_component_rows, token_width

if TYPE_CHECKING:
    from pfn.config import ModelConfig

MAX_LOG_SCALE = 10.0  # a residual may rescale a Cholesky diagonal entry by at most exp(+-10)


@register_head("gmm")
class GMMHead(Head):
    """Predicts a posterior mixture as a residual refinement of the prior's components, one per component token.

    Per component `k` (weight `w`, mean `m`, lower Cholesky factor `L` of its covariance, all in the
    standard coordinates of `whitening.py`) the head's raw outputs `r` (`forward`) give

    - weight: `log w' = log_softmax(log w + r_logit)` over the present components;
    - mean: `m' = m + L r_mean` (a shift in units of the component's own scale);
    - factor: `L'_ii = L_ii exp(r_diag_i)` and `L'_ij = L'_jj (L_ij / L_jj + r_ij)` below the
      diagonal (each column's shape relative to its diagonal entry).

    The projection is zero-initialised, so an untrained head returns the prior exactly.

    The model's outputs (the "logits" that `loss` and `parameters_of` take) are the posterior
    mixture, `B x K x P` float64 rows in the layout of `priors.gmm.component_rows`
    (`P = token_width(max_latent_dim)`) with the normalised log-weight (-inf for an absent slot)
    in place of the weight. A training batch needs `meta["latent"]` (`B x Dm`) and
    `meta["latent_dim"]` (`B`): the loss is the negative log-density of the true latent under the
    marginal of the predicted mixture over the task's `latent_dim` leading dimensions.
    """

    def __init__(self, d_model: int, latent_dim: int) -> None:
        super().__init__()
        self.latent_dim = latent_dim
        self.proj = nn.Linear(d_model, token_width(latent_dim))
        nn.init.zeros_(self.proj.weight)
        nn.init.zeros_(self.proj.bias)

    @classmethod
    def build(cls, config: ModelConfig, state: dict[str, Any] | None) -> GMMHead:
        if config.architecture != "dist":
            raise ValueError(f"head 'gmm' refines a prior mixture that only architecture='dist' provides, got "
                             f"architecture={config.architecture!r}")
        if state:
            raise ValueError(f"a gmm head has no saved state, got {sorted(state)}")
        return cls(config.d_model, config.max_latent_dim)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        """Raw residuals (`B x K x P`) of component states `h` (`B x K x d_model`)."""
        return self.proj(h)

    def refine(self, log_weights: torch.Tensor, means: torch.Tensor, scale_tril: torch.Tensor,
               residual: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The posterior components (float64) of prior components and raw residuals.

        Args:
            log_weights: `B x K` prior log-weights, -inf for an absent slot.
            means: `B x K x D`.
            scale_tril: `B x K x D x D` lower Cholesky factors.
            residual: `B x K x P`, from `forward`.

        Returns:
            Normalised log-weights (`B x K`), means (`B x K x D`) and lower Cholesky factors (`B x K x D x D`).
            An absent slot (or a component whose weight underflowed to 0 in a chained posterior) is returned
            unchanged, so chaining never drifts it towards overflow.
        """
        d = self.latent_dim
        r = torch.where(torch.isneginf(log_weights).unsqueeze(-1), 0.0, residual.double())
        log_w = torch.log_softmax(log_weights + r[..., 0], dim=-1)
        means = means + (scale_tril @ r[..., 1:1 + d].unsqueeze(-1)).squeeze(-1)
        diag = scale_tril.diagonal(dim1=-2, dim2=-1)
        new_diag = diag * r[..., 1 + d:1 + 2 * d].clamp(-MAX_LOG_SCALE, MAX_LOG_SCALE).exp()
        rows, cols = torch.tril_indices(d, d, offset=-1, device=r.device)
        shift = r.new_zeros(*r.shape[:-1], d, d)
        shift[..., rows, cols] = r[..., 1 + 2 * d:]
        shape = scale_tril / diag.unsqueeze(-2) + shift  # unit diagonal: column j divided by L_jj
        return log_w, means, shape * new_diag.unsqueeze(-2)

    def pack(self, log_weights: torch.Tensor, means: torch.Tensor, scale_tril: torch.Tensor) -> torch.Tensor:
        """The output rows (`B x K x P`) of a posterior mixture."""
        return component_rows(log_weights, means, scale_tril)

    def task_of_batch(self, batch: Batch) -> dict[str, Any]:
        missing = [k for k in ("latent", "latent_dim") if k not in batch.meta]
        if missing:
            raise KeyError(f"a gmm batch needs meta['latent'] (B x Dm) and meta['latent_dim'] (B); missing {missing}")
        return {"latent": batch.meta["latent"], "latent_dim": batch.meta["latent_dim"]}

    def parameters_of(self, logits: torch.Tensor, **task: Any) -> torch.Tensor:
        """The posterior rows themselves (`... x K x P`, float64)."""
        return logits.double()

    def n_parameters(self, **task: Any) -> int:
        return token_width(self.latent_dim)

    def distribution(self, params: torch.Tensor, **task: Any) -> MixtureSameFamily:
        """The mixture (batch shape `params.shape[:-2]`, event `max_latent_dim`) of posterior rows `params`
        (`... x K x P`); `GMM.from_scale_tril(*split_component_rows(params, D))` gives the same mixture as a
        `GMM`."""
        log_w, means, tril = split_component_rows(params.double(), self.latent_dim)
        return MixtureSameFamily(Categorical(logits=log_w, validate_args=False),
                                 MultivariateNormal(means, scale_tril=tril, validate_args=False),
                                 validate_args=False)

    def loss(self, logits: torch.Tensor, batch: Batch) -> torch.Tensor:
        """Negative log-density (`B x 1`) of `meta["latent"]` under the predicted mixture's marginal over each
        task's `latent_dim` leading dimensions."""
        task = self.task_of_batch(batch)
        log_w, means, tril = split_component_rows(logits.double(), self.latent_dim)
        dims = torch.arange(self.latent_dim, device=logits.device) < task["latent_dim"].unsqueeze(-1)
        return -mixture_log_prob(task["latent"].double(), log_w, means, tril, dims).unsqueeze(-1)

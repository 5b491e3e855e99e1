"""`DistributionTransformer`: a Gaussian-mixture prior and linear-Gaussian data in, the posterior mixture out.

The prior's components are tokens (log-weight, mean, Cholesky entries); every layer lets them
attend to each other and to the measurement tokens (each embeds one scalar measurement with its
row of the observation matrix and its noise, so the model knows the likelihood), then applies an
MLP. The `GMMHead` (`head.py`) reads each component's state as a residual refinement of that
component, zero at initialisation: an untrained model returns its prior. Everything runs in the
prior's standard coordinates (`whitening.py`), so one model serves priors of any location
and scale; whitening, the refinement and the way back are float64.

It registers itself below as `architecture="dist"` (declared as an entry point in `pyproject.toml`, so
`pfn.load` finds it without this wing being imported first): `pfn.train` trains it on `priors.GMMTaskPrior` batches
(token layout in `priors.gmm`), checkpoints and `pfn.load` rebuild it, and `posterior(prior,
observations, obs_model)` is the user-facing call.
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn

from pfn.architectures import register_architecture
from pfn.attention import attention
from pfn.config import ModelConfig
from pfn.distribution_transformer.gmm import GMM
from pfn.distribution_transformer.observations import LinearGaussian, Measurements, problem, stages, unbatched
from pfn.distribution_transformer.whitening import Whitening
from pfn.heads import head_class
from pfn.tokens import zero_padding
from priors.batch import Batch
from priors.gmm import component_rows, measurement_rows, split_component_rows, token_width

MIN_LOG_WEIGHT = -20.0  # log-weights below are read as this value (the weight itself is kept exactly)
# Standardised prior-predictive residuals (`Whitening.residuals`) beyond which `posterior` refuses a measurement: in
# 65,536 dist-gmm training tasks of 100 measurements the largest was 6.0 (per task: 99% within 3.8, 99.9% within 4.4).
# The model's error grows well before: on the README example the KL to the exact posterior of one reading is 0.03
# nats at 0, 0.8-2.3 at 3, 6-9 at 4, 19-22 at 5 and 38-43 at 6 standard deviations.
MAX_RESIDUAL = 6.0


def component_features(log_weights: torch.Tensor, means: torch.Tensor, scale_tril: torch.Tensor,
                       n_measurements: torch.Tensor) -> torch.Tensor:
    """Input features (`B x K x (2 + 2D + D(D-1)/2)`) of components in standard coordinates: log-weight, mean,
    log of the Cholesky diagonal, below-diagonal entries relative to their column's diagonal entry, and
    `log(1 + n)` of the task's measurement count `n_measurements` (`B`)."""
    d = means.shape[-1]
    diag = scale_tril.diagonal(dim1=-2, dim2=-1)
    rows, cols = torch.tril_indices(d, d, offset=-1, device=means.device)
    count = torch.log1p(n_measurements.double()).view(-1, 1, 1).expand(*log_weights.shape, 1)
    return torch.cat([log_weights.clamp_min(MIN_LOG_WEIGHT).unsqueeze(-1), means, diag.log(),
                      (scale_tril / diag.unsqueeze(-2))[..., rows, cols], count], dim=-1)


def measurement_features(a: torch.Tensor, values: torch.Tensor) -> torch.Tensor:
    """Input features (`B x T x (2 + 4D + D(D+1))`) of whitened measurements (`a`: `B x T x D`, `values`:
    `B x T`, likelihood `N(values; a . u, 1)`): `a`, the value, and the per-measurement sufficient
    statistics `a a^T` (lower triangle) and `a * value`, each scaled by 1/10 and through `asinh`."""
    d = a.shape[-1]
    rows, cols = torch.tril_indices(d, d, device=a.device)
    stats = torch.cat([(a.unsqueeze(-1) * a.unsqueeze(-2))[..., rows, cols], a * values.unsqueeze(-1)], dim=-1)
    return torch.cat([a, values.unsqueeze(-1), 0.1 * stats, torch.asinh(stats)], dim=-1)


def _n_component_features(d: int) -> int:
    return 2 + 2 * d + d * (d - 1) // 2


def _n_measurement_features(d: int) -> int:
    return 1 + d + 2 * (d * (d + 1) // 2 + d)


class Attention(nn.Module):
    """Multi-head attention of query states to keys and values; the output projection starts at zero."""

    def __init__(self, d_model: int, n_heads: int) -> None:
        super().__init__()
        self.n_heads = n_heads
        self.to_q = nn.Linear(d_model, d_model)
        self.out = nn.Linear(d_model, d_model)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    def forward(self, h: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        """Attention output (`B x N x D`) of states `h` (`B x N x D`) over keys and values `k`, `v` (`B x heads x S x
        d_head`, see `split_heads`); `mask`: None or `B x S` bool, True for a key that may be attended to."""
        q = split_heads(self.to_q(h), self.n_heads)
        o = attention(q, k, v, None if mask is None else mask[:, None, None, :])
        return self.out(rearrange(o, "b h n d -> b n (h d)"))


def split_heads(t: torch.Tensor, n_heads: int) -> torch.Tensor:
    """`B x S x (heads d)` -> `B x heads x S x d`."""
    return rearrange(t, "b s (h d) -> b h s d", h=n_heads)


class ComponentLayer(nn.Module):
    """Pre-norm layer of the component tokens: self-attention among them, cross-attention to the
    measurement tokens, MLP; each branch starts at zero, so the layer starts as the identity."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.n_heads = cfg.n_heads
        self.norm_self, self.norm_cross, self.norm_mlp = (nn.LayerNorm(cfg.d_model) for _ in range(3))
        self.self_kv = nn.Linear(cfg.d_model, 2 * cfg.d_model)
        self.self_attn = Attention(cfg.d_model, cfg.n_heads)
        self.cross_attn = Attention(cfg.d_model, cfg.n_heads)
        self.mlp = nn.Sequential(nn.Linear(cfg.d_model, cfg.d_ff), nn.GELU(), nn.Linear(cfg.d_ff, cfg.d_model))
        nn.init.zeros_(self.mlp[-1].weight)
        nn.init.zeros_(self.mlp[-1].bias)

    def forward(self, h: torch.Tensor, present: torch.Tensor, memory: tuple[torch.Tensor, torch.Tensor],
                context_mask: torch.Tensor | None) -> torch.Tensor:
        """Updated component states (`B x K x D`); `present` (`B x K`) marks real components, `memory` holds the
        keys and values of the measurement tokens (`B x heads x T x d_head` each) and `context_mask` (None or
        `B x T`) the real ones."""
        x = self.norm_self(h)
        k, v = (split_heads(t, self.n_heads) for t in self.self_kv(x).chunk(2, dim=-1))
        h = h + self.self_attn(x, k, v, present)
        h = h + self.cross_attn(self.norm_cross(h), *memory, context_mask)
        return h + self.mlp(self.norm_mlp(h))


class MixtureTransformer(nn.Module):
    """The body: embeds component and measurement features, runs the `ComponentLayer`s, returns component states.

    The measurement tokens are encoded once (a per-token MLP: the data enter only through them, so
    the output cannot depend on their order), and their keys and values are shared by every
    layer's cross-attention: the costly part, one projection of up to `B x T` tokens per step, is
    done once rather than once per layer; each layer still asks its own queries.
    """

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        d = cfg.max_latent_dim
        self.n_heads = cfg.n_heads
        self.component_in = nn.Linear(_n_component_features(d), cfg.d_model)
        self.measurement_in = nn.Sequential(nn.Linear(_n_measurement_features(d), cfg.d_ff), nn.GELU(),
                                            nn.Linear(cfg.d_ff, cfg.d_model), nn.LayerNorm(cfg.d_model))
        self.memory_kv = nn.Linear(cfg.d_model, 2 * cfg.d_model)
        self.layers = nn.ModuleList(ComponentLayer(cfg) for _ in range(cfg.n_layers))
        self.norm_out = nn.LayerNorm(cfg.d_model)

    def forward(self, components: torch.Tensor, present: torch.Tensor, measurements: torch.Tensor,
                context_mask: torch.Tensor | None = None) -> torch.Tensor:
        """States (`B x K x d_model`) of component features `components` (`B x K x Fc`, `present`: `B x K`
        bool) given measurement features `measurements` (`B x T x Fm`, `context_mask`: None or `B x T`)."""
        h = self.component_in(components)
        kv = self.memory_kv(self.measurement_in(measurements)).chunk(2, dim=-1)
        memory = (split_heads(kv[0], self.n_heads), split_heads(kv[1], self.n_heads))
        for layer in self.layers:
            h = layer(h, present, memory, context_mask)
        return self.norm_out(h)


@register_architecture("dist")
class DistributionTransformer(nn.Module):
    """Gaussian-mixture prior + linear-Gaussian observations -> Gaussian-mixture posterior, in one forward pass.

    Args:
        config: `architecture="dist"`, `head="gmm"`, `max_features = token_width(max_latent_dim)`;
            `max_components` and `max_latent_dim` bound the priors it takes.
        head_state: None (the gmm head has no state).
        info: Free-form metadata kept in the checkpoint (prior config, training record).
    """

    def __init__(self, config: ModelConfig, head_state: dict[str, Any] | None = None,
                 info: dict[str, Any] | None = None) -> None:
        super().__init__()
        width = token_width(config.max_latent_dim)
        if config.head != "gmm" or config.max_features != width:
            raise ValueError(f"architecture 'dist' needs head='gmm' and max_features={width} (the token width for "
                             f"max_latent_dim={config.max_latent_dim}), got head={config.head!r} and "
                             f"max_features={config.max_features}")
        self.config = config
        self.info = dict(info or {})
        self.transformer = MixtureTransformer(config)
        self.head = head_class(config.head).build(config, head_state)

    @property
    def device(self) -> torch.device:
        return next(self.head.parameters()).device

    def forward(self, x: torch.Tensor, y_context: torch.Tensor,
                context_mask: torch.Tensor | None = None) -> torch.Tensor:
        """The posterior mixtures (`B x K x P` float64 rows, see `GMMHead`) of a batch in the layout of
        `priors.gmm`: measurements `x[:, :C]` with values `y_context` (`B x C`, `context_mask`: None or
        `B x C` bool), prior components `x[:, C:C + K]`, `K = config.max_components`."""
        c, k, d = y_context.shape[1], self.config.max_components, self.config.max_latent_dim
        if x.shape[-1] != token_width(d) or x.shape[1] < c + k:
            raise ValueError(f"x must be B x N x {token_width(d)} with N >= C + {k} (measurements, then the prior's "
                             f"{k} component slots), got {tuple(x.shape)} with C={c}")
        weights, means, tril = split_component_rows(x[:, c:c + k].double(), d)
        present = weights > 0
        white = Whitening.of(weights / weights.sum(-1, keepdim=True), means, tril)
        means_u, tril_u = white.components(means, tril)
        log_w = torch.where(present, weights.log(), -math.inf)
        rows = x[:, :c].double()
        real = torch.ones_like(y_context, dtype=torch.bool) if context_mask is None else context_mask
        noise_std = torch.where(real, rows[..., d], 1.0)
        a_u, y_u = white.measurements(rows[..., :d], noise_std, y_context.double())
        dtype = self.head.proj.weight.dtype
        h = self.transformer(component_features(log_w, means_u, tril_u, real.sum(-1)).to(dtype), present,
                             zero_padding(measurement_features(a_u, y_u), context_mask).to(dtype), context_mask)
        log_w, means_u, tril_u = self.head.refine(log_w, means_u, tril_u, self.head(h))
        return self.head.pack(log_w, *white.restore(means_u, tril_u))

    def batch_loss(self, outputs: torch.Tensor, batch: Batch) -> torch.Tensor:
        """Mean negative log-density (scalar) of the batch's true latents under `outputs` (from `forward`)."""
        return self.head.loss(outputs, batch).mean()

    def loss(self, batch: Batch) -> torch.Tensor:
        """Mean negative log-density (scalar) of the batch's true latents under the predicted posteriors."""
        return self.batch_loss(self(batch.x, batch.y[:, :batch.n_context], batch.context_mask), batch)

    @property
    def max_measurements(self) -> int | None:
        """The most scalar measurements the model read in one training task (`info["train"]["max_context"]`), None
        for a model without a training record."""
        return self.info.get("train", {}).get("max_context")

    def posterior(self, prior: GMM, observations: Any, obs_model: LinearGaussian) -> GMM:
        """The predicted posterior of `z ~ prior` given `observations` `y_i = A z + b + e_i`.

        What the model was not trained on is handled or refused:

        - More scalar measurements (`n * o`) than the `max_measurements` of one training task (100 for the
          shipped dist-gmm): they are read in stages of at most that many (`observations.stages`), each
          stage's posterior the next one's prior (a model without a training record reads all of them in one
          pass); the first stage takes observations as they are, each later one about nine times the
          observations before it, averaged in groups (a group's mean is a sufficient statistic, so the exact
          posterior is unchanged). Shipped dist-gmm, 64 prior tasks (`benchmarks/dist_long_series.py`): mean
          KL to the exact posterior 0.13 / 0.14 / 0.20 nats at 1000 / 10,000 / 100,000 readings, where one pass
          gave 24 / 786.
        - A measurement (or, in a later stage, a group's mean) farther than `MAX_RESIDUAL` = 6 standard
          deviations of the prior predictive from its predicted value (`|y - a . mean| > 6 sqrt(a^T cov a +
          s^2)`, `mean` and `cov` the moments of the prior mixture, or of the stage's prior): a ValueError
          (the training tasks never went beyond 6.0). The error grows well before: 0.8-2.3 nats of KL to the
          exact posterior at 3 standard deviations, 6-9 at 4 (README example). Widen the prior so that it
          expects such values, or use `exact_posterior`.

        Args:
            prior: A `GMM` (batch shape `()` or `(B,)`) of at most `config.max_components` components in
                at most `config.max_latent_dim` dimensions. A posterior can be the next call's prior.
            observations: `n x o` (`n` when `o == 1`) or `B x n x o`, any `n`.
            obs_model: The `LinearGaussian` observation model.

        Returns:
            The posterior `GMM` with the prior's components and dimensions (batched if any input was).

        Raises:
            ValueError: for inputs that do not fit each other or the model, and for measurements outside the
                trained range (above).
        """
        p = problem(prior, observations, obs_model)
        k, d = prior.n_components, prior.dim
        km, dm = self.config.max_components, self.config.max_latent_dim
        if k > km or d > dm:
            raise ValueError(f"the prior has {k} components in {d} dimensions but this model supports at most {km} "
                             f"components in at most {dm} dimensions")
        if p.a.shape[1] == 0:
            return unbatched(p.prior, p.batched)
        limit = self.max_measurements or p.a.shape[1]
        belief = p.prior
        for stage in stages(p, obs_model.obs_dim, limit):
            check_residuals(belief, stage)
            belief = self.update(belief, stage)
        return unbatched(belief, p.batched)

    def update(self, prior: GMM, measurements: Measurements) -> GMM:
        """The predicted posterior (batch shape `(B,)`) of `prior` (batch shape `(B,)`, `K <= max_components`
        components in `D <= max_latent_dim` dimensions) given `measurements` (`B x T x D`), in one forward pass."""
        k, d = prior.n_components, prior.dim
        km, dm = self.config.max_components, self.config.max_latent_dim
        b = measurements.a.shape[0]
        weights = F.pad(prior.weights, (0, km - k))
        means = F.pad(prior.means, (0, dm - d, 0, km - k))
        tril = torch.eye(dm, dtype=torch.float64).repeat(b, km, 1, 1)
        tril[:, :k, :d, :d] = prior.scale_tril
        x = torch.cat([measurement_rows(F.pad(measurements.a, (0, dm - d)), measurements.noise_var.sqrt(),
                                        token_width(dm)),
                       component_rows(weights, means, tril)], dim=1)
        with torch.no_grad():
            out = self(x.to(self.device), measurements.values.to(self.device)).cpu()
        return GMM.from_scale_tril(*split_component_rows(out[:, :k], dm)).marginal(d)


def check_residuals(prior: GMM, measurements: Measurements) -> None:
    """Raises a ValueError if a measurement lies farther than `MAX_RESIDUAL` prior predictive standard deviations
    from its predicted value under `prior` (batch shape `(B,)`; see `Whitening.residuals`)."""
    white = Whitening.of(prior.weights, prior.means, prior.scale_tril)
    z = white.residuals(measurements.a, measurements.noise_var.sqrt(), measurements.values).abs()
    if z.max() > MAX_RESIDUAL:
        task, t = divmod(int(z.argmax()), z.shape[1])
        raise ValueError(f"{measurements.describe(t)} (task {task} of the batch) lies {float(z.max()):.3g} "
                         f"standard deviations of the prior predictive from its predicted value; the model was trained "
                         f"on measurements within {MAX_RESIDUAL:g} (|y - a . mean| <= {MAX_RESIDUAL:g} sqrt(a^T cov "
                         f"a + noise_var), mean and cov the prior mixture's) and is not reliable beyond; widen the "
                         f"prior so that it expects such values, or use exact_posterior")

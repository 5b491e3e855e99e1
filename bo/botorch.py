"""`PFNModel`: a bar-head PFN as a BoTorch `Model`, with joint q-batch posteriors.

BoTorch's Monte-Carlo acquisition functions (qLogEI, qLogNEI, qUCB, ...) need joint samples of
the objective at the `q` points of a batch. A PFN gives only marginals `p(y(x) | D)`; sampling
each point's marginal independently ignores that nearby points of one batch move together, so
a q-batch acquisition would prize batches of near-duplicates. `PFNPosterior` samples the joint
by the chain rule instead: `y_1 ~ p(y(x_1) | D)`, then `y_2 ~ p(y(x_2) | D, (x_1, y_1))`, and so
on, each conditional one forward pass of the PFN with the earlier draws appended to its context
(fantasies). Draws are reparameterised through the bar distribution's inverse CDF, which is
differentiable in the network's outputs, so gradients reach the candidates.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from botorch.models.model import Model
from botorch.posteriors import Posterior
from botorch.sampling.base import MCSampler
from botorch.sampling.get_sampler import GetSampler
from botorch.sampling.normal import SobolQMCNormalSampler
from torch import Tensor

from bo.surrogates.pfn import PFNSurrogate
from pfn.model import PFN
from pfn.riemann import RiemannDistribution


class PFNModel(Model):
    """A BoTorch `Model` backed by a PFN with a bar head (by default the shipped BO model "bo").

    The PFN is conditioned on `(train_X, train_Y)` once (its context is encoded and cached), with
    `Y` standardised and Yeo-Johnson-transformed as in `bo.surrogates.PFNSurrogate`; BoTorch
    maximises `Y` as given, so no sign is flipped anywhere. `posterior(X)` is a `PFNPosterior`:
    exact marginals, and joint samples over each q-batch by sequential fantasies (module
    docstring). The cost of a joint sample grows with `q`: every point after the first
    re-encodes the context with the earlier draws appended, once per MC sample and t-batch.

    How this differs from BoTorch's community adapter (`botorch_community/models/prior_fitted_network.py`
    in pytorch/botorch, read at commit 972751c): that `PFNModel` returns one bucket distribution
    per point and raises for `q > 1`, so q-batch acquisitions (and qLogNEI, which evaluates the
    baseline and the candidates jointly) cannot run on it; its batch-first branch also passes
    `train_X` where `train_Y` belongs. Here any `q` works and the `q` draws are joint, each
    conditioned on the earlier ones.

    Args:
        train_X: An `n x d` tensor of inputs in the unit cube.
        train_Y: An `n x 1` tensor of observations (one output).
        model: A `PFN` with a bar head, or a shipped name or checkpoint folder (default "bo").
        power_transform: Yeo-Johnson-transform `Y` before standardising it.
    """

    def __init__(self, train_X: Tensor, train_Y: Tensor, model: PFN | str | Path = "bo",
                 power_transform: bool = True) -> None:
        super().__init__()
        if train_X.dim() != 2 or train_X.shape[0] < 1:
            raise ValueError(f"train_X must be an n x d tensor with n >= 1, got shape {tuple(train_X.shape)}")
        if train_Y.dim() != 2 or train_Y.shape[0] != train_X.shape[0]:
            raise ValueError(f"train_Y must be an n x 1 tensor with n = {train_X.shape[0]} (train_X's rows), got "
                             f"shape {tuple(train_Y.shape)}")
        if train_Y.shape[1] != 1:
            raise ValueError(f"PFNModel models one output; train_Y has {train_Y.shape[1]} (fit one model per output)")
        self.surrogate = PFNSurrogate(model, power_transform=power_transform)
        self.surrogate.fit(train_X, train_Y.squeeze(-1))
        self.train_X = self.surrogate.train_X

    @property
    def num_outputs(self) -> int:
        return 1

    @property
    def batch_shape(self) -> torch.Size:
        return torch.Size()

    def posterior(self, X: Tensor, output_indices: list[int] | None = None, observation_noise: bool | Tensor = False,
                  posterior_transform: Any = None, **kwargs: Any) -> PFNPosterior:
        """The posterior at `X`, a `batch_shape x q x d` tensor (`q x d` for one batch).

        The PFN predicts the noise-free objective; `observation_noise` is not supported (True raises).
        """
        if output_indices not in (None, [0]):
            raise ValueError(f"PFNModel has one output; output_indices={output_indices}")
        if observation_noise is not False:
            raise NotImplementedError("PFNModel predicts the noise-free objective; observation_noise is not supported")
        if X.dim() < 2 or X.shape[-1] != self.train_X.shape[-1]:
            raise ValueError(f"X must be a batch_shape x q x d tensor with d = {self.train_X.shape[-1]}, got shape "
                             f"{tuple(X.shape)}")
        posterior = PFNPosterior(self, X.to(torch.float64))
        return posterior if posterior_transform is None else posterior_transform(posterior)

    def condition_on_observations(self, X: Tensor, Y: Tensor, **kwargs: Any) -> Model:
        raise NotImplementedError("PFNModel does not implement condition_on_observations; build a new PFNModel on "
                                  "the extended data (fitting is one forward pass)")

    def fantasize(self, *args: Any, **kwargs: Any) -> Model:
        raise NotImplementedError("PFNModel does not implement fantasize (look-ahead acquisitions); its q-batch "
                                  "posteriors are already joint")

    # --- the PFN in its own units -----------------------------------------------------------
    def marginal_z(self, X: Tensor) -> RiemannDistribution:
        """The PFN's predictive of `z` (its standardised units) at `X` (`batch x q x d`), given the training data."""
        return self.surrogate._fitted.predict(X, grad=torch.is_grad_enabled())

    def conditional_z(self, x_fantasy: Tensor, z_fantasy: Tensor, x_next: Tensor) -> RiemannDistribution:
        """The predictive of `z` at `x_next` given the training data and fantasies, batched.

        Args:
            x_fantasy: An `m x j x d` tensor of earlier points, one set per context.
            z_fantasy: An `m x j` tensor of their drawn values (the PFN's units).
            x_next: An `m x 1 x d` tensor.

        Returns:
            A `RiemannDistribution` with batch shape `m x 1`.
        """
        m = x_fantasy.shape[0]
        x_train, z_train = self.surrogate.context_X, self.surrogate.context_z  # the PFN's units
        x_context = torch.cat([x_train.expand(m, *x_train.shape), x_fantasy], dim=1)
        z_context = torch.cat([z_train.expand(m, -1), z_fantasy], dim=1)
        grad = torch.is_grad_enabled()
        return self.surrogate.model.fit(x_context, z_context, grad=grad).predict(x_next, grad=grad)

    def to_y(self, z: Tensor) -> Tensor:
        """Values in the PFN's units mapped back to `Y` (float64, same shape, differentiable)."""
        transform = self.surrogate.transform
        return transform.loc + transform.scale * transform.untransform_standardised(z)


class PFNPosterior(Posterior):
    """The posterior of a `PFNModel` at `X` (`batch_shape x q x d`): exact marginals, joint samples.

    Base samples are standard normal (BoTorch's Sobol QMC normal sampler), one per point of
    the q-batch, turned into uniforms `u = Phi(w)`; draw `j` is the `u_j`-quantile of the PFN's
    predictive at `x_j` given the data and draws `1..j-1` (module docstring).
    """

    def __init__(self, model: PFNModel, X: Tensor) -> None:
        self.model, self.X = model, X

    @property
    def device(self) -> torch.device:
        return self.X.device

    @property
    def dtype(self) -> torch.dtype:
        return torch.float64

    @property
    def batch_shape(self) -> torch.Size:
        return self.X.shape[:-2]

    @property
    def base_sample_shape(self) -> torch.Size:
        return self.X.shape[:-1] + torch.Size([1])

    @property
    def batch_range(self) -> tuple[int, int]:
        return (0, -2)

    def _extended_shape(self, sample_shape: torch.Size = torch.Size()) -> torch.Size:  # noqa: B008
        return torch.Size(sample_shape) + self.base_sample_shape

    @property
    def mean(self) -> Tensor:
        """The marginal means, `batch_shape x q x 1`."""
        return self.model.surrogate.predict(self.X).mean.unsqueeze(-1)

    @property
    def variance(self) -> Tensor:
        """The marginal variances, `batch_shape x q x 1`."""
        return self.model.surrogate.predict(self.X).variance.unsqueeze(-1)

    def rsample(self, sample_shape: torch.Size | None = None) -> Tensor:
        """Joint draws, `sample_shape x batch_shape x q x 1`, differentiable with respect to `X`."""
        sample_shape = torch.Size([1]) if sample_shape is None else torch.Size(sample_shape)
        base = torch.randn(sample_shape + self.base_sample_shape, dtype=torch.float64, device=self.device)
        return self.rsample_from_base_samples(sample_shape, base)

    def rsample_from_base_samples(self, sample_shape: torch.Size, base_samples: Tensor) -> Tensor:
        """Joint draws from standard-normal `base_samples` (`sample_shape x batch_shape x q x 1`), same shape."""
        sample_shape = torch.Size(sample_shape)
        expected = self._extended_shape(sample_shape)
        if base_samples.shape != expected:
            base_samples = base_samples.expand(expected)
        u = torch.special.ndtr(base_samples[..., 0].double())  # S x batch x q
        s, batch, q = sample_shape.numel(), self.batch_shape, self.X.shape[-2]
        m = s * batch.numel()
        u = u.reshape(m, q)
        marginal = self.model.marginal_z(self.X[..., :1, :])  # batch x 1
        log_probs = marginal.log_probs.expand(*sample_shape, *marginal.log_probs.shape)
        first = RiemannDistribution(log_probs.reshape(m, -1), marginal.borders, normalized=True)
        draws = [first.icdf(u[:, 0])]  # each m
        x = self.X.expand(*sample_shape, *self.X.shape).reshape(m, q, -1)
        for j in range(1, q):
            conditional = self.model.conditional_z(x[:, :j], torch.stack(draws, dim=1),
                                                   x[:, j:j + 1])
            draws.append(conditional.icdf(u[:, j:j + 1])[:, 0])
        z = torch.stack(draws, dim=-1).reshape(*sample_shape, *batch, q, 1)
        return self.model.to_y(z)


@GetSampler.register(PFNPosterior)
def _get_sampler_pfn(posterior: PFNPosterior, sample_shape: torch.Size, *, seed: int | None = None) -> MCSampler:
    """BoTorch's Sobol QMC normal sampler: `PFNPosterior` turns its normals into uniforms itself."""
    return SobolQMCNormalSampler(sample_shape=sample_shape, seed=seed)


__all__ = ["PFNModel", "PFNPosterior"]

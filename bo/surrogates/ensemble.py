"""`EnsembleSurrogate` (`"ensemble"`): a deep ensemble of small MLPs, each fitted to a random 80% of the data."""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator

import torch

from bo.surrogates.base import Surrogate
from bo.surrogates.mixture import MixturePredictive
from bo.surrogates.mlp import Layers, predict_stack, scale_inputs, stacked_mlp
from bo.surrogates.outcome import OutcomeTransform

_NOISE_FLOOR = 1e-4  # the least noise variance, in standardised units (a noise sd of 1% of y's spread)


class EnsembleSurrogate(Surrogate):
    """A deep ensemble (Lakshminarayanan et al. 2017; the `"ensemble"` of Li et al. 2024's BNN study).

    `n_members` tanh MLPs (`hidden` units per layer, inputs mapped to `[-1, 1]`), each with its
    own initialisation (normal, standard deviation `1 / sqrt(fan_in)`, zero biases) and fitted to its own
    random `subset` (80%) of the observations, on standardised `y` (clipped first by
    `bo.surrogates.outcome.clip_bounds`, as the GP and PFN clip, so `-1e200` among values of
    order one is read as the best value by far). Training is full-batch AdamW on the squared
    error, `steps` steps at learning rate `lr` decayed by a cosine schedule, weight decay
    `weight_decay`, in float32 on one thread; every member trains at once as one stack of
    batched weights. The observation-noise variance, shared by the members, is the mean squared
    residual of each member on the observations outside its subset (in standardised units,
    floored at `1e-4`): residuals on a member's own subset are near zero once it has fitted
    them, and an ensemble with that noise was overconfident (held-out NLL 46.7 against the
    constant predictor's 0.76 on 12 points of a 1-d sine); the out-of-subset residuals measure
    how far a member's prediction lies from an observation it did not see (NLL -0.70 there).

    The predictive (`MixturePredictive`) is the equal-weight mixture of the members'
    Gaussians `N(f_m(x), noise)`: mean the mean of the members' means, variance their spread
    plus the noise variance, the observation noise added to the ensemble's spread. Unlike
    the GP's, it is the predictive of an observation, not of the latent function; without the
    noise, the members' agreement at the data would give EI no width there.

    A fit depends only on the data: initialisations and subsets are drawn from a generator
    seeded with `seed`, and the optimiser is deterministic on CPU. `fit_seconds` records the
    time of a fit (all members together).

    Args:
        n_members: Networks in the ensemble.
        hidden: Units of each hidden layer.
        subset: The fraction of the observations each member sees (at least one).
        steps: AdamW steps (full batch).
        lr: The initial learning rate.
        weight_decay: AdamW's decoupled weight decay.
        seed: Seeds the initialisations and the subsets.
    """

    def __init__(self, n_members: int = 10, hidden: tuple[int, ...] = (64, 64), subset: float = 0.8,
                 steps: int = 500, lr: float = 1e-2, weight_decay: float = 1e-3, seed: int = 0) -> None:
        super().__init__()
        if n_members < 1 or steps < 1 or not 0 < subset <= 1 or not hidden:
            raise ValueError(f"EnsembleSurrogate needs n_members >= 1, steps >= 1, 0 < subset <= 1 and at least one "
                             f"hidden layer; got {n_members}, {steps}, {subset}, {hidden}")
        self.n_members, self.hidden, self.subset = n_members, tuple(hidden), subset
        self.steps, self.lr, self.weight_decay, self.seed = steps, lr, weight_decay, seed

    def _fit(self, X: torch.Tensor, y: torch.Tensor) -> None:
        self.transform = OutcomeTransform(y, power=False)
        z = self.transform(y)
        generator = torch.Generator().manual_seed(self.seed)
        layers = _init_layers(X.shape[1], self.hidden, self.n_members, generator)
        mask = _subset_masks(X.shape[0], self.n_members, self.subset, generator)
        with _single_thread():
            _train(scale_inputs(X).float(), z.float(), mask.float(), layers, self)
        self.layers = [(W.detach().double(), b.detach().double()) for W, b in layers]
        with torch.no_grad():
            residual = (stacked_mlp(scale_inputs(X), self.layers) - z).square()
        self.noise = _shared_noise(residual, mask)

    def predict(self, X: torch.Tensor) -> MixturePredictive:
        """The mixture predictive at `X`, a `batch_shape x d` tensor in the unit cube, in `y` units."""
        self._check_fitted()
        means = predict_stack(X, self.layers)
        variances = self.noise.view(-1, *[1] * (means.dim() - 1))
        return MixturePredictive.from_standardised(means, variances, self.transform)


def _shared_noise(residual: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """One noise variance for every member (a 0-d tensor): the mean squared out-of-subset residual.

    Args:
        residual: `S x n` squared residuals of every member at every observation.
        mask: `S x n`, 1 where the member trained on the observation.
    """
    held_out = 1.0 - mask
    if held_out.sum() == 0:  # every member saw every point: the in-subset residuals
        held_out = mask
    return ((residual * held_out).sum() / held_out.sum()).clamp_min(_NOISE_FLOOR)


def _init_layers(d: int, hidden: tuple[int, ...], n: int, generator: torch.Generator) -> Layers:
    """`n` networks' weights (normal, sd `1 / sqrt(fan_in)`) and zero biases, requiring grad."""
    sizes = (d, *hidden, 1)  # float32: training is about twice as fast; predictions are float64
    layers = []
    for fan_in, fan_out in zip(sizes[:-1], sizes[1:], strict=True):
        W = torch.randn(n, fan_in, fan_out, generator=generator) / math.sqrt(fan_in)
        b = torch.zeros(n, 1, fan_out)
        layers.append((W.requires_grad_(), b.requires_grad_()))
    return layers


def _subset_masks(n_obs: int, n: int, fraction: float, generator: torch.Generator) -> torch.Tensor:
    """`n x n_obs` 0/1 masks, each a random `fraction` of the observations (at least one)."""
    size = max(1, round(fraction * n_obs))
    order = torch.rand(n, n_obs, generator=generator).argsort(1)
    return (order < size).double()


@contextlib.contextmanager
def _single_thread() -> Iterator[None]:
    """Runs torch on one intra-op thread (restored after): the networks are too small to gain from more,
    and on a loaded machine the threads' synchronisation made each step ten times slower."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def _train(X: torch.Tensor, z: torch.Tensor, mask: torch.Tensor, layers: Layers, settings: EnsembleSurrogate) -> None:
    """Full-batch AdamW on every member's mean squared error over its subset (`mask`, `S x n`)."""
    params = [p for layer in layers for p in layer]
    optimizer = torch.optim.AdamW(params, lr=settings.lr, weight_decay=settings.weight_decay)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, settings.steps)
    counts = mask.sum(1)
    for _ in range(settings.steps):
        optimizer.zero_grad()
        loss = (((stacked_mlp(X, layers) - z).square() * mask).sum(1) / counts).sum()
        loss.backward()
        optimizer.step()
        schedule.step()

"""`HMCSurrogate` (`"hmc"`): a small Bayesian MLP whose weights are drawn by NumPyro's NUTS (JAX on CPU)."""

from __future__ import annotations

import math

import numpy as np
import torch

from bo.surrogates.base import Surrogate
from bo.surrogates.mixture import MixturePredictive
from bo.surrogates.mlp import Layers, predict_stack, scale_inputs
from bo.surrogates.outcome import OutcomeTransform

NOISE_PRIOR_MEDIAN = 0.1  # the noise sd's log-normal prior, in standardised units: median 0.1,
NOISE_PRIOR_LOG_SD = 1.0  # log sd 1 (95% between 0.014 and 0.71)
_PAD = 16  # the data are padded to a multiple of this many rows (see `_pad`)


class HMCSurrogate(Surrogate):
    """A one-hidden-layer tanh MLP with a Gaussian likelihood, its posterior sampled by NUTS.

    The model, on inputs mapped to `[-1, 1]` and on standardised `y` (clipped first by
    `bo.surrogates.outcome.clip_bounds`, as every surrogate clips):

        W1 ~ Normal(0, weight_scale / sqrt(d))   (d x hidden)
        b1 ~ Normal(0, 1)                        (hidden)
        W2 ~ Normal(0, 1 / sqrt(hidden))         (hidden)
        b2 ~ Normal(0, 1)
        noise ~ LogNormal(log 0.1, 1)            (the observation noise's sd)
        y_i ~ Normal(tanh(x_i W1 + b1) W2 + b2, noise^2)

    The first layer's scale `weight_scale` (default 2) sets how fast the functions of the prior
    vary (a unit-cube step across a dimension moves a pre-activation by about `weight_scale`
    standard deviations in one dimension); the output layer's keeps the prior function's
    variance below that of the standardised data. Li et al. (2024) found HMC the best inference
    for such BNNs (with a larger net; this one is sized for a BO step on two CPU cores).

    NUTS (NumPyro, JAX on CPU, float32, one chain, step size adapted to acceptance 0.8 with a
    diagonal mass matrix) runs `warmup` warm-up steps, then `draws * thinning` steps of which
    every `thinning`-th is kept; `max_tree_depth` bounds the leapfrog steps per draw (`2^depth`).
    A fit depends only on the data and `seed` (JAX's PRNG key).

    The draws become an ensemble: predictions are computed in torch (float64) from the drawn
    weights, so gradients reach the query points, and the predictive (`MixturePredictive`) is
    the equal-weight mixture over draws of `N(f_s(x), noise_s^2)`, each draw with its own noise.
    That is the posterior predictive of an observation, not of the latent function (which the
    GP and PFN predict): the latent predictive of finitely many draws is a mixture of point
    masses, whose probability of improvement is piecewise constant and whose expected
    improvement has no gradient wherever every draw lies above the incumbent, which leaves the
    acquisition optimiser nothing to climb; each draw's noise gives it a width, as the
    ensemble's noise does.

    Args:
        hidden: Units of the hidden layer.
        warmup: NUTS warm-up (adaptation) steps.
        draws: Posterior draws kept.
        thinning: Keep every `thinning`-th NUTS step after warm-up.
        weight_scale: Prior sd of the first layer's weights, times `sqrt(d)`.
        max_tree_depth: NUTS's largest tree depth.
        seed: Seeds JAX's PRNG key.
    """

    def __init__(self, hidden: int = 50, warmup: int = 200, draws: int = 100, thinning: int = 2,
                 weight_scale: float = 2.0, max_tree_depth: int = 6, seed: int = 0) -> None:
        super().__init__()
        if min(hidden, warmup, draws, thinning, max_tree_depth) < 1 or not weight_scale > 0:
            raise ValueError(f"HMCSurrogate needs positive hidden, warmup, draws, thinning, max_tree_depth and "
                             f"weight_scale; got {hidden}, {warmup}, {draws}, {thinning}, {max_tree_depth}, "
                             f"{weight_scale}")
        self.hidden, self.warmup, self.draws, self.thinning = hidden, warmup, draws, thinning
        self.weight_scale, self.max_tree_depth, self.seed = weight_scale, max_tree_depth, seed

    def _fit(self, X: torch.Tensor, y: torch.Tensor) -> None:
        self.transform = OutcomeTransform(y, power=False)
        X_pad, z_pad, observed = _pad(scale_inputs(X).numpy(), self.transform(y).numpy())
        samples = self._run_nuts(X_pad, z_pad, observed)
        self.layers, self.noise = _draws_to_layers(samples)

    def _run_nuts(self, X: np.ndarray, z: np.ndarray, observed: np.ndarray) -> dict[str, np.ndarray]:
        """The kept draws of every site: `w1` (`S x d x hidden`), `b1`, `w2` (`S x hidden`), `b2`, `noise` (`S`)."""
        import jax
        from numpyro.infer import MCMC, NUTS

        kernel = NUTS(_model, max_tree_depth=self.max_tree_depth, target_accept_prob=0.8)
        mcmc = MCMC(kernel, num_warmup=self.warmup, num_samples=self.draws * self.thinning, thinning=self.thinning,
                    num_chains=1, progress_bar=False)
        with jax.default_device(jax.devices("cpu")[0]):
            mcmc.run(jax.random.PRNGKey(self.seed), X, z, observed, self.hidden, self.weight_scale)
        return {name: np.asarray(value) for name, value in mcmc.get_samples().items()}

    def predict(self, X: torch.Tensor) -> MixturePredictive:
        """The mixture over draws at `X`, a `batch_shape x d` tensor in the unit cube, in `y` units."""
        self._check_fitted()
        means = predict_stack(X, self.layers)
        variances = self.noise.square().view(-1, *[1] * (means.dim() - 1))
        return MixturePredictive.from_standardised(means, variances, self.transform)


def _pad(X: np.ndarray, z: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """`X` (`n x d`) and `z` (`n`) padded with zero rows to a multiple of `_PAD` (float32), and the mask of real rows.

    JAX compiles NUTS for each shape of the data (tens of seconds on a loaded two-core machine,
    more than the sampling); padded, the BO loop's growing data keep one shape for `_PAD` steps.
    """
    n = X.shape[0]
    size = -(-n // _PAD) * _PAD
    X_pad = np.zeros((size, X.shape[1]), dtype=np.float32)
    z_pad = np.zeros(size, dtype=np.float32)
    X_pad[:n], z_pad[:n] = X, z
    return X_pad, z_pad, np.arange(size) < n


def _model(X, z, observed, hidden: int, weight_scale: float) -> None:  # noqa: ANN001 (JAX arrays)
    """The BNN's NumPyro model (see `HMCSurrogate`): `X` (`n x d`, in `[-1, 1]`), `z` (`n`, standardised),
    `observed` (`n`, bool: the rows that are data, not padding)."""
    import jax.numpy as jnp
    import numpyro
    import numpyro.distributions as dist

    d = X.shape[1]
    w1 = numpyro.sample("w1", dist.Normal(0.0, weight_scale / math.sqrt(d)).expand([d, hidden]).to_event(2))
    b1 = numpyro.sample("b1", dist.Normal(0.0, 1.0).expand([hidden]).to_event(1))
    w2 = numpyro.sample("w2", dist.Normal(0.0, 1.0 / math.sqrt(hidden)).expand([hidden]).to_event(1))
    b2 = numpyro.sample("b2", dist.Normal(0.0, 1.0))
    noise = numpyro.sample("noise", dist.LogNormal(math.log(NOISE_PRIOR_MEDIAN), NOISE_PRIOR_LOG_SD))
    f = jnp.tanh(X @ w1 + b1) @ w2 + b2
    with numpyro.handlers.mask(mask=observed):
        numpyro.sample("z", dist.Normal(f, noise), obs=z)


def _draws_to_layers(samples: dict[str, np.ndarray]) -> tuple[Layers, torch.Tensor]:
    """The draws as a stack of networks (float64) and their noise sds (`S`)."""
    w1, b1, w2, b2 = (torch.tensor(samples[k], dtype=torch.float64) for k in ("w1", "b1", "w2", "b2"))
    layers = [(w1, b1.unsqueeze(1)), (w2.unsqueeze(-1), b2.view(-1, 1, 1))]
    return layers, torch.tensor(samples["noise"], dtype=torch.float64)

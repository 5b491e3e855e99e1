"""Learning curves: random weighted sums of parametric curve families (Domhan et al. 2015; LC-PFN)."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch

from priors.batch import Batch
from priors.hyperpriors import (
    DataclassConfig,
    Hyperprior,
    LogNormal,
    Uniform,
    as_hyperprior,
    check_choices,
    check_positive_support,
    check_unit_support,
)
from priors.registry import register_prior


def _power(u: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
    """`1 - (1 + u)^-a`."""
    return -torch.expm1(-a * torch.log1p(u))


def _stretched_exponential(u: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
    """`1 - exp(-u^a)`."""
    return -torch.expm1(-u.pow(a))


def _log_logistic(u: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
    """`u^a / (1 + u^a)`, written as a sigmoid of `a log u` so that it cannot overflow."""
    return torch.sigmoid(a * torch.log(u))


def _inverse_log(u: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
    """`1 - (log 2 / log(2 + u))^a`."""
    return 1.0 - (math.log(2.0) / torch.log(2.0 + u)).pow(a)


def _vapor_pressure(u: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
    """`(exp(-a / (1 + u)) - exp(-a)) / (1 - exp(-a))`."""
    return torch.exp(-a / (1.0 + u)) * torch.expm1(-a * u / (1.0 + u)) / torch.expm1(-a)


def _log_log_linear(u: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
    """`log(1 + a log(1 + u))`: unbounded, so this family is normalised at the horizon."""
    return torch.log1p(a * torch.log1p(u))


@dataclass(frozen=True)
class CurveFamily:
    """One parametric family, written as a progress `p(u; a)` in time `u = t / time_scale`.

    Attributes:
        progress: `p(u, a)`, elementwise, increasing in `u >= 0` from `p(0) = 0`.
        shape_low, shape_high: The shape parameter `a` is uniform on `[shape_low, shape_high]`.
        saturates: True if `p -> 1` as `u -> inf`; False if unbounded (then divided by its
            value at the horizon, `t = 1`).
    """

    progress: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
    shape_low: float
    shape_high: float
    saturates: bool = True


FAMILIES: dict[str, CurveFamily] = {
    "pow3": CurveFamily(_power, 0.3, 1.0),
    "pow4": CurveFamily(_power, 1.0, 3.0),
    "exp4": CurveFamily(_stretched_exponential, 0.2, 0.5),
    "janoschek": CurveFamily(_stretched_exponential, 0.5, 1.5),
    "weibull": CurveFamily(_stretched_exponential, 1.5, 4.0),
    "log_power": CurveFamily(_log_logistic, 0.2, 0.6),
    "mmf": CurveFamily(_log_logistic, 0.6, 1.5),
    "hill": CurveFamily(_log_logistic, 1.5, 5.0),
    "ilog2": CurveFamily(_inverse_log, 0.5, 2.0),
    "vap": CurveFamily(_vapor_pressure, 0.5, 5.0),
    "loglog_linear": CurveFamily(_log_log_linear, 0.5, 5.0, saturates=False),
}
FAMILY_NAMES = tuple(FAMILIES)
NOISY_DOF = 3  # Student-t degrees of freedom of the heavy noise
NOISY_TREND = 1.5  # the heavy noise's log-scale trend over the run is uniform on [-NOISY_TREND, NOISY_TREND]
_UNIT_FIELDS = ("limit", "start_fraction", "plateau_at", "peak_at", "decline")
_POSITIVE_FIELDS = ("limit", "time_scale", "noise", "heavy_noise")
_PROBABILITY_FIELDS = ("family_prob", "plateau_prob", "degrade_prob", "noisy_prob")


@register_prior
@dataclass(frozen=True)
class CurvePrior(DataclassConfig):
    """Learning curves of a metric normalised to `[0, 1]` (higher is better), one per dataset.

    A dataset is one training run observed at epochs `1, ..., H` with `H = n_points` (the
    horizon, e.g. up to 200): `x = epoch / H` (one feature, in `(0, 1]`), `y` the observed
    metric, the context the first `n_context` epochs (default `H // 2`) and the queries the
    later ones. With `t = x`, every curve is, before its special kinds and noise,

        f(t) = start + (limit - start) * sum_k w_k p_k(t / tau_k; a_k),

    where, per curve (all draws vectorised over the batch):

    - `limit ~ Uniform(0.1, 1)` is the level the curve approaches and
      `start = start_fraction * limit`, `start_fraction ~ Uniform(0, 0.9)`, its value at
      `t = 0` (before the first epoch).
    - Families: each of `families` (default all eleven of `FAMILY_NAMES`) is active with
      probability `family_prob` (default 0.25, so about 2.75 per curve; one uniformly
      chosen family if none is); the weights `w_k` of the active ones are Dirichlet(1, ...,
      1) (normalised exponentials), the others 0.
    - Each family has its own time scale `tau_k ~ time_scale = LogNormal(-2, 1.5)`
      (median 0.14 of the horizon: from curves that saturate within the first epoch to
      curves still far from their limit at the horizon) and shape `a_k` uniform on the
      family's range. The Domhan et al. families, each written with its start at `t = 0`
      and its limit as `u -> inf` (so several share a form and differ by the range of `a`;
      vap keeps `c = 0`, since `c != 0` makes it unbounded or eventually falling, and late
      decline is a kind of its own below):

      | family | progress `p(u)` | `a` |
      |---|---|---|
      | pow3 `c - a x^-alpha` | `1 - (1 + u)^-a` | U(0.3, 1) |
      | pow4 `c - (a x + b)^-alpha` | `1 - (1 + u)^-a` | U(1, 3) |
      | exp4 `c - exp(-a x^alpha + b)` | `1 - exp(-u^a)` | U(0.2, 0.5) |
      | janoschek `alpha - (alpha - beta) exp(-kappa x^delta)` | `1 - exp(-u^a)` | U(0.5, 1.5) |
      | weibull `alpha - (alpha - beta) exp(-(kappa x)^delta)` | `1 - exp(-u^a)` (S-shaped) | U(1.5, 4) |
      | log_power `a / (1 + (x / e^b)^c)` | `u^a / (1 + u^a)` | U(0.2, 0.6) |
      | mmf `alpha - (alpha - beta) / (1 + (kappa x)^delta)` | `u^a / (1 + u^a)` | U(0.6, 1.5) |
      | hill `y_max x^eta / (kappa^eta + x^eta)` | `u^a / (1 + u^a)` (S-shaped) | U(1.5, 5) |
      | ilog2 `c - a / log(x)` | `1 - (log 2 / log(2 + u))^a` | U(0.5, 2) |
      | vap `exp(a + b / x + c log x)`, `c = 0` | `(e^(-a/(1+u)) - e^-a) / (1 - e^-a)` | U(0.5, 5) |
      | loglog_linear `log(a log x + b)` | `log(1 + a log(1 + u))`, divided by its value at `t = 1` | U(0.5, 5) |

    Special kinds, each drawn independently per curve, in this order:

    - **plateau** (probability `plateau_prob`, default 0.1): from `plateau_at ~
      Uniform(0, 1)` on, the curve stays at `f(plateau_at)` (learning stops; early
      `plateau_at` gives runs that never learn).
    - **late degradation** (probability `degrade_prob`, default 0.1; overfitting): from
      `peak_at ~ Uniform(0.3, 0.9)` on, the curve loses a growing share of its gain,
      `f(t) - decline * r(t) * (f(t) - start)` with `r` rising linearly from 0 at
      `peak_at` to 1 at `t = 1` and `decline ~ Uniform(0.1, 0.6)`.
    - **noisy** (probability `noisy_prob`, default 0.1): heavy, heteroscedastic noise,
      so that the best observed epoch is usually not the last: Student-t errors with
      `NOISY_DOF = 3` degrees of freedom and scale `heavy_noise ~ Uniform(0.03, 0.1)`
      at mid-run, times `exp(g (t - 1/2))` with `g ~ Uniform(-1.5, 1.5)` (noise growing
      or shrinking over the run).

    Other curves get Gaussian noise of standard deviation `noise ~ LogNormal(-4, 1)`
    (median 0.018, as in LC-PFN). `y = clip(f + noise, 0, 1)`.

    Validity (LC-PFN rejects curves that are non-finite, leave `[0, 1]` or end below their
    start; here every draw is valid by construction, so nothing is rejected and the sampler
    draws a fixed amount of randomness, whatever the batch): each `p_k` is finite and
    increasing from 0 to at most 1 on `t in [0, 1]`, so `f` is non-decreasing and lies in
    `[start, limit]`, a subset of `[0, 1]`; a plateau freezes `f`; degradation removes at
    most the share `decline <= 1` of the gain, so `f` stays at or above `start` (a few
    percent of degrading curves end below their first epoch) and only degrading curves
    ever decrease. The one repair: observations are clipped to `[0, 1]` (a
    normalised metric cannot leave it), which biases the noise slightly inwards near 0
    and 1. All arithmetic is in float64.

    `target_y` is the noisy observation (`noisy_targets=True`, the default): what a user
    sees at a future epoch and what early stopping compares with the best so far; with
    `noisy_targets=False` it is the noise-free `f`.

    `meta` (first dimension `B`): `weights` (`B x 11`, in `FAMILY_NAMES` order, 0 for
    inactive families), `time_scale` and `shape` (`B x 11`; drawn for every family, used
    where the weight is positive), `start`, `limit`, `noise` (the noise scale: the
    Gaussian standard deviation, or for noisy curves the Student-t scale at mid-run),
    `plateau`, `degrades`, `noisy` (bool), `plateau_at` (1 where no plateau), `peak_at`
    (1 where no degradation), `decline` (0 where no degradation) and `noise_trend` (`g`,
    0 where not noisy).
    """

    families: tuple[str, ...] = FAMILY_NAMES
    family_prob: float = 0.25
    limit: Hyperprior = Uniform(0.1, 1.0)
    start_fraction: Hyperprior = Uniform(0.0, 0.9)
    time_scale: Hyperprior = LogNormal(-2.0, 1.5)
    noise: Hyperprior = LogNormal(-4.0, 1.0)
    plateau_prob: float = 0.1
    plateau_at: Hyperprior = Uniform(0.0, 1.0)
    degrade_prob: float = 0.1
    peak_at: Hyperprior = Uniform(0.3, 0.9)
    decline: Hyperprior = Uniform(0.1, 0.6)
    noisy_prob: float = 0.1
    heavy_noise: Hyperprior = Uniform(0.03, 0.1)
    noisy_targets: bool = True

    def __post_init__(self) -> None:
        for name in {*_UNIT_FIELDS, *_POSITIVE_FIELDS}:
            object.__setattr__(self, name, as_hyperprior(getattr(self, name)))
        for name in _UNIT_FIELDS:
            check_unit_support(name, getattr(self, name))
        for name in _POSITIVE_FIELDS:
            check_positive_support(name, getattr(self, name), allow_zero=name in ("noise", "heavy_noise"))
        for name in _PROBABILITY_FIELDS:
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must be a probability in [0, 1], got {getattr(self, name)}")
        object.__setattr__(self, "families", tuple(self.families))
        check_choices("families", self.families, FAMILY_NAMES)

    def sample(
        self, batch_size: int, n_points: int, n_features: int, *,
        generator: torch.Generator | None = None, device: torch.device | str = "cpu",
        n_context: int | None = None,
    ) -> Batch:
        """Draws `batch_size` curves of `n_points` epochs (the horizon).

        Args:
            n_features: Must be 1 (the input is the epoch scaled by the horizon).

        Returns:
            A `Batch` with `x` (`B x H x 1`, `epoch / H`), `y` and `target_y` (`B x H`, in
            `[0, 1]`) and the `meta` of the class docstring; `n_context` defaults to `H // 2`.
        """
        if n_features != 1:
            raise ValueError(f"CurvePrior draws curves with one input (the epoch over the horizon), so n_features "
                             f"must be 1, got {n_features}")
        b = batch_size
        kw = {"generator": generator, "device": device, "dtype": torch.float64}
        t = torch.arange(1, n_points + 1, device=device, dtype=torch.float64) / n_points  # H
        hyp = self._draw(b, kw)
        curve = self._noise_free(t, hyp)
        noise = self._noise(t, hyp, kw)
        y = (curve + noise).clamp(0.0, 1.0).float()
        curve = curve.float()
        meta = {k: v.float() if v.is_floating_point() else v for k, v in hyp.items()}
        return Batch(x=t.float().repeat(b, 1).unsqueeze(-1), y=y, target_y=y if self.noisy_targets else curve,
                     n_context=n_points // 2 if n_context is None else n_context, meta=meta)

    def _draw(self, b: int, kw: dict) -> dict[str, torch.Tensor]:
        """Every random quantity of `b` curves except the noise values; the documented `meta` (float64)."""
        generator, device = kw["generator"], kw["device"]
        k = len(FAMILY_NAMES)
        zero = torch.zeros(b, device=device, dtype=torch.float64)

        def draw(hyperprior: Hyperprior, shape: tuple[int, ...]) -> torch.Tensor:
            return hyperprior.sample(shape, generator, device).double()

        def flag(prob: float) -> torch.Tensor:
            return torch.rand(b, **kw) < prob

        low = zero.new_tensor([f.shape_low for f in FAMILIES.values()])
        high = zero.new_tensor([f.shape_high for f in FAMILIES.values()])
        limit = draw(self.limit, (b,))
        hyp = {
            "weights": self._family_weights(b, kw),
            "time_scale": draw(self.time_scale, (b, k)),
            "shape": low + (high - low) * torch.rand(b, k, **kw),
            "start": draw(self.start_fraction, (b,)) * limit,
            "limit": limit,
        }
        plateau, degrades, noisy = flag(self.plateau_prob), flag(self.degrade_prob), flag(self.noisy_prob)
        hyp |= {
            "plateau": plateau, "plateau_at": torch.where(plateau, draw(self.plateau_at, (b,)), zero + 1.0),
            "degrades": degrades, "peak_at": torch.where(degrades, draw(self.peak_at, (b,)), zero + 1.0),
            "decline": torch.where(degrades, draw(self.decline, (b,)), zero),
            "noisy": noisy, "noise": torch.where(noisy, draw(self.heavy_noise, (b,)), draw(self.noise, (b,))),
            "noise_trend": torch.where(noisy, NOISY_TREND * (2.0 * torch.rand(b, **kw) - 1.0), zero),
        }
        return hyp

    def _family_weights(self, b: int, kw: dict) -> torch.Tensor:
        """Dirichlet(1, ..., 1) weights (`B x 11`) over each curve's active families, 0 for the others."""
        k = len(FAMILY_NAMES)
        allowed = torch.tensor([name in self.families for name in FAMILY_NAMES], device=kw["device"])
        active = (torch.rand(b, k, **kw) < self.family_prob) & allowed
        fallback = torch.rand(b, k, **kw).masked_fill(~allowed, -1.0).argmax(1, keepdim=True)
        active = torch.where(active.any(1, keepdim=True), active, torch.zeros_like(active).scatter(1, fallback, True))
        raw = -torch.log1p(-torch.rand(b, k, **kw)).clamp_min(1e-12) * active  # exponentials
        return raw / raw.sum(1, keepdim=True)

    @staticmethod
    def _noise_free(t: torch.Tensor, hyp: dict[str, torch.Tensor]) -> torch.Tensor:
        """The noise-free curves (`B x H`, float64) at times `t` (`H`) from the drawn `hyp`."""
        t_eff = torch.minimum(t, hyp["plateau_at"].unsqueeze(-1))  # B x H: frozen after a plateau
        progress = torch.zeros_like(t_eff)
        for i, family in enumerate(FAMILIES.values()):
            tau, a = hyp["time_scale"][:, i : i + 1], hyp["shape"][:, i : i + 1]
            p = family.progress(t_eff / tau, a)
            if not family.saturates:
                p = p / family.progress(1.0 / tau, a)
            progress = progress + hyp["weights"][:, i : i + 1] * p
        start, limit = hyp["start"].unsqueeze(-1), hyp["limit"].unsqueeze(-1)
        curve = start + (limit - start) * progress
        peak = hyp["peak_at"].unsqueeze(-1)
        ramp = ((t - peak) / (1.0 - peak).clamp_min(1e-9)).clamp(0.0, 1.0)
        return curve - hyp["decline"].unsqueeze(-1) * ramp * (curve - start)

    @staticmethod
    def _noise(t: torch.Tensor, hyp: dict[str, torch.Tensor], kw: dict) -> torch.Tensor:
        """Observation noise (`B x H`, float64): Gaussian, or heavy-tailed and heteroscedastic for noisy curves."""
        b, h = hyp["noise"].shape[0], t.shape[0]
        gaussian = torch.randn(b, h, **kw)
        chi2 = torch.randn(b, h, NOISY_DOF, **kw).square().mean(-1)  # chi^2 / dof
        heavy = gaussian / chi2.sqrt() * torch.exp(hyp["noise_trend"].unsqueeze(-1) * (t - 0.5))
        return hyp["noise"].unsqueeze(-1) * torch.where(hyp["noisy"].unsqueeze(-1), heavy, gaussian)


__all__ = ["FAMILIES", "FAMILY_NAMES", "CurveFamily", "CurvePrior"]

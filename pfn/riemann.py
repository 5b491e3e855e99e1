"""The Riemann (bar) distribution: a piecewise-constant density with half-normal tails.

`K` buckets with borders `b_0 < ... < b_K`. Inner buckets carry uniform density; the outer
two are half-normals pinned at `b_1` (extending left) and `b_{K-1}` (extending right),
scaled so that half of each tail's mass lies inside its bucket. Every method below is
derived from this one density, tails included.

Each border belongs to the piece on its right: the left tail covers `y < b_1`, inner bucket
`i` covers `b_i <= y < b_{i+1}` and the right tail `y >= b_{K-1}`, so the density is
continuous from the right everywhere (also at `b_1` and `b_{K-1}`, where it jumps).

Statistics are computed over chunks of rows of the flattened batch (`_CHUNK_ELEMENTS`
table entries at a time): memory beyond the `batch_shape x K` table and the output stays a
few chunk-sized temporaries, whatever the batch size.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from functools import partial

import numpy as np
import torch

_SQRT2 = math.sqrt(2.0)
_HALF_NORMAL_MEDIAN = 0.6744897501960817  # Phi^{-1}(0.75)
_HALF_NORMAL_MEAN = math.sqrt(2.0 / math.pi)
_HALF_NORMAL_VAR = 1.0 - 2.0 / math.pi
_LOG_HALF_NORMAL_NORM = 0.5 * math.log(2.0 / math.pi)
_PHI_0 = 1.0 / math.sqrt(2.0 * math.pi)

# Table entries (rows x buckets) per chunk of a statistic: each chunk-sized float32 temporary is 4 MiB.
_CHUNK_ELEMENTS = 1 << 20


def _phi(z: torch.Tensor) -> torch.Tensor:
    return torch.exp(-0.5 * z * z) * _PHI_0


def _Phi(z: torch.Tensor) -> torch.Tensor:
    return 0.5 * torch.erfc(-z / _SQRT2)


def _Phi_inv(p: torch.Tensor) -> torch.Tensor:
    return (_SQRT2 * torch.erfinv(2.0 * p.double() - 1.0)).to(p.dtype)


def borders_from_samples(samples: torch.Tensor, n_buckets: int) -> torch.Tensor:
    """Bucket borders at evenly spaced quantiles of `samples`, outer borders fitted to the tails.

    The inner borders `b_1 .. b_{K-1}` are the quantiles at `i / K`; the outer two are
    `tail_borders` of the samples beyond them.

    Args:
        samples: Any tensor of finite prior target values (flattened).
        n_buckets: Number of buckets `K`.

    Returns:
        A `K + 1` float32 tensor of strictly increasing borders.
    """
    flat = _finite_samples(samples)
    if flat.numel() < n_buckets:
        raise ValueError(f"need at least {n_buckets} finite samples for {n_buckets} buckets, got {flat.numel()}")
    borders = torch.quantile(flat, torch.linspace(0.0, 1.0, n_buckets + 1, dtype=torch.float64))
    borders = _with_fitted_tails(flat, borders)  # a side without samples beyond it (ties) keeps its quantile
    # Ties (discrete targets) would give empty buckets: spread borders to a minimum width,
    # wide enough (several float32 ulps of the largest border) to survive the cast to float32.
    magnitude = float(borders.abs().max())
    min_width = 1e-6 * float(borders[-2] - borders[1]) + 8 * torch.finfo(torch.float32).eps * magnitude + 1e-12
    for i in range(1, borders.numel()):
        borders[i] = torch.maximum(borders[i], borders[i - 1] + min_width)
    return borders.float()


def tail_borders(samples: torch.Tensor, borders: torch.Tensor) -> torch.Tensor:
    """`borders` with the outer two refitted to the tails of `samples` (inner borders unchanged).

    The outer borders only set the half-normal tails' scales. They are placed where each
    tail's mean equals the samples' own mean beyond `b_1` (and beyond `b_{K-1}`): a model that
    puts the prior's mass in a tail then predicts the prior's mean there. (The 0 and 1
    quantiles, used before, gave tails set by the single most extreme sample: many times too
    wide for heavy-tailed targets, with predictive means far out.) The trained logits do not
    depend on the tail scales (a tail's shape only adds a constant to the log-likelihood of
    the targets in it), so a trained model's tails can be refitted after training.

    Args:
        samples: Prior target values (any shape; non-finite values are ignored).
        borders: `K + 1` increasing borders.

    Returns:
        The `K + 1` float32 borders; a side without samples beyond it keeps its border.
    """
    return _with_fitted_tails(_finite_samples(samples), borders.detach().double()).float()


def _finite_samples(samples: torch.Tensor) -> torch.Tensor:
    """The finite values of `samples` as float64, at most 2^24 - 1 of them (a fixed random subset)."""
    flat = samples.flatten().double()
    flat = flat[torch.isfinite(flat)]
    if flat.numel() >= 2**24:  # torch.quantile's limit
        flat = flat[torch.randperm(flat.numel(), generator=torch.Generator().manual_seed(0))[: 2**24 - 1]]
    return flat


def _with_fitted_tails(flat: torch.Tensor, borders: torch.Tensor) -> torch.Tensor:
    """A float64 copy of `borders` whose `b_0` and `b_K` give the half-normal tails (pinned at `b_1` and
    `b_{K-1}`) the mean excess of the samples `flat` beyond them; a side without samples keeps its border."""
    out = borders.clone()
    b1, bk = float(out[1]), float(out[-2])
    left, right = b1 - flat[flat < b1], flat[flat > bk] - bk
    to_border = _HALF_NORMAL_MEDIAN / _HALF_NORMAL_MEAN  # a half-normal's median over its mean
    if left.numel():
        out[0] = b1 - float(left.mean()) * to_border
    if right.numel():
        out[-1] = bk + float(right.mean()) * to_border
    return out


# --- the math on a chunk of rows -------------------------------------------------------------
# Each function takes `n` rows of the flattened batch: `lp`, an `n x K` tensor of normalised
# bucket log-probabilities; `b`, the `K + 1` shared borders or `n x (K + 1)` per-row borders;
# and `n`-vectors of inputs in standardised units (the units of the borders).

def _pick(t: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
    """Entries `idx` (`n` or `n x m` indices into the last dim) of `t` (`K` shared or `n x K` rows)."""
    if t.dim() == 1:
        return t[idx]
    if idx.dim() == 1:
        return t.gather(-1, idx.unsqueeze(-1)).squeeze(-1)
    return t.gather(-1, idx)


def _tails(b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """`b_1`, `b_{K-1}` and the left and right half-normal scales (each scalar, or `n` per row)."""
    b1, bk = b[..., 1], b[..., -2]
    return b1, bk, (b1 - b[..., 0]) / _HALF_NORMAL_MEDIAN, (b[..., -1] - bk) / _HALF_NORMAL_MEDIAN


def _piece_of(b: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """The piece (`n` bucket indices) that owns `y`: 0 for `y < b_1`, `K - 1` for `y >= b_{K-1}`."""
    if b.dim() == 1:
        idx = torch.searchsorted(b, y, right=True)
    else:
        idx = torch.searchsorted(b, y.unsqueeze(-1), right=True).squeeze(-1)
    return (idx - 1).clamp(0, b.shape[-1] - 2)


def _by_piece(idx: torch.Tensor, k: int, left: torch.Tensor, inner: torch.Tensor,
              right: torch.Tensor) -> torch.Tensor:
    """`left` in the left tail (piece 0), `right` in the right tail (piece `K - 1`), `inner` elsewhere."""
    return torch.where(idx == 0, left, torch.where(idx == k - 1, right, inner))


def _log_prob_rows(lp: torch.Tensor, b: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Log density at `y`: `n`."""
    idx = _piece_of(b, y)
    inner = _pick(lp, idx) - torch.log(_pick(b[..., 1:], idx) - _pick(b[..., :-1], idx))
    b1, bk, s_left, s_right = _tails(b)
    left = lp[:, 0] + _LOG_HALF_NORMAL_NORM - torch.log(s_left) - 0.5 * ((b1 - y) / s_left) ** 2
    right = lp[:, -1] + _LOG_HALF_NORMAL_NORM - torch.log(s_right) - 0.5 * ((y - bk) / s_right) ** 2
    return _by_piece(idx, lp.shape[-1], left, inner, right)


def _cdf_rows(lp: torch.Tensor, b: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """P(Y <= y): `n`."""
    p = lp.exp()
    cum = p.cumsum(-1)
    idx = _piece_of(b, y)
    p_idx, lo = _pick(p, idx), _pick(b[..., :-1], idx)
    inner = _pick(cum, idx) - p_idx + p_idx * ((y - lo) / (_pick(b[..., 1:], idx) - lo))
    b1, bk, s_left, s_right = _tails(b)
    left = p[:, 0] * 2.0 * _Phi((y - b1) / s_left)
    right = cum[:, -1] - p[:, -1] + p[:, -1] * (2.0 * _Phi((y - bk) / s_right) - 1.0)
    return _by_piece(idx, lp.shape[-1], left, inner, right).clamp(0.0, 1.0)


def _icdf_rows(lp: torch.Tensor, b: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
    """The `q`-quantile: `n`."""
    k = lp.shape[-1]
    p = lp.exp()
    cum = p.cumsum(-1)
    idx = torch.searchsorted(cum, q.unsqueeze(-1)).squeeze(-1).clamp(0, k - 1)
    p_idx, lo = _pick(p, idx), _pick(b[..., :-1], idx)
    inner = lo + (q - (_pick(cum, idx) - p_idx)) / p_idx.clamp_min(1e-30) * (_pick(b[..., 1:], idx) - lo)
    b1, bk, s_left, s_right = _tails(b)
    left = b1 + s_left * _Phi_inv((q / (2.0 * p[:, 0].clamp_min(1e-30))).clamp(1e-12, 0.5))
    frac_right = ((q - (cum[:, -1] - p[:, -1])) / p[:, -1].clamp_min(1e-30)).clamp(0.0, 1.0 - 1e-7)
    right = bk + s_right * _Phi_inv(0.5 + 0.5 * frac_right)
    return _by_piece(idx, k, left, inner, right)


def _sample_rows(lp: torch.Tensor, b: torch.Tensor, n: int, generator: torch.Generator | None) -> torch.Tensor:
    """`rows x n` draws: a bucket, then a point inside it (tails as `b_1 - s|Z|` and `b_{K-1} + s|Z|`)."""
    k = lp.shape[-1]
    idx = torch.multinomial(lp.exp(), n, replacement=True, generator=generator)
    lo, hi = _pick(b[..., :-1], idx), _pick(b[..., 1:], idx)
    u = torch.rand(idx.shape, generator=generator, dtype=lp.dtype, device=lp.device)
    z = torch.randn(idx.shape, generator=generator, dtype=lp.dtype, device=lp.device).abs()
    b1, bk, s_left, s_right = (t.unsqueeze(-1) for t in _tails(b))
    out = torch.where(idx == 0, b1 - s_left * z, lo + u * (hi - lo))
    return torch.where(idx == k - 1, bk + s_right * z, out)


def _piece_moments(b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean and variance of each piece (`K`, or `n x K` for per-row borders), tails as half-normals."""
    lo, hi = b[..., :-1], b[..., 1:]
    b1, bk, s_left, s_right = (t.unsqueeze(-1) for t in _tails(b))
    mean = [b1 - s_left * _HALF_NORMAL_MEAN, ((lo + hi) / 2)[..., 1:-1], bk + s_right * _HALF_NORMAL_MEAN]
    var = [s_left**2 * _HALF_NORMAL_VAR, ((hi - lo) ** 2 / 12)[..., 1:-1], s_right**2 * _HALF_NORMAL_VAR]
    return torch.cat(mean, -1), torch.cat(var, -1)


def _mean_rows(lp: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """The mean: `n`."""
    piece_mean, _ = _piece_moments(b)
    return (lp.exp() * piece_mean).sum(-1)


def _variance_rows(lp: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """The variance (law of total variance over the pieces): `n`."""
    piece_mean, piece_var = _piece_moments(b)
    p = lp.exp()
    m = (p * piece_mean).sum(-1, keepdim=True)
    return (p * (piece_var + (piece_mean - m) ** 2)).sum(-1)


def _improvement_pieces(b: torch.Tensor, best: torch.Tensor) -> torch.Tensor:
    """Each piece's expected improvement E[max(Y - best, 0) | piece]: `best.shape x K`.

    `b` is the `K + 1` shared borders (then `best` may be 0-dim: one row of pieces) or `n x (K + 1)`
    per-row borders with an `n` `best`. Each entry is >= 0 in exact arithmetic; float32
    cancellation in the tail terms can leave a tiny negative one.
    """
    lo, hi = b[..., 1:-2], b[..., 2:-1]  # the inner buckets 1, ..., K - 2
    t = best.unsqueeze(-1)
    # Uniform on [lo, hi]: the integral of (y - t) / w over [u, hi] with u = clamp(t, lo, hi),
    # ((hi - t)^2 - (u - t)^2) / 2w, factorised so that no large squares cancel.
    u = torch.clamp(t, lo, hi)
    inner = (hi - u) * (hi + u - 2 * t) / (2 * (hi - lo))
    b1, bk, s_left, s_right = _tails(b)
    d = best - bk  # right tail Y = b_{K-1} + s|Z|
    right = torch.where(d <= 0, -d + s_right * _HALF_NORMAL_MEAN,
                        2 * (s_right * _phi(d / s_right) - d * (1 - _Phi(d / s_right))))
    e = (b1 - best).clamp_min(0)  # left tail Y = b_1 - s|Z|
    left = 2 * (e * (_Phi(e / s_left) - 0.5) - s_left * (_PHI_0 - _phi(e / s_left)))
    return torch.cat([left.unsqueeze(-1), inner, right.unsqueeze(-1)], -1)


def _signed_improvement_pieces(b: torch.Tensor, best: torch.Tensor, maximize: bool) -> torch.Tensor:
    """`_improvement_pieces` of `Y` above `best`, or (`maximize=False`) of `-Y` above `-best` (buckets
    mirrored, then flipped back so that piece `i` is still bucket `i`)."""
    return _improvement_pieces(b, best) if maximize else _improvement_pieces(-b.flip(-1), -best).flip(-1)


def _improvement_rows(lp: torch.Tensor, b: torch.Tensor, best: torch.Tensor, maximize: bool) -> torch.Tensor:
    """E[max(Y - best, 0)] (or E[max(best - Y, 0)]): `n`."""
    # Clamped: a tiny negative total (float32 cancellation in a tail) would break log-EI.
    return (lp.exp() * _signed_improvement_pieces(b, best, maximize)).sum(-1).clamp_min(0.0)


def _log_improvement_rows(lp: torch.Tensor, b: torch.Tensor, best: torch.Tensor, maximize: bool) -> torch.Tensor:
    """log E[max(Y - best, 0)] (or of E[max(best - Y, 0)]) summed in log space: `n`."""
    return torch.logsumexp(lp + _signed_improvement_pieces(b, best, maximize).clamp_min(0.0).log(), -1)


class RiemannDistribution:
    """A batch of bar distributions sharing (or broadcasting) bucket borders, optionally affinely mapped.

    Args:
        logits: A `batch_shape x K` tensor of unnormalised bucket log-probabilities.
        borders: A `K + 1` tensor of increasing borders, or `batch_shape x (K + 1)`.
        normalized: Whether `logits` are normalised log-probabilities already.

    Units and dtypes: `log_probs` and `borders` are held in the working dtype, float32 (float64
    when `logits` are float64), and in standardised units. `affine(loc, scale)` describes
    `loc + scale * Y` by keeping `loc` and `scale` as float64 tensors (broadcastable to
    `batch_shape`) beside the unchanged borders; without one they are None. With an affine,
    inputs in value units (`y` of `log_prob` and `cdf`, `best` of the acquisition functions)
    are standardised in float64 as `(y - loc) / scale` and then cast to the working dtype, all
    internal math runs in standardised units, and outputs in value units (`mean`, `stddev`,
    `variance`, `icdf`, `sample`, `expected_improvement`, `ucb`) and the density `log_prob` are
    mapped back and returned in float64. Probabilities (`cdf`, `probability_of_improvement`,
    `probs`) and everything without an affine keep the working dtype. Pass value-unit inputs
    far from zero (`1e9 + 0.3`) as Python floats or float64 tensors.

    Every statistic is differentiable with respect to `logits`.
    """

    def __init__(self, logits: torch.Tensor, borders: torch.Tensor, normalized: bool = False) -> None:
        if borders.shape[-1] != logits.shape[-1] + 1:
            raise ValueError(f"{logits.shape[-1]} buckets need {logits.shape[-1] + 1} borders, got {borders.shape[-1]}")
        if logits.shape[-1] < 3:
            raise ValueError("a Riemann distribution needs at least 3 buckets (two tails and an inner one)")
        dtype = torch.float64 if logits.dtype == torch.float64 else torch.float32
        # `normalized=True` takes `logits` as log-probabilities already (no copy).
        self.log_probs = logits.to(dtype) if normalized else torch.log_softmax(logits.to(dtype), dim=-1)
        self.borders = borders.to(device=logits.device, dtype=dtype)
        self.loc: torch.Tensor | None = None
        self.scale: torch.Tensor | None = None

    @classmethod
    def _from_parts(cls, log_probs: torch.Tensor, borders: torch.Tensor, loc: torch.Tensor | None,
                    scale: torch.Tensor | None) -> RiemannDistribution:
        out = cls.__new__(cls)
        out.log_probs, out.borders, out.loc, out.scale = log_probs, borders, loc, scale
        return out

    # --- geometry -------------------------------------------------------------------
    @property
    def batch_shape(self) -> torch.Size:
        return self.log_probs.shape[:-1]

    @property
    def probs(self) -> torch.Tensor:
        """A `batch_shape x K` tensor of bucket probabilities."""
        return self.log_probs.exp()

    @property
    def widths(self) -> torch.Tensor:
        """Bucket widths in standardised units: `K`, or `batch_shape x K` for per-row borders."""
        return self.borders[..., 1:] - self.borders[..., :-1]

    # --- chunked evaluation and units ----------------------------------------------------
    def _rowwise(self, fn: Callable[..., torch.Tensor], *inputs: torch.Tensor) -> torch.Tensor:
        """`fn(lp, b, *inputs)` over chunks of rows of the flattened batch, written into one output.

        Args:
            fn: A row function (see `_log_prob_rows`) returning `n` or `n x m` for `n` rows.
            inputs: `batch_shape` tensors in standardised units, one entry per row.

        Returns:
            A `prod(batch_shape)` (or `prod(batch_shape) x m`) tensor.
        """
        k = self.log_probs.shape[-1]
        rows = max(1, _CHUNK_ELEMENTS // k)
        log_probs = self.log_probs.reshape(-1, k).split(rows)  # a view of the table unless it was expanded
        if self.borders.dim() == 1:
            borders = [self.borders] * len(log_probs)
        else:
            borders = self.borders.expand(*self.batch_shape, k + 1).reshape(-1, k + 1).split(rows)
        columns = [x.reshape(-1).contiguous().split(rows) for x in inputs]
        # One output written chunk by chunk: small results kept alive between the chunks'
        # temporaries would fragment the heap and let it grow with the batch.
        out = None
        for i, args in enumerate(zip(log_probs, borders, *columns, strict=True)):
            part = fn(*args)
            if out is None:
                out = part.new_empty(self.log_probs.numel() // k, *part.shape[1:])
            out[i * rows:i * rows + part.shape[0]] = part
        return out

    def _stat(self, fn: Callable[..., torch.Tensor], *inputs: torch.Tensor) -> torch.Tensor:
        """`_rowwise(fn, *inputs)` for a row function with one value per row: `batch_shape`."""
        return self._rowwise(fn, *inputs).reshape(self.batch_shape)

    def _broadcast(self, t: torch.Tensor, name: str) -> torch.Tensor:
        """`t` expanded to `batch_shape`, or a `ValueError` naming `name` and both shapes."""
        try:  # numpy's: torch.broadcast_shapes imports sympy on first use
            fits = np.broadcast_shapes(t.shape, self.batch_shape) == tuple(self.batch_shape)
        except ValueError:
            fits = False
        if not fits:
            raise ValueError(f"{name} of shape {tuple(t.shape)} does not broadcast to the distribution's batch shape "
                             f"{tuple(self.batch_shape)}; pass a scalar, one value per distribution, or a shape that "
                             "broadcasts (e.g. size 1 along a batch dimension)")
        return t.expand(self.batch_shape)

    def _standardise(self, y: torch.Tensor | float, name: str = "y") -> torch.Tensor:
        """`y` in value units (broadcast to `batch_shape`) as standardised values in the working dtype.

        Raises a `ValueError` naming `name` if `y` does not broadcast to `batch_shape`.
        """
        dtype, device = self.log_probs.dtype, self.log_probs.device
        if self.loc is None:
            return self._broadcast(torch.as_tensor(y, dtype=dtype, device=device), name)
        y = self._broadcast(torch.as_tensor(y, dtype=torch.float64, device=device), name)
        return ((y - self.loc) / self.scale).to(dtype)

    def _standardised_best(self, best: torch.Tensor | float) -> torch.Tensor:
        """`best` standardised as `_standardise` does, or a `ValueError` if any entry is NaN."""
        t = torch.as_tensor(best)
        if t.is_floating_point() and bool(torch.isnan(t).any()):
            raise ValueError(f"best contains NaN ({int(torch.isnan(t).sum())} of {t.numel()} values): give the "
                             "incumbent value to improve on (e.g. the best finite observation so far)")
        return self._standardise(best, "best")

    def _to_values(self, z: torch.Tensor) -> torch.Tensor:
        """Standardised values `z` (any `... x batch_shape`) in value units: `loc + scale * z`, float64."""
        return z if self.loc is None else self.loc + self.scale * z.double()

    def _scaled(self, z: torch.Tensor, power: int = 1) -> torch.Tensor:
        """A standardised difference-like quantity in value units: `scale**power * z`, float64."""
        return z if self.scale is None else self.scale**power * z.double()

    # --- density, cdf, quantiles ------------------------------------------------------
    def log_prob(self, y: torch.Tensor | float) -> torch.Tensor:
        """Log density at `y` (broadcast to `batch_shape`); returns `batch_shape`.

        Right-continuous: at a border, the density of the piece above it. A `y` whose shape does
        not broadcast to `batch_shape` raises a `ValueError` naming both shapes.
        """
        lp = self._stat(_log_prob_rows, self._standardise(y))
        return lp if self.scale is None else lp.double() - self.scale.log()

    def cdf(self, y: torch.Tensor | float) -> torch.Tensor:
        """P(Y <= y) at `y` (broadcast to `batch_shape`, as in `log_prob`); returns `batch_shape`."""
        return self._stat(_cdf_rows, self._standardise(y))

    def icdf(self, q: torch.Tensor | float) -> torch.Tensor:
        """The `q`-quantile (inverse of `cdf`), shape `batch_shape`.

        `q` is broadcast to `batch_shape` and must lie in `[0, 1]` (levels closer than `1e-7` to 0
        or 1 are clamped there: the outermost quantiles are finite); anything else, NaN
        included, raises a `ValueError`.
        """
        q = self._broadcast(check_probabilities(q, "q").to(self.log_probs.device, self.log_probs.dtype), "q")
        return self._to_values(self._stat(_icdf_rows, q.clamp(1e-7, 1.0 - 1e-7)))

    quantile = icdf

    def sample(self, sample_shape: tuple[int, ...] = (), generator: torch.Generator | None = None) -> torch.Tensor:
        """Draws `sample_shape x batch_shape` samples: a bucket, then a point inside it.

        Inner buckets are sampled uniformly, tails as `b_1 - s|Z|` and `b_{K-1} + s|Z|`.
        """
        draws = self._rowwise(partial(_sample_rows, n=math.prod(sample_shape), generator=generator))
        return self._to_values(draws.T.reshape(*sample_shape, *self.batch_shape))

    # --- moments ----------------------------------------------------------------------
    @property
    def mean(self) -> torch.Tensor:
        """The mean, shape `batch_shape`."""
        return self._to_values(self._stat(_mean_rows))

    @property
    def variance(self) -> torch.Tensor:
        """The variance, shape `batch_shape` (law of total variance over buckets)."""
        return self._scaled(self._stat(_variance_rows), power=2)

    @property
    def stddev(self) -> torch.Tensor:
        """The standard deviation, shape `batch_shape`."""
        return self.variance.sqrt()

    # --- acquisition ------------------------------------------------------------------
    def expected_improvement(self, best: torch.Tensor | float, maximize: bool = True) -> torch.Tensor:
        """E[max(Y - best, 0)] (or E[max(best - Y, 0)] when minimising) at `best` (broadcast to `batch_shape`).

        A NaN in `best` raises a `ValueError` (as in `log_expected_improvement` and
        `probability_of_improvement`): there is no improvement over an unknown incumbent.

        Returns:
            A `batch_shape` tensor, non-negative.
        """
        return self._scaled(self._stat(partial(_improvement_rows, maximize=maximize), self._standardised_best(best)))

    def log_expected_improvement(self, best: torch.Tensor | float, maximize: bool = True) -> torch.Tensor:
        """The log of `expected_improvement`, summed in log space: `logsumexp` over the buckets of their
        log-probability plus the log of their expected improvement.

        Finite and informative where `expected_improvement` underflows to zero (all but a
        vanishing mass on the wrong side of `best`); `-inf` only where no piece improves on
        `best` in the working dtype (`best` some 13 tail scales beyond the outermost border).
        When every row has the same `best` and the borders are shared, the pieces' improvements
        are computed once, so the cost is one `logsumexp` over the table.

        Returns:
            A `batch_shape` tensor (float64 with an affine, as `expected_improvement`).
        """
        z = self._standardised_best(best)
        if self.borders.dim() == 1 and z.numel() and bool((z == z.reshape(-1)[0]).all()):
            log_pieces = _signed_improvement_pieces(self.borders, z.reshape(-1)[0], maximize).clamp_min(0.0).log()
            out = self._stat(lambda lp, _: torch.logsumexp(lp + log_pieces, -1))
        else:
            out = self._stat(partial(_log_improvement_rows, maximize=maximize), z)
        return out if self.scale is None else out.double() + self.scale.log()

    def probability_of_improvement(self, best: torch.Tensor | float, maximize: bool = True) -> torch.Tensor:
        """P(Y > best) (or P(Y < best) when minimising); shape `batch_shape`."""
        c = self._stat(_cdf_rows, self._standardised_best(best))
        return 1.0 - c if maximize else c

    def ucb(self, beta: float = 2.0, maximize: bool = True) -> torch.Tensor:
        """Upper confidence bound `mean + sqrt(beta) * std` (BoTorch's convention), shape `batch_shape`.

        With `maximize=False` returns `-mean + sqrt(beta) * std`, so larger is better
        in both cases.
        """
        sign = 1.0 if maximize else -1.0
        return sign * self.mean + math.sqrt(beta) * self.stddev

    # --- transforms -------------------------------------------------------------------
    def negate(self) -> RiemannDistribution:
        """The distribution of `-Y` (tails swap sides; an affine `loc` changes sign)."""
        return self._from_parts(self.log_probs.flip(-1), -self.borders.flip(-1),
                                None if self.loc is None else -self.loc, self.scale)

    def affine(self, loc: torch.Tensor | float, scale: torch.Tensor | float) -> RiemannDistribution:
        """The distribution of `loc + scale * Y`.

        Args:
            loc: A float or a tensor broadcastable to `batch_shape`.
            scale: A positive float or tensor broadcastable to `batch_shape`.

        Returns:
            A distribution sharing this one's table and borders, with `loc` and `scale` kept
            in float64 (composed with this one's affine, if any).
        """
        device = self.log_probs.device
        loc = torch.as_tensor(loc, dtype=torch.float64, device=device)
        scale = torch.as_tensor(scale, dtype=torch.float64, device=device)
        if not bool(((scale > 0) & torch.isfinite(scale)).all()) or not bool(torch.isfinite(loc).all()):
            raise ValueError("affine scale must be positive and finite, and loc finite")
        try:  # numpy's: torch.broadcast_shapes imports sympy (~0.6 s) on first use, and is slower per call
            shape = torch.Size(np.broadcast_shapes(loc.shape, scale.shape, self.batch_shape))
        except ValueError:
            shape = None
        if shape != self.batch_shape:
            raise ValueError(f"affine loc {tuple(loc.shape)} and scale {tuple(scale.shape)} must broadcast to the "
                             f"batch shape {tuple(self.batch_shape)}")
        if self.loc is not None:  # loc + scale * (loc_0 + scale_0 * Y)
            loc, scale = loc + scale * self.loc, scale * self.scale
        return self._from_parts(self.log_probs, self.borders, loc, scale)

    def __getitem__(self, index) -> RiemannDistribution:
        """The distributions at `index` of the batch (borders, `loc` and `scale` indexed alike)."""
        shape = self.batch_shape
        borders = self.borders if self.borders.dim() == 1 else self.borders.expand(*shape, -1)[index]
        loc = None if self.loc is None else self.loc.expand(shape)[index]
        scale = None if self.scale is None else self.scale.expand(shape)[index]
        return self._from_parts(self.log_probs[index], borders, loc, scale)

    def __repr__(self) -> str:
        affine = "" if self.loc is None else ", affine=True"
        return f"RiemannDistribution(batch_shape={tuple(self.batch_shape)}, buckets={self.log_probs.shape[-1]}{affine})"


def check_probabilities(q: torch.Tensor | float, name: str) -> torch.Tensor:
    """`q` as a float64 tensor, or a `ValueError` naming `name` if any entry is outside `[0, 1]` or NaN."""
    q = torch.as_tensor(q, dtype=torch.float64)
    bad = ~((q >= 0.0) & (q <= 1.0))
    if bool(bad.any()):
        raise ValueError(f"{name} must be probabilities in [0, 1], got {float(q[bad][0])} ({int(bad.sum())} of "
                         f"{q.numel()} values outside)")
    return q


def bar_nll(logits: torch.Tensor, borders: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Negative log density of `y` (`batch_shape`) under the bar distribution of `logits`."""
    return -RiemannDistribution(logits, borders).log_prob(y)


__all__ = ["RiemannDistribution", "bar_nll", "borders_from_samples", "check_probabilities", "tail_borders"]

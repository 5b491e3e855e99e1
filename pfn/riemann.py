"""The Riemann (bar) distribution: a piecewise-constant density with half-normal tails.

`K` buckets with borders `b_0 < ... < b_K`. Inner buckets carry uniform density; the outer
two are half-normals pinned at `b_1` (extending left) and `b_{K-1}` (extending right),
scaled so that half of each tail's mass lies inside its bucket. Every method below is
derived from this one density, tails included.
"""

from __future__ import annotations

import math

import torch

_SQRT2 = math.sqrt(2.0)
_HALF_NORMAL_MEDIAN = 0.6744897501960817  # Phi^{-1}(0.75)
_HALF_NORMAL_MEAN = math.sqrt(2.0 / math.pi)
_LOG_HALF_NORMAL_NORM = 0.5 * math.log(2.0 / math.pi)


def _phi(z: torch.Tensor) -> torch.Tensor:
    return torch.exp(-0.5 * z * z) / math.sqrt(2.0 * math.pi)


def _Phi(z: torch.Tensor) -> torch.Tensor:
    return 0.5 * torch.erfc(-z / _SQRT2)


def _Phi_inv(p: torch.Tensor) -> torch.Tensor:
    return (_SQRT2 * torch.erfinv(2.0 * p.double() - 1.0)).to(p.dtype)


def borders_from_samples(samples: torch.Tensor, n_buckets: int) -> torch.Tensor:
    """Bucket borders at evenly spaced quantiles of `samples`.

    Args:
        samples: Any tensor of finite prior target values (flattened).
        n_buckets: Number of buckets `K`.

    Returns:
        A `K + 1` float32 tensor of strictly increasing borders.
    """
    flat = samples.flatten().double()
    flat = flat[torch.isfinite(flat)]
    if flat.numel() < n_buckets:
        raise ValueError(f"need at least {n_buckets} finite samples for {n_buckets} buckets, got {flat.numel()}")
    qs = torch.linspace(0.0, 1.0, n_buckets + 1, dtype=torch.float64)
    borders = torch.quantile(flat[: 2**24 - 1], qs) if flat.numel() >= 2**24 else torch.quantile(flat, qs)
    # Ties (discrete targets) would give empty buckets: spread borders to a minimum width,
    # wide enough (several float32 ulps of the largest border) to survive the cast to float32.
    magnitude = float(borders.abs().max())
    min_width = 1e-6 * float(borders[-1] - borders[0]) + 8 * torch.finfo(torch.float32).eps * magnitude + 1e-12
    for i in range(1, borders.numel()):
        borders[i] = torch.maximum(borders[i], borders[i - 1] + min_width)
    return borders.float()


class RiemannDistribution:
    """A batch of bar distributions sharing (or broadcasting) bucket borders.

    Args:
        logits: A `batch_shape x K` tensor of unnormalised bucket log-probabilities.
        borders: A `K + 1` tensor of increasing borders, or `batch_shape x (K + 1)`.
        normalized: Whether `logits` are normalised log-probabilities already.
    """

    def __init__(self, logits: torch.Tensor, borders: torch.Tensor, normalized: bool = False) -> None:
        if borders.shape[-1] != logits.shape[-1] + 1:
            raise ValueError(f"{logits.shape[-1]} buckets need {logits.shape[-1] + 1} borders, got {borders.shape[-1]}")
        if logits.shape[-1] < 3:
            raise ValueError("a Riemann distribution needs at least 3 buckets (two tails and an inner one)")
        # `normalized=True` takes `logits` as log-probabilities already (no copy).
        self.log_probs = logits.float() if normalized else torch.log_softmax(logits.float(), dim=-1)
        self.borders = borders.to(device=logits.device, dtype=torch.float32)

    # --- geometry -------------------------------------------------------------------
    @property
    def batch_shape(self) -> torch.Size:
        return self.log_probs.shape[:-1]

    @property
    def probs(self) -> torch.Tensor:
        """A `batch_shape x K` tensor of bucket probabilities."""
        return self.log_probs.exp()

    def _b(self, i: int) -> torch.Tensor:
        """Border `i` broadcast to `batch_shape`."""
        return self.borders[..., i].expand(self.batch_shape)

    @property
    def widths(self) -> torch.Tensor:
        return self.borders[..., 1:] - self.borders[..., :-1]

    def _tail_scales(self) -> tuple[torch.Tensor, torch.Tensor]:
        w = self.widths
        return w[..., 0] / _HALF_NORMAL_MEDIAN, w[..., -1] / _HALF_NORMAL_MEDIAN

    def _bucket_of(self, y: torch.Tensor) -> torch.Tensor:
        k = self.log_probs.shape[-1]
        if self.borders.dim() == 1:
            idx = torch.searchsorted(self.borders, y.contiguous(), right=True) - 1
        else:
            borders = self.borders.expand(*self.batch_shape, k + 1).contiguous()
            idx = torch.searchsorted(borders, y.unsqueeze(-1).contiguous(), right=True).squeeze(-1) - 1
        return idx.clamp(0, k - 1)

    def _gather(self, t: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
        t = t.expand(*self.batch_shape, t.shape[-1])
        return t.gather(-1, idx.unsqueeze(-1)).squeeze(-1)

    def _broadcast(self, y: torch.Tensor | float) -> torch.Tensor:
        y = torch.as_tensor(y, dtype=torch.float32, device=self.log_probs.device)
        return y.expand(self.batch_shape)

    # --- density, cdf, quantiles ------------------------------------------------------
    def log_prob(self, y: torch.Tensor | float) -> torch.Tensor:
        """Log density at `y` (broadcast to `batch_shape`); returns `batch_shape`."""
        y = self._broadcast(y)
        k = self.log_probs.shape[-1]
        idx = self._bucket_of(y)
        lp = self._gather(self.log_probs, idx)
        inner = lp - torch.log(self._gather(self.widths, idx))
        s_left, s_right = self._tail_scales()
        b1, bk = self._b(1), self._b(k - 1)
        z_left = (b1 - y) / s_left
        z_right = (y - bk) / s_right
        left = self.log_probs[..., 0] + _LOG_HALF_NORMAL_NORM - torch.log(s_left) - 0.5 * z_left**2
        right = self.log_probs[..., -1] + _LOG_HALF_NORMAL_NORM - torch.log(s_right) - 0.5 * z_right**2
        out = torch.where(y < b1, left, inner)
        return torch.where(y > bk, right, out)

    def cdf(self, y: torch.Tensor | float) -> torch.Tensor:
        """P(Y <= y), shape `batch_shape`."""
        y = self._broadcast(y)
        k = self.log_probs.shape[-1]
        p = self.probs
        cum_before = torch.cumsum(p, -1) - p
        idx = self._bucket_of(y)
        lo = self._gather(self.borders[..., :-1], idx)
        inner = self._gather(cum_before, idx) + self._gather(p, idx) * ((y - lo) / self._gather(self.widths, idx))
        s_left, s_right = self._tail_scales()
        b1, bk = self._b(1), self._b(k - 1)
        left = p[..., 0] * 2.0 * _Phi(-(b1 - y) / s_left)
        right = cum_before[..., -1] + p[..., -1] * (2.0 * _Phi((y - bk) / s_right) - 1.0)
        out = torch.where(y < b1, left, inner)
        return torch.where(y > bk, right, out).clamp(0.0, 1.0)

    def icdf(self, q: torch.Tensor | float) -> torch.Tensor:
        """The `q`-quantile (inverse of `cdf`), shape `batch_shape`; `q` in (0, 1)."""
        q = self._broadcast(q).clamp(1e-7, 1.0 - 1e-7)
        k = self.log_probs.shape[-1]
        p = self.probs
        cum = torch.cumsum(p, -1)
        cum_before = cum - p
        idx = torch.searchsorted(cum.contiguous(), q.unsqueeze(-1).contiguous()).squeeze(-1).clamp(0, k - 1)
        lo = self._gather(self.borders[..., :-1], idx)
        p_idx = self._gather(p, idx).clamp_min(1e-30)
        inner = lo + (q - self._gather(cum_before, idx)) / p_idx * self._gather(self.widths, idx)
        s_left, s_right = self._tail_scales()
        b1, bk = self._b(1), self._b(k - 1)
        left = b1 + s_left * _Phi_inv((q / (2.0 * p[..., 0].clamp_min(1e-30))).clamp(1e-12, 0.5))
        frac_right = ((q - cum_before[..., -1]) / p[..., -1].clamp_min(1e-30)).clamp(0.0, 1.0 - 1e-7)
        right = bk + s_right * _Phi_inv(0.5 + 0.5 * frac_right)
        out = torch.where(idx == 0, left, inner)
        return torch.where(idx == k - 1, right, out)

    quantile = icdf

    def sample(self, sample_shape: tuple[int, ...] = (), generator: torch.Generator | None = None) -> torch.Tensor:
        """Draws `sample_shape x batch_shape` samples: a bucket, then a point inside it.

        Inner buckets are sampled uniformly, tails as `b_1 - s|Z|` and `b_{K-1} + s|Z|`.
        """
        n = math.prod(sample_shape)
        k = self.log_probs.shape[-1]
        dev = self.log_probs.device
        flat_p = self.probs.reshape(-1, k)
        idx = torch.multinomial(flat_p, n, replacement=True, generator=generator).T.reshape(
            *sample_shape, *self.batch_shape)
        borders = self.borders.expand(*self.batch_shape, k + 1).expand(*sample_shape, *self.batch_shape, k + 1)
        lo = borders[..., :-1].gather(-1, idx.unsqueeze(-1)).squeeze(-1)
        hi = borders[..., 1:].gather(-1, idx.unsqueeze(-1)).squeeze(-1)
        u = torch.rand(idx.shape, generator=generator, device=dev)
        z = torch.randn(idx.shape, generator=generator, device=dev).abs()
        s_left, s_right = self._tail_scales()
        out = lo + u * (hi - lo)
        out = torch.where(idx == 0, hi - s_left * z, out)
        return torch.where(idx == k - 1, lo + s_right * z, out)

    # --- moments ----------------------------------------------------------------------
    def _piece_moments(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-bucket mean and variance (`batch_shape x K`), tails as half-normals."""
        k = self.log_probs.shape[-1]
        lo, hi = self.borders[..., :-1], self.borders[..., 1:]
        mean = ((lo + hi) / 2).expand(*self.batch_shape, k).clone()
        var = ((hi - lo) ** 2 / 12).expand(*self.batch_shape, k).clone()
        s_left, s_right = self._tail_scales()
        mean[..., 0] = self._b(1) - s_left * _HALF_NORMAL_MEAN
        mean[..., -1] = self._b(k - 1) + s_right * _HALF_NORMAL_MEAN
        var[..., 0] = s_left**2 * (1 - 2 / math.pi)
        var[..., -1] = s_right**2 * (1 - 2 / math.pi)
        return mean, var

    @property
    def mean(self) -> torch.Tensor:
        """The mean, shape `batch_shape`."""
        piece_mean, _ = self._piece_moments()
        return (self.probs * piece_mean).sum(-1)

    @property
    def variance(self) -> torch.Tensor:
        """The variance, shape `batch_shape` (law of total variance over buckets)."""
        piece_mean, piece_var = self._piece_moments()
        p = self.probs
        m = (p * piece_mean).sum(-1, keepdim=True)
        return (p * (piece_var + (piece_mean - m) ** 2)).sum(-1)

    @property
    def stddev(self) -> torch.Tensor:
        return self.variance.sqrt()

    # --- acquisition ------------------------------------------------------------------
    def negate(self) -> RiemannDistribution:
        """The distribution of `-Y` (tails swap sides)."""
        return RiemannDistribution(self.log_probs.flip(-1), -self.borders.flip(-1))

    def expected_improvement(self, best: torch.Tensor | float, maximize: bool = True) -> torch.Tensor:
        """E[max(Y - best, 0)] (or E[max(best - Y, 0)] when minimising); `batch_shape`."""
        if not maximize:
            return self.negate().expected_improvement(-self._broadcast(best), maximize=True)
        best = self._broadcast(best).unsqueeze(-1)
        k = self.log_probs.shape[-1]
        lo, hi = self.borders[..., :-1], self.borders[..., 1:]
        w = hi - lo
        inner = torch.where(best <= lo, (lo + hi) / 2 - best, (hi - best).clamp_min(0) ** 2 / (2 * w))
        s_left, s_right = self._tail_scales()
        b1, bk = self._b(1).unsqueeze(-1), self._b(k - 1).unsqueeze(-1)
        # Right tail Y = bk + s|Z|.
        d = best - bk
        sr = s_right.unsqueeze(-1)
        right = torch.where(d <= 0, -d + sr * _HALF_NORMAL_MEAN,
                            2 * (sr * _phi(d / sr) - d * (1 - _Phi(d / sr))))
        # Left tail Y = b1 - s|Z|.
        e = (b1 - best).clamp_min(0)
        sl = s_left.unsqueeze(-1)
        left = 2 * (e * (_Phi(e / sl) - 0.5) - sl * (_phi(torch.zeros_like(e)) - _phi(e / sl)))
        inner = inner.expand(*self.batch_shape, k).clone()
        inner[..., :1] = left
        inner[..., -1:] = right
        # Each piece is >= 0 in exact arithmetic; float32 cancellation in the tail terms can
        # leave a tiny negative total, which would break log-EI.
        return (self.probs * inner).sum(-1).clamp_min(0.0)

    def probability_of_improvement(self, best: torch.Tensor | float, maximize: bool = True) -> torch.Tensor:
        """P(Y > best) (or P(Y < best) when minimising); shape `batch_shape`."""
        c = self.cdf(best)
        return 1.0 - c if maximize else c

    def ucb(self, beta: float = 2.0, maximize: bool = True) -> torch.Tensor:
        """Upper confidence bound `mean + sqrt(beta) * std` (BoTorch's convention).

        With `maximize=False` returns `-mean + sqrt(beta) * std`, so larger is better
        in both cases.
        """
        sign = 1.0 if maximize else -1.0
        return sign * self.mean + math.sqrt(beta) * self.stddev

    # --- transforms -------------------------------------------------------------------
    def affine(self, loc: torch.Tensor | float, scale: torch.Tensor | float) -> RiemannDistribution:
        """The distribution of `loc + scale * Y` for positive `scale` (broadcast to `batch_shape`)."""
        loc = torch.as_tensor(loc, dtype=torch.float32, device=self.log_probs.device)
        scale = torch.as_tensor(scale, dtype=torch.float32, device=self.log_probs.device)
        if (scale <= 0).any():
            raise ValueError("affine scale must be positive")
        borders = self.borders * scale.unsqueeze(-1) + loc.unsqueeze(-1)
        out = RiemannDistribution.__new__(RiemannDistribution)
        out.log_probs, out.borders = self.log_probs, borders
        return out

    def __getitem__(self, index) -> RiemannDistribution:
        out = RiemannDistribution.__new__(RiemannDistribution)
        out.log_probs = self.log_probs[index]
        out.borders = self.borders if self.borders.dim() == 1 else self.borders.expand(*self.batch_shape, -1)[index]
        return out

    def __repr__(self) -> str:
        return f"RiemannDistribution(batch_shape={tuple(self.batch_shape)}, buckets={self.log_probs.shape[-1]})"


def bar_nll(logits: torch.Tensor, borders: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Negative log density of `y` (`batch_shape`) under the bar distribution of `logits`."""
    return -RiemannDistribution(logits, borders).log_prob(y)


__all__ = ["RiemannDistribution", "bar_nll", "borders_from_samples"]

"""Standard coordinates of a mixture prior: the Distribution Transformer works where the prior has mean 0 and
covariance I, so that one trained model serves priors of any location and scale."""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass
class Whitening:
    """The affine map `z = shift + L u` (float64) under which the prior of `u` has mean 0 and covariance I.

    Attributes:
        shift: `B x D`, the prior mixture's mean.
        tril: `B x D x D`, the lower Cholesky factor of the prior mixture's covariance.
    """

    shift: torch.Tensor
    tril: torch.Tensor

    @classmethod
    def of(cls, weights: torch.Tensor, means: torch.Tensor, scale_tril: torch.Tensor) -> Whitening:
        """The whitening of mixtures with `weights` (`B x K`), `means` (`B x K x D`), `scale_tril` (`B x K x D x D`)."""
        w = weights.unsqueeze(-1)
        shift = (w * means).sum(-2)
        centred = means - shift.unsqueeze(-2)
        second = scale_tril @ scale_tril.transpose(-1, -2) + centred.unsqueeze(-1) * centred.unsqueeze(-2)
        return cls(shift, torch.linalg.cholesky((w.unsqueeze(-1) * second).sum(-3)))

    def components(self, means: torch.Tensor, scale_tril: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Components (`B x K x D`, `B x K x D x D`) in standard coordinates (a lower factor stays lower)."""
        tril = self.tril.unsqueeze(1)
        u = torch.linalg.solve_triangular(tril, (means - self.shift.unsqueeze(1)).unsqueeze(-1), upper=False)
        return u.squeeze(-1), torch.linalg.solve_triangular(tril, scale_tril, upper=False)

    def measurements(self, a: torch.Tensor, noise_std: torch.Tensor,
                     values: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Measurements `y = a . z + N(0, s^2)` (`a`: `B x T x D`, `noise_std`, `values`: `B x T`) in standard
        coordinates and noise units: `(L^T a / s, (y - a . shift) / s)`, whose likelihood is `N(., a' . u, 1)`."""
        a_u = (a @ self.tril) / noise_std.unsqueeze(-1)
        return a_u, (values - (a * self.shift.unsqueeze(1)).sum(-1)) / noise_std

    def residuals(self, a: torch.Tensor, noise_std: torch.Tensor, values: torch.Tensor) -> torch.Tensor:
        """Standardised residuals (`B x T`) of measurements (as in `measurements`) under the prior predictive: each
        value's distance from `a . shift` in standard deviations `sqrt(a^T L L^T a + s^2)` of the prior mixture's
        moments."""
        a_u, y_u = self.measurements(a, noise_std, values)
        return y_u / (a_u.pow(2).sum(-1) + 1).sqrt()

    def restore(self, means: torch.Tensor, scale_tril: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Components in standard coordinates (`B x K x D`, `B x K x D x D`) back in the original ones."""
        tril = self.tril.unsqueeze(1)
        return self.shift.unsqueeze(1) + (tril @ means.unsqueeze(-1)).squeeze(-1), tril @ scale_tril

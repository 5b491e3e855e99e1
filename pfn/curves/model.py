"""`LCPFN`: learning-curve extrapolation for many curves at once, in one forward pass."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from pfn.checkpoint import load
from pfn.curves.inputs import check_horizon, curve_matrix
from pfn.curves.normalize import Metric
from pfn.curves.predictive import CurvePredictive
from pfn.model import PFN
from pfn.riemann import RiemannDistribution


class LCPFN:
    """A PFN trained on `priors.CurvePrior`: where will each training run end?

    The model reads a curve as a set of `(epoch / horizon, z)` pairs, `z` the metric on the
    prior's scale (`pfn.curves.normalize`), and predicts `z` at any later epoch. Curves of
    different lengths share one forward pass: each is a context padded to the longest, with a
    context mask.

    Args:
        model: A shipped model name (default `"lcpfn"`, i.e. `pretrained/lcpfn`, verified
            against the manifest), a checkpoint folder, or a `PFN` (e.g. trained in a test).
            It needs a bar head, one input feature, and its training record's `n_points` (the
            largest horizon it was trained for).
        device: Where the model runs (`"cpu"`, `"cuda"`, ...).
    """

    def __init__(self, model: str | Path | PFN = "lcpfn", device: str | torch.device = "cpu") -> None:
        self.model = model.to(device).eval() if isinstance(model, PFN) else load(model, device)
        if self.model.config.head != "bar":
            raise ValueError(f"LCPFN needs a model with a bar (regression) head, got head={self.model.config.head!r}")
        n_points = self.model.info.get("train", {}).get("n_points")
        if n_points is None:
            raise ValueError("the model has no training record of its horizon (info['train']['n_points']); train "
                             "it with pfn.train on priors.CurvePrior, or set model.info['train'] = {'n_points': H}")
        self.max_horizon = int(n_points)

    def predict(self, curves: Any, horizon: int, direction: str = "maximize",
                bounds: tuple[float | None, float | None] | None = None, chunk_size: int = 16384) -> CurvePredictive:
        """The predictive of every curve at every epoch `1, ..., horizon`.

        Args:
            curves: A list of `B` 1-D arrays of different lengths (value `j` is epoch `j + 1`),
                or a `B x L` array with NaN for unseen epochs. A NaN before a curve's last
                value is a missing epoch: it is left out of that curve's context.
            horizon: The last epoch (at most `max_horizon`, the model's training horizon);
                epochs are scaled as `epoch / horizon`.
            direction: `"maximize"` (accuracy) or `"minimize"` (loss, error).
            bounds: `(lo, hi)` of the metric, either None if unknown (see
                `pfn.curves.normalize`: both declared maps the metric affinely onto the prior's
                `[0, 1]`; otherwise it is fitted per curve). Values outside raise a `ValueError`.
            chunk_size: Queries (curves x `horizon` epochs) per forward pass: the curves are
                predicted in chunks of `chunk_size // horizon` (at least one) written into one
                `B x horizon x K` table, so memory is that table plus one chunk (10,000 curves
                at horizon 100: 4.1 GiB peak, the table 3.7 GiB, against 8.0 GiB unchunked).

        Returns:
            A `CurvePredictive` with batch shape `B x horizon` in the metric's units; entries at
            observed epochs are NaN. `pred[:, -1]` is the predictive at the horizon.
        """
        horizon = check_horizon(horizon, self.max_horizon)
        if isinstance(chunk_size, bool) or not isinstance(chunk_size, (int, np.integer)) or chunk_size < 1:
            raise ValueError(f"chunk_size must be a positive number of queries, got {chunk_size!r}")
        metric = Metric(direction, bounds)
        values = curve_matrix(curves, horizon)  # B x W
        scale = metric.fit(values)
        normalized = self._predict_z(scale.normalize(values), horizon, max(1, int(chunk_size) // horizon))
        b, w = values.shape
        observed = torch.nn.functional.pad(~torch.isnan(values), (0, horizon - w)).to(self.model.device)
        return CurvePredictive(normalized, scale.expand((b, horizon)).to(self.model.device), observed)

    def _predict_z(self, z: torch.Tensor, horizon: int, rows: int) -> RiemannDistribution:
        """The model's predictive of `z` at epochs `1, ..., horizon` of each curve of `z` (`B x W`, NaN unseen).

        Decodes `rows` curves per forward pass (each curve's prediction depends on its own row only)
        and writes their bucket log-probabilities into one table; returns a `B x horizon` distribution.
        """
        device = self.model.device
        epochs = torch.arange(1, horizon + 1, dtype=torch.float32, device=device) / horizon
        seen = ~torch.isnan(z)
        y_context = z.nan_to_num(0.0).float()
        b, w = z.shape
        table, borders = None, None
        for start in range(0, b, rows):
            n = min(rows, b - start)
            part = self.model.predict(epochs[:w].expand(n, w).unsqueeze(-1), y_context[start:start + n].to(device),
                                      epochs.expand(n, horizon).unsqueeze(-1),
                                      context_mask=seen[start:start + n].to(device))
            if table is None:
                table, borders = part.log_probs.new_empty(b, horizon, part.log_probs.shape[-1]), part.borders
            table[start:start + n] = part.log_probs
        return RiemannDistribution(table, borders, normalized=True)


__all__ = ["LCPFN"]

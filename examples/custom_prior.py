"""Any prior you can sample from becomes a fast posterior: random sinusoids.

A prior is any object with `sample(...) -> Batch` and `to_dict()`. Here: functions
`a * sin(2 pi w x + phi)` with uncertain amplitude, frequency and phase, observed with
Gaussian noise. We train a small PFN on it (a few minutes on a laptop CPU) and compare its
predictive with the exact posterior predictive computed on a grid over (a, w, phi).

    python examples/custom_prior.py            # about 3 minutes on 2 CPU cores
    python examples/custom_prior.py --quick    # a smoke run (what CI does)
"""

from __future__ import annotations

import argparse
import math
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

import pfn
from priors import Batch


# --- the user's prior: about 20 lines -----------------------------------------------------
@dataclass(frozen=True)
class SinusoidPrior:
    amplitude: tuple[float, float] = (0.5, 2.0)  # uniform ranges
    frequency: tuple[float, float] = (0.5, 2.0)
    noise_std: float = 0.1

    def to_dict(self) -> dict:
        return {"type": "SinusoidPrior", **asdict(self)}

    def sample(self, batch_size, n_points, n_features=1, *, generator=None, device="cpu", n_context=None) -> Batch:
        def uniform(lo, hi):
            return lo + (hi - lo) * torch.rand(batch_size, 1, generator=generator, device=device)

        a, w, phi = uniform(*self.amplitude), uniform(*self.frequency), uniform(0.0, 2 * math.pi)
        x = torch.rand(batch_size, n_points, 1, generator=generator, device=device)
        f = a * torch.sin(2 * math.pi * w * x[..., 0] + phi)
        y = f + self.noise_std * torch.randn(batch_size, n_points, generator=generator, device=device)
        return Batch(x=x, y=y, target_y=y, n_context=n_context or n_points // 2,
                     meta={"amplitude": a[:, 0], "frequency": w[:, 0], "phase": phi[:, 0]})
# ------------------------------------------------------------------------------------------


def grid_posterior_predictive(prior: SinusoidPrior, xc, yc, xq, yq, n_grid: int = 48) -> torch.Tensor:
    """Exact log predictive density of `yq` (`M`) at `xq` (`M`) given context `xc`, `yc` (`N`),
    by summing over a `n_grid^3` grid of (amplitude, frequency, phase); returns `M`."""
    a = torch.linspace(*prior.amplitude, n_grid, dtype=torch.float64)
    w = torch.linspace(*prior.frequency, n_grid, dtype=torch.float64)
    phi = torch.linspace(0, 2 * math.pi, n_grid + 1, dtype=torch.float64)[:-1]
    a, w, phi = (t.reshape(-1) for t in torch.meshgrid(a, w, phi, indexing="ij"))

    def f(x):  # (grid, points)
        return a[:, None] * torch.sin(2 * math.pi * w[:, None] * x.double()[None] + phi[:, None])

    normal = torch.distributions.Normal(0.0, prior.noise_std)
    log_post = normal.log_prob(yc.double()[None] - f(xc)).sum(-1)
    log_post = log_post - torch.logsumexp(log_post, 0)
    return torch.logsumexp(log_post[:, None] + normal.log_prob(yq.double()[None] - f(xq)), 0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny training run, for CI")
    parser.add_argument("--out", default="runs/sinusoid", help="checkpoint folder")
    args = parser.parse_args()
    prior = SinusoidPrior()
    model_cfg = pfn.ModelConfig(max_features=1, d_model=64, n_layers=3, n_heads=4, d_ff=128, n_buckets=200)
    train_cfg = pfn.TrainConfig(
        steps=40 if args.quick else 2500, batch_size=32, lr=1e-3, warmup_steps=10 if args.quick else 200,
        n_points=60, min_context=1, max_context=40, min_features=1, max_features=1,
        checkpoint_every=500, val_every=500, val_batches=4, border_samples=50_000, device="cpu")
    model = pfn.train(prior, model_cfg, train_cfg, Path(args.out) / ("quick" if args.quick else "full"))

    # Compare with the grid posterior on held-out tasks with 10 context points.
    batch = prior.sample(64 if not args.quick else 8, 60, generator=torch.Generator().manual_seed(99), n_context=10)
    xc, yc, xq, yq = batch.x[:, :10], batch.y[:, :10], batch.x[:, 10:], batch.y[:, 10:]
    pfn_nll = -model.predict(xc, yc, xq).log_prob(yq).mean().item()
    exact_nll = -torch.stack([grid_posterior_predictive(prior, xc[i, :, 0], yc[i], xq[i, :, 0], yq[i])
                              for i in range(len(yc))]).mean().item()
    print(f"held-out predictive NLL per point (10 context points): PFN {pfn_nll:.3f}, "
          f"exact grid posterior {exact_nll:.3f}, gap {pfn_nll - exact_nll:+.3f} nats")
    if not math.isfinite(pfn_nll):
        raise SystemExit("PFN NLL is not finite")


if __name__ == "__main__":
    main()

"""In-context linear regression: a PFN against the exact Bayesian posterior predictive.

Every task is a noisy linear function `y = x . w + eps` in up to 8 dimensions with standard
normal weights and inputs and an unknown noise level (`priors.LinearRegressionPrior`). For
this prior the Bayes-optimal predictive is known in closed form (ridge regression with the
noise variance as penalty, integrated over the noise hyperprior), so we can see how close one
forward pass of the PFN comes to exact inference, for few and for many context points.

    python examples/linear_regression.py            # the shipped model "linreg" (or trains one)
    python examples/linear_regression.py --quick    # a smoke run (what CI does)
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

import pfn
import pfn.checkpoint
from priors import LinearRegressionPrior, prior_from_dict
from priors.linreg import linreg_posterior_predictive, noise_marginal_predictive


def get_model(quick: bool, out: Path) -> torch.nn.Module:
    """The shipped model "linreg" if present; otherwise trains one (a tiny one with `quick`)."""
    if "linreg" in pfn.checkpoint.read_manifest()["models"]:
        return pfn.checkpoint.load("linreg")
    print("pretrained/linreg is not shipped: training a small model here")
    model_cfg = pfn.ModelConfig(max_features=8, d_model=32 if quick else 96, n_layers=2 if quick else 4, n_heads=4,
                                d_ff=64 if quick else 192, n_buckets=100 if quick else 1000)
    train_cfg = pfn.TrainConfig(
        steps=30 if quick else 3000, batch_size=16 if quick else 64, lr=1e-3, warmup_steps=5 if quick else 200,
        n_points=60, min_context=1, max_context=40, min_features=1, max_features=8, checkpoint_every=500,
        val_every=500, val_batches=2, border_samples=20_000 if quick else 200_000, device="cpu")
    return pfn.train(LinearRegressionPrior(), model_cfg, train_cfg, out / ("quick" if quick else "full"),
                     progress=not quick)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny model (if none is shipped) and few tasks, for CI")
    parser.add_argument("--out", default="runs/linreg-example", help="checkpoint folder if a model is trained")
    args = parser.parse_args()
    model = get_model(args.quick, Path(args.out))
    prior = prior_from_dict(model.info["prior"]) if "prior" in model.info else LinearRegressionPrior()

    d, n_query = 4, 20
    tasks = 16 if args.quick else 256
    print(f"{d}-dimensional tasks, {tasks} of them, {n_query} queries each; MSE against noisy y*, NLL in nats")
    print(f"{'context':>7}  {'PFN MSE':>8}  {'ridge MSE':>9}  {'PFN NLL':>8}  {'exact NLL':>9}")
    for n in (2, 4, 8, 16, 32):
        batch = prior.sample(tasks, n + n_query, d, generator=torch.Generator().manual_seed(1000 + n), n_context=n)
        xc, yc, xq, yq = batch.x[:, :n], batch.y[:, :n], batch.x[:, n:], batch.y[:, n:]
        predictive = model.predict(xc, yc, xq)
        # Bayes-optimal with the true noise (ridge, lambda = sigma^2) and with the noise integrated out.
        ridge_mean, _ = linreg_posterior_predictive(xc, yc, xq, batch.meta["noise"])
        exact = noise_marginal_predictive(xc, yc, xq, prior.noise)
        pfn_mse = (predictive.mean - yq).pow(2).mean().item()
        ridge_mse = (ridge_mean - yq.double()).pow(2).mean().item()
        pfn_nll = -predictive.log_prob(yq).mean().item()
        exact_nll = -exact.log_prob(yq).mean().item()
        print(f"{n:>7}  {pfn_mse:>8.3f}  {ridge_mse:>9.3f}  {pfn_nll:>8.3f}  {exact_nll:>9.3f}")
    print("PFN: one forward pass; exact predictive: conjugate posterior integrated over the noise prior")


if __name__ == "__main__":
    main()

"""Bayesian updates of a Gaussian-mixture belief in one forward pass: the Distribution Transformer.

A robot is somewhere in the plane: either near the door or near the window (a two-component
prior). A range-like sensor reads one noisy linear combination of its coordinates at a time.
We ask the pretrained model for the posterior mixture after a few readings, compare it with the
exact posterior (closed form), and then track the robot as it moves: each posterior, pushed
through the motion model, is the next prior.

    python examples/distribution_transformer.py           # the shipped model (pretrained/dist-gmm)
    python examples/distribution_transformer.py --quick   # CI: a tiny model trained for a few steps if
                                                          # dist-gmm is not shipped
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

import pfn
from pfn.checkpoint import read_manifest
from pfn.distribution_transformer import GMM, LinearGaussian, exact_posterior
from pfn.distribution_transformer.evaluation import kl_monte_carlo
from priors import GMMTaskPrior


def get_model(args: argparse.Namespace) -> pfn.DistributionTransformer:
    """The model of `--model`, else the shipped dist-gmm, else (with `--quick`) a tiny one trained here."""
    if args.model:
        return pfn.load(args.model)
    if "dist-gmm" in read_manifest()["models"]:
        return pfn.load("dist-gmm")
    if not args.quick:
        raise SystemExit("pretrained/dist-gmm is not shipped: train it with `pfn train dist-gmm --out runs/dist-gmm` "
                         "and pass --model runs/dist-gmm (or run with --quick)")
    print("dist-gmm is not shipped: training a tiny model for a few steps (quick mode; expect a poor fit)")
    model_cfg = pfn.ModelConfig(architecture="dist", head="gmm", max_features=6, d_model=32, n_layers=2, n_heads=2,
                                d_ff=64)
    train_cfg = pfn.TrainConfig(steps=30, batch_size=32, lr=3e-3, warmup_steps=5, n_points=34, max_context=30,
                                mixed_context=True, min_features=6, max_features=6, checkpoint_every=30,
                                val_every=30, val_batches=1, device="cpu")
    return pfn.train(GMMTaskPrior(), model_cfg, train_cfg, Path(args.out) / "dist-quick", progress=False)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="CI smoke run")
    parser.add_argument("--model", help="a checkpoint or run folder (default: the shipped dist-gmm)")
    parser.add_argument("--out", default="runs/examples", help="where quick mode trains its tiny model")
    args = parser.parse_args()
    model = get_model(args)

    # Door or window: a two-component prior over the position (x, y) in metres.
    prior = GMM(weights=torch.tensor([0.6, 0.4]), means=torch.tensor([[0.0, 0.0], [3.0, 1.0]]),
                covs=torch.tensor([[[0.5, 0.1], [0.1, 0.3]], [[0.4, -0.1], [-0.1, 0.6]]]))
    sensor = LinearGaussian(matrix=torch.tensor([[0.8, 0.6]]), noise_var=0.3)
    truth = torch.tensor([2.6, 1.3])
    noise = 0.3**0.5 * torch.randn(4, 1, generator=torch.Generator().manual_seed(1))
    readings = truth @ sensor.matrix.float().T + noise  # four readings, one row each

    predicted = model.posterior(prior, readings, sensor)
    exact = exact_posterior(prior, readings, sensor)
    for name, gmm in (("prior", prior), ("predicted", predicted), ("exact", exact)):
        print(f"{name:>10}: {gmm.describe()}")
    kl_predicted, kl_prior = (float(kl_monte_carlo(q, exact, 20_000, torch.Generator().manual_seed(0)))
                              for q in (predicted, prior))
    print(f"KL(predicted || exact) = {kl_predicted:.3f} nats, KL(prior || exact) = {kl_prior:.3f} nats")

    # Tracking: the robot drifts; each posterior, moved by the motion model, is the next prior.
    motion, motion_noise = torch.tensor([[1.0, 0.1], [0.0, 1.0]]), 0.05 * torch.eye(2)
    steps = 3 if args.quick else 10
    gen = torch.Generator().manual_seed(2)
    belief_model, belief_exact, position = prior, prior, truth.double()
    nll_model = nll_exact = 0.0
    for _ in range(steps):
        position = motion.double() @ position + 0.05**0.5 * torch.randn(2, generator=gen, dtype=torch.float64)
        reading = (sensor.matrix @ position + 0.3**0.5 * torch.randn(1, generator=gen, dtype=torch.float64))[None]
        belief_model = model.posterior(belief_model, reading, sensor)
        belief_exact = exact_posterior(belief_exact, reading, sensor)
        nll_model -= float(belief_model.log_prob(position))
        nll_exact -= float(belief_exact.log_prob(position))
        belief_model = belief_model.linear_step(motion, motion_noise)
        belief_exact = belief_exact.linear_step(motion, motion_noise)
    print(f"tracking {steps} steps: NLL of the true positions, model {nll_model / steps:.3f}, "
          f"exact filter {nll_exact / steps:.3f} nats per step")


if __name__ == "__main__":
    main()

"""`priors.BOPrior`: the BO surrogate's prior draws what its docstring says, reproducibly."""

from __future__ import annotations

import pytest
import torch

from priors import BOPrior, Fixed, prior_from_dict
from priors.kernels import KERNELS


def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def test_shapes_meta_and_reproducibility():
    prior = BOPrior()
    a = prior.sample(6, 40, 5, generator=gen(0), n_context=30)
    b = prior.sample(6, 40, 5, generator=gen(0), n_context=30)
    assert a.x.shape == (6, 40, 5) and a.y.shape == a.target_y.shape == (6, 40) and a.n_context == 30
    assert torch.equal(a.x, b.x) and torch.equal(a.y, b.y)
    assert ((a.x >= 0) & (a.x <= 1)).all() and torch.isfinite(a.y).all()
    assert a.meta["lengthscale"].shape == a.meta["relevant"].shape == (6, 5)
    for key in ("outputscale", "noise", "kernel", "warped"):
        assert a.meta[key].shape == (6,)
    assert not torch.equal(a.y, prior.sample(6, 40, 5, generator=gen(1)).y)


def test_irrelevant_inputs_do_not_change_the_function_and_one_input_is_always_relevant():
    prior = BOPrior(irrelevant_probability=0.6, noise=Fixed(0.0), noiseless_probability=1.0)
    batch = prior.sample(300, 12, 3, generator=gen(2))
    relevant = batch.meta["relevant"]
    assert relevant.any(-1).all()
    assert torch.isinf(batch.meta["lengthscale"][~relevant]).all()
    assert torch.isfinite(batch.meta["lengthscale"][relevant]).all()
    # with p = 0.6 of irrelevance, the forced input lifts the mean relevant fraction to 0.4 + 0.6^3 / 3
    assert relevant.float().mean().item() == pytest.approx(0.4 + 0.6**3 / 3, abs=0.03)
    # a dataset with exactly one relevant input: points differing only in the others have equal values
    prior1 = BOPrior(irrelevant_probability=1.0, noise=Fixed(0.0), noiseless_probability=1.0, warp_probability=0.0)
    hyp = prior1.sample_hyperparameters(1, 3, gen(3))
    keep = int(hyp["relevant"][0].nonzero()[0])
    x = torch.rand(1, 8, 3, generator=gen(4))
    x[:, 4:, keep] = x[:, :4, keep]
    from priors.gp import sample_gp_functions

    f = sample_gp_functions(x, hyp, gen(5))
    torch.testing.assert_close(f[:, 4:], f[:, :4], atol=1e-3, rtol=0)


def test_lengthscales_grow_with_the_square_root_of_the_relevant_dimension():
    prior = BOPrior(irrelevant_probability=0.0)
    median = {f: prior.sample_hyperparameters(4000, f, gen(f))["lengthscale"].median().item() for f in (1, 4, 9)}
    assert median[4] / median[1] == pytest.approx(2.0, rel=0.1)
    assert median[9] / median[1] == pytest.approx(3.0, rel=0.1)


def test_noiseless_fraction_kernels_and_warps_follow_their_probabilities():
    prior = BOPrior(noiseless_probability=0.25, warp_probability=0.7, kernels=("rbf", "matern12"),
                    kernel_weights=(1.0, 3.0))
    hyp = prior.sample_hyperparameters(8000, 2, gen(6))
    assert (hyp["noise"] == 1e-6).float().mean().item() == pytest.approx(0.25, abs=0.02)
    assert hyp["warped"].float().mean().item() == pytest.approx(0.7, abs=0.02)
    assert (hyp["kernel"] == KERNELS.index("matern12")).float().mean().item() == pytest.approx(0.75, abs=0.02)


def test_warping_is_a_monotone_map_of_the_cube_onto_itself():
    prior = BOPrior()
    x = torch.linspace(0, 1, 101).view(1, 101, 1).expand(64, 101, 1)
    warped = prior.warp(x, torch.ones(64, dtype=torch.bool), gen(7))
    assert (warped.diff(dim=1) >= 0).all()
    torch.testing.assert_close(warped[:, [0, -1]], x[:, [0, -1]])
    assert (warped - x).abs().amax() > 0.05
    torch.testing.assert_close(prior.warp(x, torch.zeros(64, dtype=torch.bool), gen(7)), x)


def test_some_datasets_crowd_their_points_around_a_centre():
    def nearest_neighbour_distance(x: torch.Tensor) -> torch.Tensor:
        d = torch.cdist(x, x) + torch.eye(x.shape[1]) * 10
        return d.amin(-1).median(-1).values  # B

    local = nearest_neighbour_distance(BOPrior(local_probability=1.0).sample(200, 100, 2, generator=gen(8)).x)
    uniform = nearest_neighbour_distance(BOPrior(local_probability=0.0).sample(200, 100, 2, generator=gen(8)).x)
    assert local.median() < 0.8 * uniform.median()
    assert (local < uniform.quantile(0.01)).float().mean() > 0.2  # a good share of datasets is crowded


def test_config_round_trips_and_bad_values_are_refused():
    prior = BOPrior(irrelevant_probability=0.1, kernels=("matern52",))
    assert prior_from_dict(prior.to_dict()) == prior
    with pytest.raises(ValueError, match="irrelevant_probability"):
        BOPrior(irrelevant_probability=1.5)
    with pytest.raises(ValueError, match="kernels"):
        BOPrior(kernels=("cosine",))
    with pytest.raises(ValueError, match="kernel_weights"):
        BOPrior(kernels=("rbf",), kernel_weights=(1.0, 2.0))

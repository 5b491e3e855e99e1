"""Prior samplers: the `Batch` contract, shapes, reproducibility, serialisation, statistics."""

from __future__ import annotations

import ast
import json
import math
from pathlib import Path

import pytest
import torch

from priors import (
    BNNPrior,
    Fixed,
    Gamma,
    GPPrior,
    HyperpriorWrapper,
    LogNormal,
    MixturePrior,
    SCMPrior,
    Uniform,
    prior_from_dict,
)
from priors.batch import Batch
from priors.gp import sample_gp_functions
from priors.hyperpriors import hyperprior_from_dict
from priors.kernels import KERNEL_FUNCTIONS, KERNELS, matern12, matern32, matern52, rbf

PRIORS = {
    "gp": GPPrior(),
    "bnn": BNNPrior(),
    "mixture": MixturePrior((GPPrior(), BNNPrior(max_width=16)), weights=(2.0, 1.0)),
}


def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


# --- Batch ----------------------------------------------------------------------------

def test_batch_accepts_consistent_shapes_and_reports_sizes():
    b = Batch(torch.zeros(3, 5, 2), torch.zeros(3, 5), torch.zeros(3, 5), n_context=2)
    assert (b.batch_size, b.n_points, b.n_features) == (3, 5, 2)
    assert b.with_n_context(4).n_context == 4
    assert b.to("cpu").x.shape == (3, 5, 2)


@pytest.mark.parametrize(
    "x, y, target_y, n_context, match",
    [
        (torch.zeros(3, 5), torch.zeros(3, 5), torch.zeros(3, 5), 2, "B x N x F"),
        (torch.zeros(3, 5, 2), torch.zeros(3, 4), torch.zeros(3, 5), 2, "Batch.y"),
        (torch.zeros(3, 5, 2), torch.zeros(3, 5), torch.zeros(2, 5), 2, "Batch.target_y"),
        (torch.zeros(3, 5, 2), torch.zeros(3, 5), torch.zeros(3, 5), 6, "n_context"),
        (torch.zeros(3, 5, 2), torch.zeros(3, 5), torch.zeros(3, 5), -1, "n_context"),
    ],
)
def test_batch_rejects_inconsistent_shapes(x, y, target_y, n_context, match):
    with pytest.raises(ValueError, match=match):
        Batch(x, y, target_y, n_context)


def test_batch_with_n_context_validates_the_new_split():
    b = Batch(torch.zeros(1, 4, 1), torch.zeros(1, 4), torch.zeros(1, 4), n_context=2)
    with pytest.raises(ValueError):
        b.with_n_context(5)


# --- shapes, reproducibility, serialisation ---------------------------------------------

@pytest.mark.parametrize("name", sorted(PRIORS))
@pytest.mark.parametrize("n_features", [1, 3])
def test_prior_returns_batch_first_shapes(name, n_features):
    batch = PRIORS[name].sample(6, 11, n_features, generator=gen(0))
    assert batch.x.shape == (6, 11, n_features)
    assert batch.y.shape == batch.target_y.shape == (6, 11)
    assert batch.n_context == 11 // 2
    assert batch.x.dtype == batch.y.dtype == torch.float32
    assert torch.isfinite(batch.x).all() and torch.isfinite(batch.y).all() and torch.isfinite(batch.target_y).all()
    for key, value in batch.meta.items():
        assert value.shape[0] == 6, key
    assert PRIORS[name].sample(6, 11, n_features, generator=gen(0), n_context=3).n_context == 3


@pytest.mark.parametrize("name", sorted(PRIORS))
def test_prior_inputs_lie_in_the_unit_cube(name):
    x = PRIORS[name].sample(8, 30, 2, generator=gen(1)).x
    assert x.min() >= 0.0 and x.max() <= 1.0


@pytest.mark.parametrize("name", sorted(PRIORS))
def test_same_generator_seed_gives_identical_batches(name):
    a = PRIORS[name].sample(5, 9, 2, generator=gen(42))
    b = PRIORS[name].sample(5, 9, 2, generator=gen(42))
    for field in ("x", "y", "target_y"):
        assert torch.equal(getattr(a, field), getattr(b, field)), field
    assert a.meta.keys() == b.meta.keys()
    for key in a.meta:
        assert torch.equal(a.meta[key].nan_to_num(-7.0), b.meta[key].nan_to_num(-7.0)), key


@pytest.mark.parametrize("name", sorted(PRIORS))
def test_different_generator_seeds_give_different_batches(name):
    a = PRIORS[name].sample(5, 9, 2, generator=gen(1))
    b = PRIORS[name].sample(5, 9, 2, generator=gen(2))
    assert not torch.equal(a.x, b.x)
    assert not torch.equal(a.y, b.y)
    assert not torch.equal(a.target_y, b.target_y)


@pytest.mark.parametrize(
    "prior",
    [
        GPPrior(),
        GPPrior(lengthscale=Fixed(0.3), outputscale=Gamma(2.0, 3.0), noise=Uniform(0.0, 0.1),
                kernels=("matern52",), noisy_targets=True),
        GPPrior(kernels=("rbf", "matern52"), kernel_weights=(0.2, 0.8)),
        BNNPrior(),
        BNNPrior(min_depth=2, max_depth=2, min_width=4, max_width=9, activations=("sin",), weight_scale=1.5),
        MixturePrior((GPPrior(noise=Fixed(0.01)), BNNPrior(max_depth=1)), weights=(1.0, 3.0)),
        MixturePrior((MixturePrior((GPPrior(),)), BNNPrior())),
        MixturePrior((SCMPrior(max_classes=3), HyperpriorWrapper(SCMPrior(), {"binary_fraction": Uniform(0.0, 1.0)}))),
    ],
    ids=["gp-default", "gp-custom", "gp-weights", "bnn-default", "bnn-custom", "mixture", "nested-mixture",
         "mixture-of-wrapper"],
)
def test_to_dict_from_dict_round_trip(prior):
    d = prior.to_dict()
    rebuilt = prior_from_dict(d)
    assert rebuilt == prior
    assert rebuilt.to_dict() == d
    # The dict is JSON-serialisable (it goes into checkpoint config.json).
    assert prior_from_dict(json.loads(json.dumps(d))) == prior
    # And the rebuilt prior draws the same data.
    a = prior.sample(3, 7, 2, generator=gen(5))
    b = rebuilt.sample(3, 7, 2, generator=gen(5))
    assert torch.equal(a.y, b.y)


def test_prior_modules_import_at_top_level_and_the_registry_imports_no_prior():
    # Composite priors rebuild their parts through `priors.registry`, which imports nothing of the package:
    # no import cycle, and so no import hidden inside a function to dodge one.
    package = Path(prior_from_dict.__code__.co_filename).parent
    for path in sorted(package.glob("*.py")):
        tree = ast.parse(path.read_text())
        top_level = {id(node) for node in tree.body if isinstance(node, (ast.Import, ast.ImportFrom))}
        nested = [node.lineno for node in ast.walk(tree)
                  if isinstance(node, (ast.Import, ast.ImportFrom)) and id(node) not in top_level]
        assert not nested, f"{path.name} imports inside functions at lines {nested}"
        if path.name == "registry.py":
            assert not [n for n in tree.body if isinstance(n, ast.ImportFrom) and (n.module or "").startswith("priors")]


def test_prior_from_dict_rejects_unknown_types():
    with pytest.raises(ValueError, match="unknown prior type"):
        prior_from_dict({"type": "NoSuchPrior"})
    with pytest.raises(ValueError, match="unknown prior type"):
        prior_from_dict({})
    with pytest.raises(ValueError, match="unknown hyperprior type"):
        hyperprior_from_dict({"type": "Cauchy", "loc": 0.0})


def test_hyperprior_from_dict_reads_bare_numbers_as_fixed():
    assert hyperprior_from_dict(0.5) == Fixed(0.5)
    assert hyperprior_from_dict(2) == Fixed(2.0)
    assert GPPrior(noise=0.1).noise == Fixed(0.1)


# --- GP prior ----------------------------------------------------------------------------

@pytest.mark.parametrize(
    "prior",
    [
        GPPrior(),
        GPPrior(lengthscale=Fixed(5.0), noise=Fixed(1e-8)),
        GPPrior(lengthscale=Fixed(0.01), noise=Fixed(1e-8)),
        GPPrior(lengthscale=Fixed(5.0), noise=Fixed(1e-8), kernels=("rbf",)),
        GPPrior(lengthscale=LogNormal(0.0, 2.0), outputscale=LogNormal(0.0, 1.5), noise=Fixed(1e-8)),
    ],
    ids=["default", "long-lengthscale", "short-lengthscale", "long-rbf", "wide-hyperprior"],
)
def test_gp_prior_never_returns_nan_or_inf(prior):
    for seed in range(200):
        n_features = 1 + seed % 3
        batch = prior.sample(4, 60, n_features, generator=gen(seed))
        for field in ("x", "y", "target_y"):
            t = getattr(batch, field)
            assert torch.isfinite(t).all(), f"seed {seed}: non-finite {field}"


def test_gp_prior_target_is_noise_free():
    noise = 0.04
    batch = GPPrior(noise=Fixed(noise)).sample(64, 50, 2, generator=gen(3))
    residual = batch.y - batch.target_y
    assert abs(residual.mean().item()) < 0.01
    assert residual.var().item() == pytest.approx(noise, rel=0.06)  # 3200 draws: SE of var ~2.5%


def test_gp_prior_noise_matches_the_sampled_noise_per_dataset():
    batch = GPPrior().sample(64, 50, 1, generator=gen(4))
    standardized = (batch.y - batch.target_y) / batch.meta["noise"].sqrt().unsqueeze(-1)
    assert standardized.var().item() == pytest.approx(1.0, rel=0.06)
    assert abs(standardized.mean().item()) < 0.06


def test_gp_prior_noisy_targets_scores_the_observations():
    batch = GPPrior(noisy_targets=True).sample(4, 10, 1, generator=gen(0))
    assert torch.equal(batch.target_y, batch.y)


def test_gp_prior_meta_has_documented_keys_and_shapes():
    batch = GPPrior().sample(7, 12, 3, generator=gen(0))
    assert set(batch.meta) == {"lengthscale", "outputscale", "noise", "kernel"}
    assert batch.meta["lengthscale"].shape == (7, 3)
    for key in ("outputscale", "noise", "kernel"):
        assert batch.meta[key].shape == (7,), key
    assert (batch.meta["lengthscale"] > 0).all() and (batch.meta["outputscale"] > 0).all()
    assert (batch.meta["noise"] > 0).all()
    assert set(batch.meta["kernel"].tolist()) <= set(range(len(KERNELS)))


def test_gp_prior_kernel_weights_select_kernels():
    only_matern = GPPrior(kernels=("rbf", "matern52"), kernel_weights=(0.0, 1.0))
    kernel = only_matern.sample(50, 4, 1, generator=gen(0)).meta["kernel"]
    assert (kernel == KERNELS.index("matern52")).all()
    mixed = GPPrior(kernels=("rbf", "matern52"), kernel_weights=(1.0, 3.0)).sample(4000, 2, 1, generator=gen(1))
    frac_matern = (mixed.meta["kernel"] == KERNELS.index("matern52")).float().mean().item()
    assert frac_matern == pytest.approx(0.75, abs=0.03)


def test_kernels_have_their_closed_forms_at_unit_distance():
    one = torch.tensor(1.0, dtype=torch.float64)
    r5, r3 = math.sqrt(5.0), math.sqrt(3.0)
    assert rbf(one).item() == pytest.approx(math.exp(-0.5))
    assert matern52(one).item() == pytest.approx((1 + r5 + 5 / 3) * math.exp(-r5))
    assert matern32(one).item() == pytest.approx((1 + r3) * math.exp(-r3))
    assert matern12(one).item() == pytest.approx(math.exp(-1.0))
    assert [f.__name__ for f in KERNEL_FUNCTIONS] == list(KERNELS)


@pytest.mark.parametrize("kernel", KERNELS)
def test_gp_function_covariance_at_two_fixed_points_matches_the_kernel(kernel):
    n, lengthscale, outputscale = 20000, 0.4, 1.7
    prior = GPPrior(lengthscale=Fixed(lengthscale), outputscale=Fixed(outputscale), kernels=(kernel,))
    hyp = prior.sample_hyperparameters(n, 2, gen(0))
    x = torch.tensor([[0.1, 0.5], [0.35, 0.7]]).expand(n, 2, 2)
    f = sample_gp_functions(x, hyp, gen(1)).double()
    d2 = ((x[0, 0] - x[0, 1]) ** 2).sum().double() / lengthscale**2
    corr = KERNEL_FUNCTIONS[KERNELS.index(kernel)](d2).item()
    emp = f.T @ f / n  # zero-mean GP
    se_var = outputscale * math.sqrt(2.0 / n)
    assert emp[0, 0].item() == pytest.approx(outputscale, abs=5 * se_var)
    assert emp[1, 1].item() == pytest.approx(outputscale, abs=5 * se_var)
    se_cov = outputscale * math.sqrt((1.0 + corr**2) / n)
    assert emp[0, 1].item() == pytest.approx(outputscale * corr, abs=5 * se_cov)
    assert abs(f.mean(0)).max().item() < 5 * math.sqrt(outputscale / n)


def test_gp_prior_sample_covariance_matches_the_kernel_at_the_sampled_inputs():
    # Through the public `sample`: E[f_i f_j - k(x_i, x_j)] = 0 for the drawn inputs.
    n, lengthscale, outputscale = 20000, 0.3, 0.8
    prior = GPPrior(lengthscale=Fixed(lengthscale), outputscale=Fixed(outputscale), noise=Fixed(0.01),
                    kernels=("rbf",))
    batch = prior.sample(n, 2, 1, generator=gen(2))
    d2 = ((batch.x[:, 0, 0] - batch.x[:, 1, 0]) / lengthscale) ** 2
    k01 = outputscale * torch.exp(-0.5 * d2)
    f = batch.target_y.double()
    resid = f[:, 0] * f[:, 1] - k01.double()
    assert abs(resid.mean().item()) < 5 * resid.std().item() / math.sqrt(n)
    assert (f**2).mean().item() == pytest.approx(outputscale, abs=5 * outputscale * math.sqrt(2.0 / (2 * n)))


# --- BNN and mixture -----------------------------------------------------------------------

def test_bnn_prior_meta_has_documented_keys_and_ranges():
    prior = BNNPrior(min_depth=1, max_depth=3, min_width=4, max_width=12, activations=("tanh", "relu"))
    batch = prior.sample(200, 5, 2, generator=gen(0))
    assert set(batch.meta) == {"depth", "width", "activation", "weight_scale", "bias_scale", "noise"}
    for value in batch.meta.values():
        assert value.shape == (200,)
    assert set(batch.meta["depth"].tolist()) == {1, 2, 3}
    assert batch.meta["width"].min() >= 4 and batch.meta["width"].max() <= 12
    assert set(batch.meta["activation"].tolist()) == {0, 1}  # indices into ACTIVATIONS: tanh, relu


def test_bnn_prior_target_is_noise_free():
    batch = BNNPrior(noise=Fixed(0.09)).sample(64, 50, 2, generator=gen(6))
    assert (batch.y - batch.target_y).var().item() == pytest.approx(0.09, rel=0.06)


def test_mixture_prior_meta_marks_components_and_their_hyperparameters():
    prior = MixturePrior((GPPrior(noise=Fixed(0.02)), BNNPrior(noise=Fixed(0.03))), weights=(1.0, 1.0))
    batch = prior.sample(40, 6, 2, generator=gen(0))
    component = batch.meta["component"]
    assert component.shape == (40,)
    assert set(component.tolist()) == {0, 1}
    gp_rows, bnn_rows = component == 0, component == 1
    assert batch.meta["0.lengthscale"].shape == (40, 2)
    assert torch.isnan(batch.meta["0.lengthscale"][bnn_rows]).all()
    assert torch.isfinite(batch.meta["0.lengthscale"][gp_rows]).all()
    assert (batch.meta["0.kernel"][bnn_rows] == -1).all()
    assert (batch.meta["1.depth"][gp_rows] == -1).all()
    assert torch.allclose(batch.meta["0.noise"][gp_rows], torch.tensor(0.02))
    assert torch.allclose(batch.meta["1.noise"][bnn_rows], torch.tensor(0.03))


def test_mixture_merges_meta_that_every_drawn_component_provides_under_its_plain_key():
    prior = MixturePrior((GPPrior(noise=Fixed(0.02)), BNNPrior(noise=Fixed(0.03))))
    batch = prior.sample(40, 6, 2, generator=gen(0))
    gp_rows = batch.meta["component"] == 0
    assert torch.allclose(batch.meta["noise"], torch.where(gp_rows, 0.02, 0.03))  # both have a `B` float noise
    assert "lengthscale" not in batch.meta and "depth" not in batch.meta  # only one component has them
    nested = MixturePrior((MixturePrior((GPPrior(), GPPrior())), GPPrior())).sample(40, 6, 2, generator=gen(1))
    assert set(nested.meta["component"].tolist()) == {0, 1}  # the mixture's own `component` is never merged
    assert set(nested.meta["0.component"][nested.meta["component"] == 0].tolist()) == {0, 1}


def test_mixture_of_classification_priors_keeps_n_classes_for_the_loss():
    prior = MixturePrior((SCMPrior(max_classes=2), SCMPrior(binary_fraction=0.0, max_classes=6)))
    batch = prior.sample(200, 40, 3, generator=gen(2))
    n_classes, component = batch.meta["n_classes"], batch.meta["component"]
    assert n_classes.shape == (200,) and n_classes.dtype == torch.long
    assert (n_classes[component == 0] == 2).all()
    assert n_classes[component == 1].min() >= 3 and n_classes[component == 1].max() <= 6
    assert (batch.y >= 0).all() and (batch.y < n_classes.unsqueeze(-1)).all()
    assert (batch.y[component == 1].amax(1) >= 2).float().mean() > 0.9  # multi-class rows use their larger counts
    torch.testing.assert_close(batch.meta["1.n_classes"][component == 1], n_classes[component == 1])


def test_mixture_samples_its_components_with_its_context_size():
    prior = MixturePrior((SCMPrior(task="regression"), SCMPrior(task="regression", max_layers=2)))
    batch = prior.sample(30, 50, 2, generator=gen(3), n_context=10)
    assert batch.n_context == 10
    torch.testing.assert_close(batch.y[:, :10].mean(1), torch.zeros(30), atol=1e-5, rtol=0)


def test_mixture_prior_weights_set_component_frequencies():
    prior = MixturePrior((GPPrior(), BNNPrior(max_width=8)), weights=(3.0, 1.0))
    component = prior.sample(2000, 2, 1, generator=gen(0)).meta["component"]
    assert (component == 0).float().mean().item() == pytest.approx(0.75, abs=0.04)


def test_mixture_with_zero_weight_never_draws_that_component():
    prior = MixturePrior((GPPrior(), BNNPrior()), weights=(1.0, 0.0))
    batch = prior.sample(30, 4, 1, generator=gen(0))
    assert (batch.meta["component"] == 0).all()
    assert not any(k.startswith("1.") for k in batch.meta)


# --- hyperpriors ---------------------------------------------------------------------------

@pytest.mark.parametrize("concentration, rate", [(0.5, 2.0), (1.0, 1.0), (2.5, 0.5), (9.0, 3.0)])
def test_gamma_hyperprior_matches_its_mean_and_variance(concentration, rate):
    n = 100_000
    s = Gamma(concentration, rate).sample((n,), gen(0), "cpu").double()
    assert (s > 0).all()
    mean, var = concentration / rate, concentration / rate**2
    assert s.mean().item() == pytest.approx(mean, abs=5 * math.sqrt(var / n))
    # Var of the sample variance: (mu4 - var^2) / n with Gamma excess kurtosis 6 / concentration.
    se_var = var * math.sqrt((2.0 + 6.0 / concentration) / n)
    assert s.var().item() == pytest.approx(var, abs=5 * se_var)


@pytest.mark.parametrize("loc, scale", [(0.0, 0.5), (-1.0, 0.75), (2.0, 0.2), (0.3, 0.0)])
def test_lognormal_hyperprior_matches_its_mean_and_variance(loc, scale):
    n = 100_000
    s = LogNormal(loc, scale).sample((n,), gen(0), "cpu").double()
    mean = math.exp(loc + scale**2 / 2)
    var = (math.exp(scale**2) - 1.0) * math.exp(2 * loc + scale**2)
    assert s.mean().item() == pytest.approx(mean, rel=1e-6, abs=5 * math.sqrt(var / n))
    log_s = s.log()
    assert log_s.mean().item() == pytest.approx(loc, abs=5 * scale / math.sqrt(n) + 1e-6)
    assert log_s.std().item() == pytest.approx(scale, abs=5 * scale / math.sqrt(2 * n) + 1e-6)
    if scale > 0:
        # Sample variance of a log-normal is noisy (heavy tail): check it loosely.
        assert s.var().item() == pytest.approx(var, rel=0.1)


def test_uniform_and_fixed_hyperpriors():
    s = Uniform(-2.0, 3.0).sample((50_000,), gen(0), "cpu")
    assert s.min() >= -2.0 and s.max() <= 3.0
    assert s.mean().item() == pytest.approx(0.5, abs=0.05)
    assert torch.equal(Fixed(0.25).sample((2, 3), gen(0), "cpu"), torch.full((2, 3), 0.25))


@pytest.mark.parametrize("make", [lambda g: Gamma(0.7, 2.0).sample((100,), g, "cpu"),
                                  lambda g: LogNormal(0.0, 1.0).sample((100,), g, "cpu"),
                                  lambda g: Uniform(0.0, 1.0).sample((100,), g, "cpu")],
                         ids=["gamma", "lognormal", "uniform"])
def test_hyperpriors_are_reproducible_from_the_generator(make):
    assert torch.equal(make(gen(9)), make(gen(9)))
    assert not torch.equal(make(gen(9)), make(gen(10)))


# --- bad configs ---------------------------------------------------------------------------

@pytest.mark.parametrize(
    "make",
    [
        lambda: GPPrior(kernels=("periodic",)),
        lambda: GPPrior(kernels=()),
        lambda: GPPrior(kernels=("rbf", "matern52"), kernel_weights=(1.0,)),
        lambda: GPPrior(kernels=("rbf",), kernel_weights=(-1.0,)),
        lambda: GPPrior(kernels=("rbf",), kernel_weights=(0.0,)),
        lambda: BNNPrior(min_depth=0),
        lambda: BNNPrior(min_depth=3, max_depth=2),
        lambda: BNNPrior(min_width=10, max_width=5),
        lambda: BNNPrior(activations=("gelu",)),
        lambda: BNNPrior(activations=()),
        lambda: MixturePrior(()),
        lambda: MixturePrior((GPPrior(),), weights=(1.0, 2.0)),
        lambda: MixturePrior((GPPrior(), BNNPrior()), weights=(1.0, -1.0)),
        lambda: MixturePrior((GPPrior(), BNNPrior()), weights=(0.0, 0.0)),
        lambda: LogNormal(0.0, -1.0),
        lambda: Gamma(0.0, 1.0),
        lambda: Gamma(1.0, -2.0),
        lambda: Uniform(1.0, 0.0),
    ],
)
def test_bad_configs_raise_value_error(make):
    with pytest.raises(ValueError):
        make()


def test_configs_are_frozen():
    prior = GPPrior()
    with pytest.raises(AttributeError):
        prior.noise = Fixed(1.0)


@pytest.mark.parametrize("field,value", [("noise", -0.1), ("lengthscale", 0.0), ("outputscale", -1.0)])
def test_gp_prior_rejects_hyperpriors_outside_the_parameter_support(field, value):
    with pytest.raises(ValueError, match=field):
        GPPrior(**{field: Fixed(value)})


def test_mixture_fills_boolean_meta_of_other_components_with_false():
    mix = MixturePrior((GPPrior(), SCMPrior()), (1.0, 1.0))
    batch = mix.sample(16, 30, 3, generator=torch.Generator().manual_seed(0))
    gp_rows = batch.meta["component"] == 0
    assert gp_rows.any() and not batch.meta["1.categorical"][gp_rows].any()

"""The learning-curve prior: Batch contract, validity, documented special kinds, serialisation, vectorisation."""

from __future__ import annotations

import json
import math

import pytest
import torch

from priors import CurvePrior, Fixed, HyperpriorWrapper, LogNormal, MixturePrior, Uniform, prior_from_dict
from priors.curves import FAMILY_NAMES

PRIOR = CurvePrior()
NOISE_FREE = CurvePrior(noisy_targets=False)


def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def binomial_tolerance(p: float, n: int) -> float:
    """Five standard errors of a frequency with probability `p` over `n` draws."""
    return 5.0 * math.sqrt(p * (1.0 - p) / n)


# --- Batch contract -------------------------------------------------------------------------

def test_curves_are_batch_first_with_the_epoch_over_the_horizon_as_input():
    batch = PRIOR.sample(7, 50, 1, generator=gen(0))
    assert batch.x.shape == (7, 50, 1) and batch.y.shape == batch.target_y.shape == (7, 50)
    assert batch.x.dtype == batch.y.dtype == batch.target_y.dtype == torch.float32
    torch.testing.assert_close(batch.x[:, :, 0], (torch.arange(1, 51) / 50).expand(7, 50))
    assert batch.n_context == 25  # the first epochs are the context, the later ones the queries
    assert PRIOR.sample(7, 50, 1, generator=gen(0), n_context=12).n_context == 12
    assert batch.meta["weights"].shape == (7, len(FAMILY_NAMES))
    for key, value in batch.meta.items():
        assert value.shape[0] == 7, key
    assert batch.meta["noise"].shape == (7,)


def test_more_than_one_feature_is_rejected():
    with pytest.raises(ValueError, match="n_features must be 1"):
        PRIOR.sample(2, 10, 3, generator=gen(0))


def test_same_seed_gives_identical_curves_and_different_seeds_differ():
    a, b, c = (PRIOR.sample(20, 40, 1, generator=gen(s)) for s in (5, 5, 6))
    assert torch.equal(a.y, b.y) and torch.equal(a.target_y, b.target_y)
    assert all(torch.equal(a.meta[k], b.meta[k]) for k in a.meta)
    assert not torch.equal(a.y, c.y)


@pytest.mark.parametrize(
    "prior",
    [PRIOR, NOISE_FREE,
     CurvePrior(time_scale=LogNormal(-2.0, 4.0), noise=LogNormal(-2.0, 2.0), family_prob=1.0),
     CurvePrior(time_scale=Fixed(1e-6), plateau_prob=1.0, degrade_prob=1.0, noisy_prob=1.0, decline=Fixed(1.0)),
     CurvePrior(time_scale=Fixed(1e6), limit=Fixed(1.0), start_fraction=Fixed(0.0), peak_at=Fixed(1.0))],
    ids=["default", "noise-free", "wide", "instant-everything", "glacial"],
)
@pytest.mark.parametrize("horizon", [1, 2, 13, 200])
def test_curves_are_finite_and_within_the_unit_interval(prior, horizon):
    for seed in range(3):
        batch = prior.sample(300, horizon, 1, generator=gen(seed))
        for values in (batch.y, batch.target_y):
            assert torch.isfinite(values).all()
            assert values.min() >= 0.0 and values.max() <= 1.0
        assert all(torch.isfinite(v.float()).all() for v in batch.meta.values())


# --- the curves -----------------------------------------------------------------------------

def test_noise_free_curves_lie_between_start_and_limit_and_only_degrading_ones_decrease():
    batch = NOISE_FREE.sample(3000, 100, 1, generator=gen(1))
    f, meta = batch.target_y, batch.meta
    # Even degrading curves stay at or above their start (the value at t = 0).
    assert (f >= meta["start"].unsqueeze(-1) - 1e-6).all() and (f <= meta["limit"].unsqueeze(-1) + 1e-6).all()
    steady = ~meta["degrades"]
    assert (f[steady].diff(dim=1) >= -1e-6).all()


def test_curves_increase_on_average():
    batch = PRIOR.sample(4000, 100, 1, generator=gen(2))
    mean_curve = batch.y.mean(0)
    assert mean_curve[-10:].mean() > mean_curve[:10].mean() + 0.05
    assert (mean_curve[10:].diff() > -0.002).all()  # the average run does not get worse
    assert (batch.y[:, -10:].mean(1) > batch.y[:, :10].mean(1)).float().mean() > 0.8


def test_family_weights_are_a_distribution_over_the_configured_families():
    prior = CurvePrior(families=("pow3", "hill", "vap"), family_prob=0.5)
    weights = prior.sample(2000, 5, 1, generator=gen(3)).meta["weights"]
    torch.testing.assert_close(weights.sum(1), torch.ones(2000))
    configured = torch.tensor([name in prior.families for name in FAMILY_NAMES])
    assert (weights[:, ~configured] == 0).all() and (weights >= 0).all()
    active = (weights > 0).float()
    assert (active.sum(1) >= 1).all()
    # Each family is active with probability 0.5, and a curve with none gets one of three.
    expected = 0.5 + 0.5**3 / 3
    for column in active[:, configured].T:
        assert column.mean().item() == pytest.approx(expected, abs=binomial_tolerance(expected, 2000))


def test_every_family_alone_gives_valid_increasing_curves():
    for name in FAMILY_NAMES:
        prior = CurvePrior(families=(name,), plateau_prob=0.0, degrade_prob=0.0, noisy_targets=False)
        batch = prior.sample(500, 60, 1, generator=gen(4))
        f = batch.target_y
        assert torch.isfinite(f).all() and (f.diff(dim=1) >= -1e-6).all(), name
        assert (f[:, -1] - f[:, 0]).mean() > 0.01, name
        assert (batch.meta["weights"][:, FAMILY_NAMES.index(name)] == 1).all(), name


def test_gaussian_noise_matches_the_sampled_noise_level():
    prior = CurvePrior(noisy_prob=0.0, noisy_targets=False, limit=Uniform(0.4, 0.6), start_fraction=Fixed(0.5),
                       noise=Uniform(0.01, 0.05))
    batch = prior.sample(500, 100, 1, generator=gen(5))
    z = (batch.y - batch.target_y) / batch.meta["noise"].unsqueeze(-1)  # far from 0 and 1: never clipped
    assert z.mean().item() == pytest.approx(0.0, abs=0.02)
    assert z.std().item() == pytest.approx(1.0, abs=0.02)


def test_noisy_targets_switch_between_the_observation_and_the_noise_free_curve():
    noisy, clean = PRIOR.sample(10, 30, 1, generator=gen(6)), NOISE_FREE.sample(10, 30, 1, generator=gen(6))
    assert torch.equal(noisy.target_y, noisy.y) and torch.equal(clean.y, noisy.y)
    assert not torch.equal(clean.target_y, clean.y)


# --- special kinds at their documented rates ------------------------------------------------

def test_each_special_kind_occurs_at_its_documented_rate():
    n = 20000
    meta = PRIOR.sample(n, 2, 1, generator=gen(7)).meta
    for key, p in (("plateau", PRIOR.plateau_prob), ("degrades", PRIOR.degrade_prob), ("noisy", PRIOR.noisy_prob)):
        assert meta[key].float().mean().item() == pytest.approx(p, abs=binomial_tolerance(p, n)), key
    rare = CurvePrior(plateau_prob=0.3, degrade_prob=0.0, noisy_prob=0.7).sample(n, 2, 1, generator=gen(8)).meta
    assert rare["plateau"].float().mean().item() == pytest.approx(0.3, abs=binomial_tolerance(0.3, n))
    assert not rare["degrades"].any()
    assert rare["noisy"].float().mean().item() == pytest.approx(0.7, abs=binomial_tolerance(0.7, n))


def test_plateaued_curves_stay_flat_after_their_plateau():
    prior = CurvePrior(degrade_prob=0.0, noisy_targets=False)
    batch = prior.sample(4000, 100, 1, generator=gen(9))
    f, meta, t = batch.target_y, batch.meta, batch.x[0, :, 0]
    plateau = meta["plateau"]
    after = t.unsqueeze(0) >= meta["plateau_at"].unsqueeze(-1)  # B x H
    frozen = f.masked_fill(~after, float("nan"))
    spread = (frozen.nan_to_num(-1.0).amax(1) - frozen.nan_to_num(2.0).amin(1))[plateau & after.any(1)]
    assert (spread <= 1e-6).all()
    assert torch.equal(meta["plateau_at"][~plateau], torch.ones(int((~plateau).sum())))


def test_late_degradation_shows_as_a_peak_before_the_last_epoch_at_the_documented_rate():
    batch = NOISE_FREE.sample(20000, 100, 1, generator=gen(10))
    f, meta = batch.target_y, batch.meta
    declines = f.amax(1) - f[:, -1] > 1e-4
    assert not declines[~meta["degrades"]].any()
    assert declines[meta["degrades"]].float().mean() > 0.95  # the rest: runs with almost no gain to lose
    p = NOISE_FREE.degrade_prob
    assert declines.float().mean().item() == pytest.approx(p, abs=binomial_tolerance(p, 20000) + 0.01)
    gain = f.amax(1) - meta["start"]
    lost = (f.amax(1) - f[:, -1]) / gain.clamp_min(1e-9)
    assert (lost[meta["degrades"]] <= meta["decline"][meta["degrades"]] + 1e-4).all()


def test_noisy_curves_rarely_peak_at_the_last_epoch_and_have_heavy_tails():
    prior = CurvePrior(noisy_prob=1.0, noisy_targets=False, limit=Fixed(0.5), start_fraction=Fixed(0.5))
    batch = prior.sample(4000, 100, 1, generator=gen(11))
    assert (batch.y.argmax(1) != 99).float().mean() > 0.95  # the best observed epoch is not the last
    # Flat curves in the middle of [0, 1]: the errors are Student-t(3) (kurtosis far above the Gaussian's 3).
    z = (batch.y - batch.target_y) / batch.meta["noise"].unsqueeze(-1)
    t = batch.x[0, :, 0]
    middle = (t - 0.5).abs() < 0.05  # where the heteroscedastic factor is about 1
    inner = z[:, middle][(batch.y[:, middle] > 0) & (batch.y[:, middle] < 1)]
    assert ((inner - inner.mean()) ** 4).mean() / inner.var() ** 2 > 6.0
    trend = batch.meta["noise_trend"]
    assert trend.min() < -1.0 and trend.max() > 1.0 and (trend.abs() <= 1.5).all()


# --- serialisation and vectorisation --------------------------------------------------------

@pytest.mark.parametrize(
    "prior",
    [PRIOR, CurvePrior(families=("pow3", "loglog_linear"), family_prob=0.9, limit=Fixed(1.0), noise=Fixed(0.01),
                       plateau_prob=0.0, peak_at=Uniform(0.5, 0.6), noisy_targets=False)],
    ids=["default", "custom"],
)
def test_to_dict_round_trip_rebuilds_the_same_prior(prior):
    d = prior.to_dict()
    assert d["type"] == "CurvePrior"
    rebuilt = prior_from_dict(json.loads(json.dumps(d)))
    assert rebuilt == prior and rebuilt.to_dict() == d
    assert torch.equal(prior.sample(4, 20, 1, generator=gen(12)).y, rebuilt.sample(4, 20, 1, generator=gen(12)).y)


def test_curve_prior_composes_with_the_wrapper_and_the_mixture():
    wrapped = HyperpriorWrapper(CurvePrior(), {"plateau_prob": Uniform(0.0, 0.5)})
    assert prior_from_dict(json.loads(json.dumps(wrapped.to_dict()))) == wrapped
    batch = wrapped.sample(6, 20, 1, generator=gen(13))
    assert batch.meta["plateau_prob"].shape == (6,)
    mixture = MixturePrior((CurvePrior(), CurvePrior(noise=Fixed(0.2))))
    meta = mixture.sample(30, 20, 1, generator=gen(14)).meta
    assert meta["noise"].shape == (30,) and meta["weights"].shape == (30, len(FAMILY_NAMES))


def test_sampling_has_no_per_curve_loop(monkeypatch):
    # Every random draw is one call for the whole batch: the number of calls does not grow with it.
    calls = []
    for name in ("rand", "randn", "randint", "multinomial"):
        original = getattr(torch, name)

        def counted(*args, _original=original, _name=name, **kwargs):
            calls.append(_name)
            return _original(*args, **kwargs)

        monkeypatch.setattr(torch, name, counted)

    def n_calls(batch_size: int) -> int:
        calls.clear()
        PRIOR.sample(batch_size, 200, 1, generator=gen(15))
        return len(calls)

    assert n_calls(3) == n_calls(1000) > 0


@pytest.mark.parametrize(
    "kwargs",
    [{"families": ()}, {"families": ("pow5",)}, {"family_prob": 1.5}, {"plateau_prob": -0.1},
     {"degrade_prob": 2.0}, {"noisy_prob": -1.0}, {"limit": Uniform(0.5, 1.5)}, {"limit": Fixed(0.0)},
     {"limit": LogNormal(0.0, 1.0)}, {"start_fraction": Uniform(-0.1, 0.5)}, {"time_scale": Fixed(0.0)},
     {"noise": Fixed(-0.1)}, {"peak_at": Uniform(0.5, 1.2)}, {"decline": Fixed(1.5)}, {"plateau_at": Fixed(-1.0)},
     {"heavy_noise": Uniform(-0.1, 0.1)}],
)
def test_bad_configs_raise_value_error(kwargs):
    with pytest.raises(ValueError):
        CurvePrior(**kwargs)

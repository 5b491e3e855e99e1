from dataclasses import asdict, dataclass

import pytest
import torch

from priors import Batch, HyperpriorWrapper, LogNormal, Uniform, prior_from_dict, register_prior


@register_prior
@dataclass(frozen=True)
class ShiftPrior:
    """y = shift + noise: the drawn `shift` is visible in the data."""

    shift: float = 0.0

    def to_dict(self):
        return {"type": "ShiftPrior", **asdict(self)}

    @classmethod
    def from_dict(cls, d):
        return cls(**{k: v for k, v in d.items() if k != "type"})

    def sample(self, batch_size, n_points, n_features, *, generator=None, device="cpu", n_context=None):
        x = torch.rand(batch_size, n_points, n_features, generator=generator, device=device)
        y = self.shift + 0.01 * torch.randn(batch_size, n_points, generator=generator, device=device)
        return Batch(x, y, y, n_context or 1, {"shift": torch.full((batch_size,), self.shift)})


def test_wrapper_draws_field_per_dataset_and_records_it():
    prior = HyperpriorWrapper(ShiftPrior(), {"shift": Uniform(-5.0, 5.0)})
    batch = prior.sample(6, 10, 2, generator=torch.Generator().manual_seed(0))
    assert batch.x.shape == (6, 10, 2)
    assert len(set(batch.meta["shift"].tolist())) == 6
    torch.testing.assert_close(batch.y.mean(1), batch.meta["shift"], atol=0.02, rtol=0)


def test_wrapper_groups_share_a_draw():
    prior = HyperpriorWrapper(ShiftPrior(), {"shift": LogNormal(0.0, 1.0)}, group_size=3)
    batch = prior.sample(7, 5, 1, generator=torch.Generator().manual_seed(1))
    shifts = batch.meta["shift"]
    assert shifts.shape == (7,)
    assert shifts[0] == shifts[2] and shifts[3] == shifts[5] and shifts[0] != shifts[3]


def test_wrapper_round_trips_and_is_reproducible():
    prior = HyperpriorWrapper(ShiftPrior(), {"shift": Uniform(0.0, 1.0)})
    again = prior_from_dict(prior.to_dict())
    assert again == prior
    a = prior.sample(4, 5, 1, generator=torch.Generator().manual_seed(3))
    b = again.sample(4, 5, 1, generator=torch.Generator().manual_seed(3))
    assert torch.equal(a.y, b.y)


def test_wrapper_rejects_unknown_fields():
    with pytest.raises(ValueError, match="no fields"):
        HyperpriorWrapper(ShiftPrior(), {"scale": Uniform(0.0, 1.0)})

"""The learning-curve demo's figure (`demo_curves.png`): what it draws is the data it claims to draw."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch

from pfn.checkpoint import read_manifest
from pfn.curves import LCPFN
from pfn.curves.demo import FAN_LEVELS, digits_mlp_curves, fan_figure

CUTOFF, HORIZON = 8, 40


@pytest.fixture(scope="module")
def demo_data() -> tuple[np.ndarray, np.ndarray]:
    """The demo's first four runs (0 and 3 have a collapse mode at the first predicted epochs) and their fans from
    the shipped model, as `run_curves_demo` computes them."""
    if "lcpfn" not in read_manifest()["models"]:
        pytest.skip("pretrained/lcpfn is not shipped")
    curves, _ = digits_mlp_curves(n_runs=4, horizon=HORIZON)
    pred = LCPFN().predict(curves[:, :CUTOFF], horizon=HORIZON, bounds=(0.0, 1.0))
    return curves, torch.stack([pred.quantile(q) for q in FAN_LEVELS]).numpy()


def panels(curves: np.ndarray, fan: np.ndarray):
    fig = fan_figure(curves, fan, CUTOFF)
    yield from zip(range(len(curves)), fig.axes, strict=False)
    plt.close(fig)


def test_the_y_limits_hold_every_observed_point_and_the_true_continuation():
    # Run 0 starts far below its (narrow) predicted band, as run 5 of the demo does; run 1 ends below it.
    epochs = np.arange(1, HORIZON + 1)
    curves = np.stack([0.9 - 0.85 * np.exp(-epochs), 0.8 - 0.3 * (epochs > 30)])
    offsets = (-0.01, -0.005, 0.0, 0.005, 0.01)
    fan = np.stack([np.broadcast_to(curves[:, [CUTOFF - 1]] + d, curves.shape) for d in offsets])
    for i, ax in panels(curves, fan):
        lo, hi = ax.get_ylim()
        assert lo <= curves[i].min() and curves[i].max() <= hi, (i, ax.get_ylim())


def test_the_bands_open_from_the_last_observed_value_without_jumping_between_modes(demo_data):
    curves, fan = demo_data
    for i, ax in panels(curves, fan):
        median = ax.lines[0].get_xydata()
        assert tuple(median[0]) == (CUTOFF, curves[i, CUTOFF - 1])
        for band in ax.collections[:2]:  # 80% and 50%: their outline starts at the last observation
            edge = band.get_paths()[0].vertices
            assert np.isclose(edge[:, 0].min(), CUTOFF)
            assert np.allclose(edge[edge[:, 0] == CUTOFF, 1], curves[i, CUTOFF - 1])
        # the outer edges move smoothly from one predicted epoch to the next (a 5% edge hopped 0.37 -> 0.91)
        assert np.abs(np.diff(fan[[0, -1], i, CUTOFF:], axis=1)).max() < 0.1, i

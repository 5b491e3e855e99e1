"""Early stopping of training runs from their learning curves: one rule, and a framework-agnostic hook.

The rule (`StoppingRule`): after each epoch of a run, once it has run `min_epochs` epochs
(by default 40% of the horizon, `DEFAULT_MIN_FRACTION`), ask the model for the probability
that the run's value at the horizon (its final epoch, what training to the end would give) is
better than a reference: the best final value of the runs completed so far, or a fixed
threshold. Stop when that probability falls below `min_prob`.
A non-finite value (a diverged run) stops at once. Runs that were stopped never become the
reference; a run only counts once it has reported its value at the horizon.

`EarlyStopping` applies the rule to runs reported epoch by epoch (`report(epoch, value)`),
across runs (`new_run()`), and keeps a record of every decision; `pfn.curves.optuna` applies
it to Optuna trials.
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from pfn.curves.inputs import check_horizon
from pfn.curves.model import LCPFN
from pfn.curves.normalize import Metric
from pfn.model import PFN

DEFAULT_MIN_PROB = 0.05
# No decision before this share of the horizon. Chosen on 48 TPE studies of 12 trials (horizons 20 and 50; saturating,
# power-law, late-rising logistic and noisy curves; never the study pinned in the tests) replayed with the shipped
# model: at 10% the rule stopped the eventual best trial in 16 of them (mean regret 0.070, up to 0.44, 61% of the
# epochs saved), at 30% in 6 (regret up to 0.061), at 40% and 50% in none at any min_prob from 0.001 to 0.05
# (35% and 30% saved at min_prob 0.05). Early epochs say little about where a run ends.
# `python benchmarks/curves_stopping_rule.py` replays the choosing set.
DEFAULT_MIN_FRACTION = 0.4


def check_number(value: Any, name: str) -> float:
    """`value` as a float: a real number or a 0-d array or tensor (NaN and infinities pass); a `TypeError` otherwise."""
    if isinstance(value, (np.ndarray, torch.Tensor)) and value.ndim == 0:
        value = value.item()
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a number (a float, or a 0-d array or tensor), got {value!r}; pass one "
                        "value, e.g. float(val_loss)")
    return float(value)


@dataclass(frozen=True)
class Decision:
    """One decision about a run after one epoch.

    Attributes:
        run: The run (`EarlyStopping`: counted from 0; Optuna: the trial number).
        epoch: The epoch just reported (1-based).
        value: The value reported for it.
        reference: What the final value had to beat (None: no completed run and no threshold).
        prob: The predicted probability that the value at the horizon beats `reference`, or
            None where nothing was predicted (waiting, no reference, complete, diverged).
        stop: Whether the run should stop.
        reason: Why, in words.
    """

    run: int
    epoch: int
    value: float
    reference: float | None
    prob: float | None
    stop: bool
    reason: str


@dataclass(frozen=True)
class StoppingRule:
    """Stop a run when `P(value at the horizon beats the reference) < min_prob`.

    Args:
        horizon: The run's last epoch.
        direction: `"maximize"` or `"minimize"`.
        bounds: The metric's `(lo, hi)`, either None if unknown (`pfn.curves.normalize`),
            validated here (`check_bounds`): bad bounds fail at construction, not at the first
            prediction.
        min_epochs: Epochs a run gets before any decision; None for `DEFAULT_MIN_FRACTION`
            (40%) of the horizon, at least 1.
        min_prob: The probability below which a run stops.

    Attributes:
        metric: The `Metric` of `direction` and `bounds`.
    """

    horizon: int
    direction: str = "maximize"
    bounds: tuple[float | None, float | None] | None = None
    min_epochs: int | None = None
    min_prob: float = DEFAULT_MIN_PROB
    metric: Metric = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "metric", Metric(self.direction, self.bounds))  # checks direction and bounds
        check_number(self.min_prob, "min_prob")
        if not 0.0 <= self.min_prob < 1.0:
            raise ValueError(f"min_prob must be a probability in [0, 1), got {self.min_prob}")
        min_epochs = max(1, round(DEFAULT_MIN_FRACTION * self.horizon)) if self.min_epochs is None else self.min_epochs
        if not 1 <= min_epochs <= self.horizon:
            raise ValueError(f"min_epochs must be in [1, horizon={self.horizon}], got {min_epochs}")
        object.__setattr__(self, "min_epochs", int(min_epochs))

    def check_value(self, value: Any, where: str) -> float:
        """A reported `value` as a float; a `TypeError` for a non-number, a `ValueError` (starting with `where`)
        for a finite value outside the metric's domain. NaN and infinities pass: a diverged run stops."""
        value = check_number(value, "value")
        if math.isfinite(value) and not bool(self.metric.inside(torch.tensor(value))):
            self.metric.refuse(value, f"{where}: value {value}")
        return value

    def check_threshold(self, threshold: Any) -> float | None:
        """`threshold` as a float (None stays None); it must be a finite number inside the declared bounds."""
        if threshold is None:
            return None
        threshold = check_number(threshold, "threshold")
        lo, hi = self.metric.bounds
        if not lo <= threshold <= hi:  # NaN and infinities fail here too
            raise ValueError(f"threshold={threshold} must be a finite value inside the declared bounds ({lo}, {hi})")
        return threshold

    def better(self, a: float, b: float) -> bool:
        """Whether value `a` is better than `b` in the rule's direction."""
        return a > b if self.direction == "maximize" else a < b

    def decide(self, model: LCPFN, curve: np.ndarray, reference: float | None, run: int = 0) -> Decision:
        """The decision after the last value of `curve`.

        Args:
            model: The learning-curve model.
            curve: Values of epochs `1, ..., n` (NaN for a missing epoch); the last is the
                epoch just reported.
            reference: The value to beat at the horizon, or None.
            run: The run's label, kept in the `Decision`.
        """
        epoch, value = len(curve), float(curve[-1])
        if not math.isfinite(value):
            return Decision(run, epoch, value, reference, None, True,
                            f"epoch {epoch}: the value {value} is not finite (the run diverged)")
        if epoch >= self.horizon:
            return Decision(run, epoch, value, reference, None, False,
                            f"epoch {epoch}: the run is complete with final value {value:.6g}")
        if epoch < self.min_epochs:
            return Decision(run, epoch, value, reference, None, False,
                            f"epoch {epoch}: waiting for min_epochs={self.min_epochs}")
        if reference is None:
            return Decision(run, epoch, value, reference, None, False,
                            f"epoch {epoch}: nothing to beat yet (no completed run, no threshold)")
        pred = model.predict([curve], self.horizon, self.direction, self.bounds)
        prob = float(pred[0, -1].prob_above(reference))
        stop = prob < self.min_prob
        return Decision(run, epoch, value, reference, prob, stop,
                        f"epoch {epoch}: P(value at epoch {self.horizon} better than {reference:.6g}) = {prob:.3g} "
                        f"{'<' if stop else '>='} min_prob={self.min_prob}")


def as_lcpfn(model: LCPFN | PFN | str | Path, device: str) -> LCPFN:
    """`model` as an `LCPFN` (a shipped name, a checkpoint folder, a `PFN` or an `LCPFN`)."""
    return model if isinstance(model, LCPFN) else LCPFN(model, device)


class EarlyStopping:
    """A hook for any training loop: `report(epoch, value)` returns True when the run should stop.

    One hook serves a whole search: call `new_run()` before each run after the first. A run
    that reports its value at `horizon` is complete, and that final value becomes the
    reference for later runs if it is the best so far (unless a fixed `threshold` is given).

        hook = EarlyStopping(horizon=50, direction="minimize", bounds=(0, None))
        for config in configs:
            hook.new_run()
            for epoch in range(1, 51):
                ...train one epoch...
                if hook.report(epoch, val_loss):
                    print(hook.reason)
                    break

    Args:
        horizon: The number of epochs of a full run (at most the model's `max_horizon`).
        direction, bounds, min_epochs, min_prob: As in `StoppingRule`.
        threshold: A fixed value to beat instead of the best completed run (a finite number
            inside `bounds`).
        model: An `LCPFN`, a `PFN`, a checkpoint folder or a shipped name.
        device: Where a model loaded here runs.

    Bad settings (bounds, threshold, min_prob, ...) raise at construction.

    Attributes:
        history: Every `Decision`, of every run, in order.
        reason: Why the current run stopped (None while it runs).
        best: The best final value of the completed runs (None before the first).
    """

    def __init__(self, horizon: int, direction: str = "maximize",
                 bounds: tuple[float | None, float | None] | None = None, min_epochs: int | None = None,
                 threshold: float | None = None, min_prob: float = DEFAULT_MIN_PROB,
                 model: LCPFN | PFN | str | Path = "lcpfn", device: str = "cpu") -> None:
        self.model = as_lcpfn(model, device)
        self.rule = StoppingRule(check_horizon(horizon, self.model.max_horizon), direction, bounds, min_epochs,
                                 min_prob)
        self.threshold = self.rule.check_threshold(threshold)
        self.best: float | None = None
        self.history: list[Decision] = []
        self.reason: str | None = None
        self.run = 0
        self._curve: list[float] = []
        self._stopped = False

    @property
    def reference(self) -> float | None:
        """What a run's final value has to beat: the threshold if given, else the best final value so far."""
        return self.threshold if self.threshold is not None else self.best

    def new_run(self) -> None:
        """Starts the next run (a no-op before the first report)."""
        if self._curve:
            self.run += 1
        self._curve, self._stopped, self.reason = [], False, None

    def report(self, epoch: int, value: float) -> bool:
        """Records `value` at `epoch` (1-based, increasing within a run) and returns whether to stop.

        Skipped epochs count as missing. After a stop, further reports of the run return True.
        `value` must be a number (NaN or infinite: the run diverged and stops) inside the declared
        bounds; a rejected report (a `TypeError` or `ValueError`) changes nothing, so the epoch
        can be reported again.
        """
        if self._stopped:
            return True
        last = len(self._curve)
        if isinstance(epoch, bool) or not isinstance(epoch, (int, np.integer)) or not last < epoch <= self.rule.horizon:
            raise ValueError(f"epoch must be an integer in ({last}, {self.rule.horizon}] (after the last reported "
                             f"epoch {last} of this run, at most the horizon), got {epoch!r}; call new_run() to "
                             "start another run")
        value = self.rule.check_value(value, f"run {self.run}, epoch {epoch}")
        curve = self._curve + [math.nan] * (epoch - last - 1) + [value]
        decision = self.rule.decide(self.model, np.asarray(curve), self.reference, self.run)
        self._curve = curve
        self.history.append(decision)
        if decision.stop:
            self._stopped, self.reason = True, decision.reason
        elif epoch == self.rule.horizon and (self.best is None or self.rule.better(decision.value, self.best)):
            self.best = decision.value
        return decision.stop


__all__ = ["DEFAULT_MIN_FRACTION", "DEFAULT_MIN_PROB", "Decision", "EarlyStopping", "StoppingRule", "as_lcpfn",
           "check_number"]

"""`LCPFNPruner`: an Optuna pruner that stops trials by the learning-curve rule of `EarlyStopping`.

Needs the optional dependency optuna (`pip install "pfn[optuna]"`); `import pfn` does not
import it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

try:
    import optuna
except ImportError as err:  # pragma: no cover - exercised only without optuna
    raise ImportError("pfn.curves.optuna needs optuna: pip install 'pfn[optuna]' (or pip install optuna)") from err

from pfn.curves.early_stopping import DEFAULT_MIN_PROB, Decision, StoppingRule, as_lcpfn
from pfn.curves.inputs import check_horizon
from pfn.curves.model import LCPFN
from pfn.curves.normalize import DIRECTIONS
from pfn.model import PFN


class LCPFNPruner(optuna.pruners.BasePruner):
    """Prunes a trial when its value at the horizon is unlikely to beat the best completed trial's.

    Reads the intermediate values given to `trial.report(value, step)`: step `s` is epoch
    `s + 1` (Optuna's convention of counting steps from 0), a step not reported is a missing
    epoch, and step `horizon - 1` is the final epoch. The reference is the best value at that
    final step over the study's completed trials (or `threshold`), in the study's direction.
    The rule is `StoppingRule`'s: no decision before `min_epochs`, prune when `P(final value
    better than the reference) < min_prob`, and prune a trial whose latest value is not finite.

    Args:
        horizon: Epochs (reported steps) of a full trial.
        bounds, min_epochs, min_prob: As in `StoppingRule`.
        threshold: A fixed value to beat instead of the best completed trial (a finite number
            inside `bounds`).
        model: An `LCPFN`, a `PFN`, a checkpoint folder or a shipped name.
        device: Where a model loaded here runs.

    Bad settings (bounds, threshold, ...) raise here, at construction, not inside `study.optimize`.

    Attributes:
        history: Every `Decision` (`run` is the trial number), in order.
    """

    def __init__(self, horizon: int, bounds: tuple[float | None, float | None] | None = None,
                 min_epochs: int | None = None, min_prob: float = DEFAULT_MIN_PROB, threshold: float | None = None,
                 model: LCPFN | PFN | str | Path = "lcpfn", device: str = "cpu") -> None:
        self.model = as_lcpfn(model, device)
        self.horizon = check_horizon(horizon, self.model.max_horizon)
        self.rules = {d: StoppingRule(self.horizon, d, bounds, min_epochs, min_prob) for d in DIRECTIONS}
        self.threshold = self.rules["maximize"].check_threshold(threshold)  # the rules share their bounds
        self.history: list[Decision] = []

    def reference(self, study: optuna.Study, rule: StoppingRule) -> float | None:
        """The threshold, or the best final-step value of the study's completed trials (None if none)."""
        if self.threshold is not None:
            return self.threshold
        finals = [t.intermediate_values[self.horizon - 1]
                  for t in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
                  if self.horizon - 1 in t.intermediate_values and np.isfinite(t.intermediate_values[self.horizon - 1])]
        if not finals:
            return None
        return max(finals) if rule.direction == "maximize" else min(finals)

    def prune(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> bool:
        """Whether to prune `trial` after its latest `trial.report`."""
        values = trial.intermediate_values
        if not values:
            return False
        last = max(values)
        if not 0 <= min(values) <= last < self.horizon:
            raise ValueError(f"trial {trial.number} reported steps {min(values)}..{last}, but LCPFNPruner(horizon="
                             f"{self.horizon}) reads steps 0..{self.horizon - 1} as epochs 1..{self.horizon}")
        curve = np.full(last + 1, np.nan)
        curve[list(values)] = list(values.values())
        rule = self.rules["maximize" if study.direction == optuna.study.StudyDirection.MAXIMIZE else "minimize"]
        decision = rule.decide(self.model, curve, self.reference(study, rule), run=trial.number)
        self.history.append(decision)
        return decision.stop


__all__ = ["LCPFNPruner"]

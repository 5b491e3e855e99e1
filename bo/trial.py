"""`Trial`: one evaluation of the objective (parameters, value, state, times), and the history table."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd

STATES = ("pending", "complete", "failed")


@dataclass
class Trial:
    """One suggestion and what became of it.

    Attributes:
        number: Position in the optimiser's history, from 0.
        params: The parameter values.
        state: "pending" (asked, not told), "complete" or "failed" (an exception, NaN, inf or
            `failed=True`; its value is None).
        value: The objective's value as told (in the user's direction), None unless complete.
        start: When it was asked (seconds since the epoch).
        end: When it was told, None while pending.
    """

    number: int
    params: dict[str, Any]
    state: str = "pending"
    value: float | None = None
    start: float | None = None
    end: float | None = None

    @property
    def duration(self) -> float | None:
        """Seconds from ask to tell, None while pending."""
        return None if self.start is None or self.end is None else self.end - self.start

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, state: dict[str, Any]) -> Trial:
        if state.get("state") not in STATES:
            raise ValueError(f"trial state must be one of {STATES}, got {state.get('state')!r}")
        return cls(**state)


def history(trials: Sequence[Trial], names: Sequence[str]) -> pd.DataFrame:
    """A pandas DataFrame with one row per trial.

    Columns: `number`, `params_<name>` for each parameter, `value`, `state`, `start` and `end`
    (datetimes, UTC) and `duration` (a timedelta).
    """
    import pandas as pd

    rows = [{"number": t.number, **{f"params_{n}": t.params[n] for n in names},
             "value": float("nan") if t.value is None else t.value, "state": t.state,
             "start": t.start, "end": t.end} for t in trials]
    columns = ["number", *(f"params_{n}" for n in names), "value", "state", "start", "end"]
    frame = pd.DataFrame(rows, columns=columns)
    for col in ("start", "end"):
        frame[col] = pd.to_datetime(frame[col].astype("float64"), unit="s", utc=True)
    frame["duration"] = frame["end"] - frame["start"]
    return frame

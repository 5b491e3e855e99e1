"""An optimiser's saved state: a JSON file verified by the sha256 of its content, and the state's schema.

`write_state` adds `"sha256"`: the hex digest of the state's canonical JSON (sorted keys, no
whitespace), so reformatting the file changes nothing while any edited value is caught.
`read_state` refuses, with one `StateFileError` (a `ValueError`) that names the file and what is
wrong, a file that cannot be read, is not UTF-8 JSON, is not an optimiser's state, does not
match its sha256, or holds a field of the wrong type (`check_state`).

A file of format `bo.Optimizer/1` was written before states carried a checksum: it is loaded
with a warning (its schema still checked), and `save` writes it again with one. A current file
(`bo.Optimizer/2`) without its sha256 is refused. To change a state on purpose, edit the dict
(`json.loads`, `Optimizer.load_state_dict`, then `save`), not the file.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import warnings
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from bo.acquisition import make_acquisition
from bo.acquisition_optimizer import AcquisitionOptimizer
from bo.checks import check_integer
from bo.space import Space
from bo.trial import STATES

FORMAT = "bo.Optimizer/2"
LEGACY_FORMAT = "bo.Optimizer/1"  # before checksums: loaded with a warning
DIRECTIONS = ("minimize", "maximize")
CHECKSUM = "sha256"
_TRIAL_KEYS = {"number", "params", "state", "value", "start", "end"}


class StateFileError(ValueError):
    """A saved optimiser state that cannot be loaded (the message names the file and what is wrong)."""


def content_digest(state: Mapping[str, Any]) -> str:
    """The sha256 (hex) of `state`'s canonical JSON, its own `"sha256"` entry left out."""
    body = {k: v for k, v in state.items() if k != CHECKSUM}
    text = json.dumps(body, sort_keys=True, separators=(",", ":"), allow_nan=False)
    return hashlib.sha256(text.encode("ascii")).hexdigest()


def write_state(path: str | Path, state: Mapping[str, Any]) -> Path:
    """Writes `state` with its sha256 as JSON to `path`, atomically (a crash never leaves half a file)."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps({**state, CHECKSUM: content_digest(state)}, indent=1, allow_nan=False))
    os.replace(tmp, path)
    return path


def read_state(path: str | Path) -> dict[str, Any]:
    """The state saved in `path` by `write_state`, verified (module docstring); without its `"sha256"`.

    Raises:
        StateFileError: naming `path` and what is wrong with it.
    """
    path = Path(path)
    state = _parse(path)
    _verify(path, state)
    try:
        check_state(state)
    except ValueError as err:
        raise StateFileError(f"{path} is not a valid optimizer state: {err}") from None
    return {k: v for k, v in state.items() if k != CHECKSUM}


def _parse(path: Path) -> dict[str, Any]:
    """The JSON object in `path`; raises `StateFileError` for anything else."""
    try:
        data = path.read_bytes()
    except OSError as err:
        raise StateFileError(f"cannot read the optimizer state {path}: {err.strerror or err}") from None
    try:
        state = json.loads(data.decode("utf-8"))
    except UnicodeDecodeError:
        raise StateFileError(f"{path} is not an optimizer state: it is not a UTF-8 text file") from None
    except json.JSONDecodeError as err:
        what = "empty" if not data.strip() else f"not valid JSON ({err.msg} at line {err.lineno}; truncated?)"
        raise StateFileError(f"{path} is not an optimizer state: the file is {what}") from None
    if not isinstance(state, dict):
        raise StateFileError(f"{path} is not an optimizer state: it holds a JSON {type(state).__name__}, "
                             "not an object")
    return state


def _verify(path: Path, state: dict[str, Any]) -> None:
    """Checks the format and the sha256 of a parsed state file (module docstring)."""
    fmt = state.get("format")
    if fmt == LEGACY_FORMAT and CHECKSUM not in state:
        warnings.warn(f"{path} was saved before optimizer states carried a checksum and cannot be verified; "
                      "save it again to add one", UserWarning, stacklevel=3)
        return
    if fmt != FORMAT:
        raise StateFileError(f"{path} is not a saved optimizer state (format {fmt!r}, expected {FORMAT!r})")
    recorded = state.get(CHECKSUM)
    if not isinstance(recorded, str):
        raise StateFileError(f"{path} has no sha256 of its content; it was not written by Optimizer.save, or "
                             "the entry was removed")
    try:
        actual = content_digest(state)
    except ValueError as err:  # NaN or infinity where JSON has none
        raise StateFileError(f"{path} is not a valid optimizer state: {err}") from None
    if actual != recorded:
        raise StateFileError(f"{path} does not match its sha256: the file was modified after it was saved. To "
                             "change a state on purpose, edit the dict and pass it to load_state_dict")


def check_state(state: Mapping[str, Any]) -> None:
    """Checks that `state` is an optimiser's `state_dict()` with every field of the right type.

    Raises:
        ValueError: naming the first field that is missing or wrong.
    """
    if not isinstance(state, Mapping):
        raise ValueError(f"an optimizer state is a dict, got {type(state).__name__}")
    if state.get("format") not in (FORMAT, LEGACY_FORMAT):
        raise ValueError(f"not a saved optimizer state (format {state.get('format')!r}, expected {FORMAT!r})")
    missing = sorted({"space", "direction", "surrogate", "acquisition", "acquisition_optimizer", "n_initial",
                      "seed", "rng", "trials"} - set(state))
    if missing:
        raise ValueError(f"the state lacks {', '.join(missing)}")
    space = _field("space", lambda v: Space.from_dict(_mapping("space", v)), state["space"])
    if state["direction"] not in DIRECTIONS:
        raise ValueError(f"direction must be one of {DIRECTIONS}, got {state['direction']!r}")
    if state["surrogate"] is not None and not isinstance(state["surrogate"], str):
        raise ValueError(f"surrogate must be a name or null, got {state['surrogate']!r}")
    _field("acquisition", lambda v: make_acquisition(_mapping("acquisition", v)), state["acquisition"])
    _field("acquisition_optimizer", lambda v: AcquisitionOptimizer(**_mapping("acquisition_optimizer", v)),
           state["acquisition_optimizer"])
    _field("n_initial", lambda v: check_integer("n_initial", v, 1), state["n_initial"])
    _field("seed", lambda v: check_integer("seed", v, 0), state["seed"])
    _field("rng", _check_rng, state["rng"])
    if not isinstance(state["trials"], list):
        raise ValueError(f"trials must be a list, got {type(state['trials']).__name__}")
    for i, trial in enumerate(state["trials"]):
        _field(f"trials[{i}]", lambda v, i=i: _check_trial(v, i, space), trial)


def _field(name: str, check: Callable[[Any], Any], value: Any) -> Any:
    """`check(value)`, its TypeError, ValueError or KeyError re-raised as a ValueError naming the field `name`."""
    try:
        return check(value)
    except (TypeError, ValueError, KeyError) as err:
        raise ValueError(f"{name}: {err}") from None


def _mapping(name: str, value: Any) -> dict[str, Any]:
    if not isinstance(value, Mapping):
        raise TypeError(f"{name} must be an object, got {value!r}")
    return dict(value)


def _check_rng(value: Any) -> None:
    np.random.default_rng().bit_generator.state = _mapping("rng", value)


def _check_trial(value: Any, number: int, space: Space) -> None:
    """Checks one saved trial: its keys, number (its position), parameters, state, value and times."""
    trial = _mapping("trial", value)
    if set(trial) != _TRIAL_KEYS:
        raise ValueError(f"a trial has the keys {sorted(_TRIAL_KEYS)}, got {sorted(trial)}")
    if check_integer("number", trial["number"], 0) != number:
        raise ValueError(f"number must be the trial's position {number}, got {trial['number']!r}")
    space.validate(_mapping("params", trial["params"]))
    if trial["state"] not in STATES:
        raise ValueError(f"state must be one of {STATES}, got {trial['state']!r}")
    complete = trial["state"] == "complete"
    if (complete and not _is_real(trial["value"])) or (not complete and trial["value"] is not None):
        raise ValueError(f"a {trial['state']} trial's value must be {'a finite number' if complete else 'null'}, "
                         f"got {trial['value']!r}")
    for key in ("start", "end"):
        if trial[key] is not None and not _is_real(trial[key]):
            raise ValueError(f"{key} must be a time in seconds or null, got {trial[key]!r}")


def _is_real(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)

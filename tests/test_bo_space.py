"""Search spaces: validation, the unit-cube encoding and its round trips, Sobol sampling, discrete moves."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import bo
from bo.space import Space

MIXED = {"lr": bo.Float(1e-5, 1e-1, log=True), "x": bo.Float(-2.0, 3.0), "layers": bo.Int(1, 8),
         "width": bo.Int(16, 1024, log=True), "act": bo.Categorical(["relu", "tanh", "gelu"]),
         "flag": bo.Categorical([True, False, None, 1, 2.5])}


# --- validation ------------------------------------------------------------------------------

@pytest.mark.parametrize("make, error, match", [
    (lambda: bo.Float(1.0, 1.0), ValueError, "lo < hi"),
    (lambda: bo.Float(2.0, 1.0), ValueError, "lo < hi"),
    (lambda: bo.Float(0.0, 1.0, log=True), ValueError, "lo > 0"),
    (lambda: bo.Float(-1.0, 1.0, log=True), ValueError, "lo > 0"),
    (lambda: bo.Float(0.0, math.inf), TypeError, "finite"),
    (lambda: bo.Float(math.nan, 1.0), TypeError, "finite"),
    (lambda: bo.Float("0", 1.0), TypeError, "finite number"),
    (lambda: bo.Int(0, 0), ValueError, "lo < hi"),
    (lambda: bo.Int(0.5, 3), TypeError, "integer"),
    (lambda: bo.Int(True, 3), TypeError, "integer"),
    (lambda: bo.Int(0, 10, log=True), ValueError, "lo > 0"),
    (lambda: bo.Categorical([]), ValueError, "at least one"),
    (lambda: bo.Categorical(["a", "b", "a"]), ValueError, "repeated: 'a'"),
    (lambda: bo.Categorical([1, 1.0]), ValueError, "repeated"),
    (lambda: bo.Categorical("abc"), TypeError, "list of choices"),
    (lambda: bo.Categorical([[1, 2]]), TypeError, "str, int"),
    (lambda: bo.Categorical([math.nan]), TypeError, "finite float"),
])
def test_parameters_reject_invalid_definitions_with_clear_errors(make, error, match):
    with pytest.raises(error, match=match):
        make()


def test_true_and_one_are_distinct_choices():
    c = bo.Categorical([True, 1, "1"])
    assert [c.index(v) for v in (True, 1, "1", 1.0, False)] == [0, 1, 2, 1, None]


@pytest.mark.parametrize("space, error, match", [
    ({}, ValueError, "empty"),
    ([bo.Float(0, 1)], TypeError, "dict of name"),
    ({"": bo.Float(0, 1)}, TypeError, "non-empty strings"),
    ({3: bo.Float(0, 1)}, TypeError, "non-empty strings"),
    ({"x": (0, 1)}, TypeError, "use bo.Float"),
    ({"x": "float"}, TypeError, "use bo.Float"),
])
def test_space_rejects_invalid_definitions(space, error, match):
    with pytest.raises(error, match=match):
        Space(space)


@pytest.mark.parametrize("params, error, match", [
    ({"a": 0.5}, ValueError, "missing \\['b'\\]"),
    ({"a": 0.5, "b": 2, "c": 1}, ValueError, "unknown \\['c'\\]"),
    ({"a": 1.5, "b": 2}, ValueError, "outside"),
    ({"a": math.nan, "b": 2}, TypeError, "finite"),
    ({"a": 0.5, "b": 2.5}, TypeError, "integer"),
    ({"a": 0.5, "b": 9}, ValueError, "outside"),
])
def test_validate_rejects_params_outside_the_space(params, error, match):
    with pytest.raises(error, match=match):
        Space({"a": bo.Float(0, 1), "b": bo.Int(1, 3)}).validate(params)


def test_validate_canonicalises_types():
    space = Space({"a": bo.Float(0, 1), "b": bo.Int(1, 3), "c": bo.Categorical(["u", 2])})
    out = space.validate({"a": 1, "b": np.int64(2), "c": np.str_("u")})
    assert out == {"a": 1.0, "b": 2, "c": "u"}
    assert type(out["a"]) is float and type(out["b"]) is int and type(out["c"]) is str
    assert space.validate({"a": 0.5, "b": 3.0, "c": 2})["b"] == 3


# --- encoding --------------------------------------------------------------------------------

def _params(space: dict) -> st.SearchStrategy:
    def value(p):
        if isinstance(p, bo.Float):
            return st.floats(p.lo, p.hi)
        if isinstance(p, bo.Int):
            return st.integers(p.lo, p.hi)
        return st.sampled_from(p.choices)
    return st.fixed_dictionaries({name: value(p) for name, p in space.items()})


@settings(max_examples=200, deadline=None)
@given(_params(MIXED))
def test_decode_of_encode_round_trips(params):
    space = Space(MIXED)
    X = space.encode([params])
    assert X.shape == (1, 6) and X.dtype == torch.float64
    assert bool(((X >= 0) & (X <= 1)).all())
    back = space.decode(X)[0]
    for name, p in MIXED.items():
        if isinstance(p, bo.Float):
            tol = dict(rel=1e-13) if p.log else dict(abs=1e-15 * (p.hi - p.lo))
            assert back[name] == pytest.approx(params[name], **tol)
            assert p.lo <= back[name] <= p.hi
        else:
            assert back[name] == params[name] and type(back[name]) is type(params[name])


@settings(max_examples=100, deadline=None)
@given(st.lists(st.floats(0.0, 1.0), min_size=6, max_size=6))
def test_every_point_of_the_cube_decodes_into_the_space_and_snaps_onto_a_fixed_point(u):
    space = Space(MIXED)
    params = space.decode(torch.tensor([u], dtype=torch.float64))[0]
    space.validate(params)
    snapped = space.snap(torch.tensor([u], dtype=torch.float64))
    assert space.decode(snapped)[0] == params
    torch.testing.assert_close(space.snap(snapped), snapped, rtol=0, atol=1e-15)


def test_float_encoding_is_linear_or_logarithmic():
    lin, log = bo.Float(-2.0, 3.0), bo.Float(1e-4, 1e0, log=True)
    np.testing.assert_allclose(lin.encode([-2.0, 0.5, 3.0]), [0.0, 0.5, 1.0])
    np.testing.assert_allclose(log.encode([1e-4, 1e-2, 1.0]), [0.0, 0.5, 1.0])


def test_integers_have_equal_mass_on_a_linear_scale():
    p = bo.Int(3, 7)
    u = (np.arange(100_000) + 0.5) / 100_000
    counts = np.bincount(np.array(p.decode(u)) - 3)
    np.testing.assert_array_equal(counts, [20_000] * 5)
    np.testing.assert_allclose(p.encode([3, 5, 7]), [0.1, 0.5, 0.9])  # the cell centres


def test_log_integers_have_the_log_mass_of_their_rounding_cell():
    p = bo.Int(1, 100, log=True)
    u = (np.arange(1_000_000) + 0.5) / 1_000_000
    freq = np.bincount(np.array(p.decode(u)), minlength=101)[1:] / len(u)
    v = np.arange(1, 101)
    expected = np.log((v + 0.5) / (v - 0.5)) / np.log(100.5 / 0.5)
    np.testing.assert_allclose(freq, expected, atol=2e-6)


def test_categorical_choices_sit_at_cell_centres():
    p = bo.Categorical(["a", "b", "c", "d"])
    np.testing.assert_allclose(p.encode(["a", "b", "c", "d"]), [0.125, 0.375, 0.625, 0.875])
    assert p.decode(np.array([0.0, 0.2499, 0.25, 0.999, 1.0])) == ["a", "a", "b", "d", "d"]


def test_decode_clips_and_checks_shapes():
    space = Space({"x": bo.Float(1.0, 2.0), "n": bo.Int(0, 4)})
    assert space.decode(torch.tensor([[-0.5, 1.5]]))[0] == {"x": 1.0, "n": 4}
    with pytest.raises(ValueError, match="n x 2"):
        space.decode(torch.rand(3))


# --- sampling and discrete moves --------------------------------------------------------------

def test_sobol_samples_are_reproducible_and_cover_the_space():
    space = Space(MIXED)
    a, b = space.sample(64, seed=3), space.sample(64, seed=3)
    assert a == b and a != space.sample(64, seed=4)
    for p in a:
        space.validate(p)
    assert {p["act"] for p in a} == {"relu", "tanh", "gelu"}
    assert {p["layers"] for p in a} == set(range(1, 9))
    X = space.encode(a)[:, 1]  # the linear float: a Sobol prefix of 64 fills all 64 strata
    assert sorted(torch.floor(X * 64).long().tolist()) == list(range(64))


def test_sobol_continues_a_sequence_with_skip():
    from bo.space import sobol

    torch.testing.assert_close(sobol(5, 3, seed=1, skip=3), sobol(8, 3, seed=1)[3:])


def test_neighbours_are_one_discrete_move_away():
    space = Space({"x": bo.Float(0, 1), "n": bo.Int(1, 3), "c": bo.Categorical(["a", "b", "c"])})
    x = space.encode([{"x": 0.123456789, "n": 1, "c": "b"}])[0]
    moves = space.decode(space.neighbours(x))
    assert sorted((m["n"], m["c"]) for m in moves) == [(1, "a"), (1, "c"), (2, "b")]
    assert (space.neighbours(x)[:, 0] == x[0]).all()  # continuous coordinates untouched, bit for bit
    assert Space({"x": bo.Float(0, 1)}).neighbours(torch.tensor([0.5], dtype=torch.float64)).shape == (0, 1)


def test_space_serialises_to_json_data():
    import json

    space = Space(MIXED)
    assert Space.from_dict(json.loads(json.dumps(space.to_dict()))) == space
    assert Space.from_dict({"x": {"type": "int", "lo": 1, "hi": 3}}) != Space({"x": bo.Float(1, 3)})
    with pytest.raises(ValueError, match="unknown type"):
        Space.from_dict({"x": {"type": "ordinal", "choices": [1]}})

"""Issue 6: property-based tests (hypothesis) of the loaders and the SROT step."""

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from vgfm_bayes.data import DataError, read_csv, read_masses
from vgfm_bayes.ot import SROTError, solve_srot_safe

FAST = settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
finite = st.floats(-1e6, 1e6, allow_nan=False, allow_infinity=False, width=64)


@st.composite
def time_courses(draw):
    k = draw(st.integers(2, 4))
    d = draw(st.integers(1, 3))
    times = sorted(draw(st.sets(st.integers(-50, 50), min_size=k, max_size=k)))
    counts = [draw(st.integers(2, 5)) for _ in range(k)]
    rows = [
        (t, [draw(finite) for _ in range(d)])
        for t, n in zip(times, counts, strict=True)
        for _ in range(n)
    ]
    order = draw(st.permutations(range(len(rows))))
    return times, counts, d, [rows[i] for i in order]


@FAST
@given(tc=time_courses())
def test_valid_csv_round_trips(tmp_path, tc):
    times, counts, d, rows = tc
    path = tmp_path / "valid.csv"
    header = ["samples", *(f"g{i}" for i in range(d))]
    lines = [",".join(header)] + [",".join([str(t), *map(repr, x)]) for t, x in rows]
    path.write_text("\n".join(lines) + "\n")
    data = read_csv(path)
    assert data.times.tolist() == [float(t) for t in times]
    assert data.counts.tolist() == counts and data.dim == d
    for k, t in enumerate(times):
        expect = sorted(tuple(x) for tt, x in rows if tt == t)
        assert sorted(map(tuple, data.x[k].tolist())) == expect


@FAST
@given(blob=st.binary(max_size=200) | st.text(max_size=200).map(str.encode))
def test_arbitrary_bytes_give_data_or_a_data_error(tmp_path, blob):
    path = tmp_path / "any.csv"
    path.write_bytes(blob)
    try:
        data = read_csv(path)
    except DataError as err:
        assert str(err) and "\n" not in str(err).strip()
    else:  # whatever loads passed every check
        assert data.n_times >= 2 and all(np.isfinite(x).all() for x in data.x)


@FAST
@given(
    tc=time_courses(),
    bad=st.sampled_from(["nan", "inf", "-inf", "x", ""]),
    column=st.integers(0, 3),
)
def test_one_bad_value_is_always_caught(tmp_path, tc, bad, column):
    times, counts, d, rows = tc
    column = column % (d + 1)
    lines = [",".join(["samples", *(f"g{i}" for i in range(d))])]
    lines += [",".join([str(t), *map(repr, x)]) for t, x in rows]
    cells = lines[1].split(",")
    cells[column] = bad
    lines[1] = ",".join(cells)
    path = tmp_path / "bad.csv"
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(DataError):
        read_csv(path)


@FAST
@given(values=st.lists(st.floats(allow_nan=True, allow_infinity=True), min_size=1, max_size=5))
def test_masses_are_positive_finite_or_refused(values):
    spec = ",".join(repr(v) for v in values)
    ok = all(np.isfinite(v) and v > 0 for v in values)
    if ok:
        np.testing.assert_allclose(read_masses(spec), values)
    else:
        with pytest.raises(DataError):
            read_masses(spec)


@st.composite
def srot_problems(draw):
    n, m, d = draw(st.integers(2, 8)), draw(st.integers(2, 8)), draw(st.integers(1, 3))
    coord = st.floats(-3, 3, allow_nan=False, width=64)
    x = torch.tensor([[draw(coord) for _ in range(d)] for _ in range(n)], dtype=torch.float64)
    y = torch.tensor([[draw(coord) for _ in range(d)] for _ in range(m)], dtype=torch.float64)
    eps = draw(st.floats(0.02, 1.0))
    tau = draw(st.floats(0.5, 10.0))
    ratio = draw(st.floats(0.3, 3.0))
    return x, y, eps, tau, ratio


@FAST
@given(problem=srot_problems())
def test_srot_plans_pass_their_checks(problem):
    x, y, eps, tau, ratio = problem
    b = torch.full((y.shape[0],), ratio, dtype=torch.float64)
    res, _ = solve_srot_safe(x, y, eps, tau, normalize_cost=True, b=b)
    assert torch.isfinite(res.plan).all() and (res.plan >= 0).all()
    torch.testing.assert_close(res.plan.sum(0), b, rtol=1e-6, atol=0)
    torch.testing.assert_close(res.row_sums, res.plan.sum(1))
    assert res.marginal_error <= 1e-6


@FAST
@given(problem=srot_problems(), bad=st.sampled_from([float("nan"), float("inf")]))
def test_srot_refuses_non_finite_input(problem, bad):
    x, y, eps, tau, _ = problem
    x = x.clone()
    x[0, 0] = bad
    with pytest.raises(SROTError):
        solve_srot_safe(x, y, eps, tau, normalize_cost=True)
    with pytest.raises(ValueError):
        solve_srot_safe(y, y, -eps, tau)

"""Issue 23: the stacked solver (many template sets in one loop) against one call per template set.

Stacking pads templates (u_i = 0), the S-dimension (zero columns of A) and the queries (masked); the
padding is exact in the maths, so both ways follow the same iteration and their answers agree within
the two certified bounds: ||lam_stacked - lam_call|| <= B_stacked + B_call (each B bounds the
distance to the same lambda*).  Bit-identity is not promised: BLAS may sum the padded zeros in another
order.  The sweep's columns (checks/fig4.py reads them) are compared the same way.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from attnverify import batched


@st.composite
def problems(draw):
    out = []
    d = draw(st.integers(2, 24))
    for _ in range(draw(st.integers(1, 6))):
        n = draw(st.integers(1, 30))
        rng = np.random.default_rng(draw(st.integers(0, 2**31 - 1)))
        T = rng.normal(size=(n, d)) * 10.0 ** draw(st.floats(-2, 1))
        u = rng.dirichlet(np.ones(n))
        if n > 2 and draw(st.booleans()):
            u[rng.choice(n, n // 3, replace=False)] = 0.0  # padding inside the problem itself
            u /= u.sum()
        m = draw(st.integers(0, 25))
        Z = rng.normal(size=(m, d)) * 10.0 ** draw(st.floats(-2, 1))
        if m and draw(st.booleans()):
            Z[0] = 0.0  # z = 0: lambda* = 0 exactly
        out.append((T, u, Z, 10.0 ** draw(st.floats(-3, 3))))
    return out, draw(st.sampled_from([None, 4096, 2**20]))


@settings(max_examples=40, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(problems())
def test_stacked_agrees_with_one_call_per_problem(case):
    probs, chunk_bytes = case
    stacked = batched.solve_stacked(probs, chunk_bytes=chunk_bytes)
    assert len(stacked) == len(probs)
    for (T, u, Z, alpha), s in zip(probs, stacked):
        one = batched.solve_dual_batched(T, u, Z, alpha)
        assert s.lam.shape == one.lam.shape == Z.shape and s.rank == one.rank
        assert np.all(np.isfinite(s.lam))
        assert np.all(s.rel_bound[s.converged] <= 1e-10) and np.all(s.rel_gap[s.converged] <= 1e-10)
        both = s.converged & one.converged
        dist = np.linalg.norm(s.lam - one.lam, axis=1)
        assert np.all(dist[both] <= (s.bound + one.bound)[both]), (dist, s.bound, one.bound)
        # the verdict is the same unless a bound sits within a factor 4 of rtol (rounding noise at that level)
        clear = (np.maximum(s.rel_bound, one.rel_bound) < 2.5e-11) | (np.minimum(s.rel_bound, one.rel_bound) > 4e-10)
        clear &= (np.maximum(s.rel_gap, one.rel_gap) < 2.5e-11) | (np.minimum(s.rel_gap, one.rel_gap) > 4e-10)
        assert np.array_equal(s.converged[clear], one.converged[clear])


def test_stacking_is_order_independent_and_memory_bounded():
    """Each problem's answer does not depend on its neighbours in the stack (within its bound), and a tiny
    byte budget (many chunks) gives the same answers as one chunk."""
    rng = np.random.default_rng(5)
    probs = [(rng.normal(size=(n, 16)), np.full(n, 1 / n), rng.normal(size=(12 * n, 16)), 1.0) for n in (5, 9, 30, 31, 6)]
    a = batched.solve_stacked(probs)
    b = batched.solve_stacked(probs[::-1], chunk_bytes=1)[::-1]
    for x, y in zip(a, b):
        assert x.converged.all() and y.converged.all()
        assert np.all(np.linalg.norm(x.lam - y.lam, axis=1) <= x.bound + y.bound)


def test_sweep_stacked_and_per_call_give_the_same_columns():
    """The sweep's task with the stacked solver and with one call per (sentence, layer): index columns
    identical, e_full and e_S within what the two certified bounds allow, statuses equal."""
    pytest.importorskip("torch")
    pytest.importorskip("transformers")
    from attnverify import models, sweep

    text = models.corpus(2)
    spec = {"model": "all-MiniLM-L6-v2", "first": 0, "sentences": list(text), "layers": [0, 3], "heads": [0, 5],
            "alpha": [1.0, 10.0], "rtol": sweep.RTOL, "n_cross": sweep.N_CROSS, "key": "test"}
    a = sweep.run_task(spec)["arrays"]
    b = sweep.run_task(spec, stacked=False)["arrays"]
    assert a.keys() == b.keys()
    for k in ("alpha", "sentence", "layer", "head", "token", "n", "status", "cross_alpha", "cross_layer"):
        assert np.array_equal(a[k], b[k]), k
    # e = ||lam - alpha z|| / ||lam||: moving lam by delta <= B changes e by at most (B / ||lam||)(1 + e), to first order
    rb = a["rel_bound"] + b["rel_bound"]
    for k in ("full", "full13"):
        assert np.all(np.abs(a[k] - b[k]) <= 1.01 * rb * (1 + a[k]) + 1e-15), k
    assert np.all(a["cross_diff"] <= a["cross_tol"]) and np.all(b["cross_diff"] <= b["cross_tol"])

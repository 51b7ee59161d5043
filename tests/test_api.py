"""Issue 20, item 6: the public Python API (attnverify.solve, solve_batch, verify) and its doctests."""

import doctest
import json
import subprocess
import sys

import numpy as np
import pytest

import attnverify

T = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0], [-1.0, 0.5]])
U = np.array([0.4, 0.3, 0.3, 0.0])


def test_doctests_of_the_api():
    """The examples in attnverify/__init__.py run and give what they show (part of make test)."""
    res = doctest.testmod(attnverify, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert res.attempted >= 15 and res.failed == 0, res


def test_solve_equals_the_command_line(tmp_path):
    case = {"templates": T.tolist(), "z": [0.3, -0.2], "alpha": 0.7, "u": U.tolist()}
    f = tmp_path / "case.json"
    f.write_text(json.dumps(case))
    out = json.loads(subprocess.run([sys.executable, "-m", "attnverify", "solve", str(f)], capture_output=True,
                                    text=True, check=True).stdout)
    r = attnverify.solve(T, [0.3, -0.2], 0.7, u=U)
    assert r.lambda_star.tolist() == out["lambda_star"] and r.p_tilde.tolist() == out["p_tilde"]
    assert r.lambda_quadratic.tolist() == out["lambda_approx_13"] and r.h_softmax.tolist() == out["h_attention_16"]
    assert r.converged is out["converged"] and r.error_bound == out["bound"]


def test_u_none_means_uniform_and_array_likes_are_accepted():
    a = attnverify.solve(T.tolist(), (0.3, -0.2), 1.5)
    b = attnverify.solve(T, np.array([0.3, -0.2]), np.float64(1.5), u=np.full(4, 0.25))
    assert np.array_equal(a.lambda_star, b.lambda_star)
    c = attnverify.solve_batch(T, [[0.3, -0.2]], 1.5)
    assert np.allclose(c.lambda_star[0], a.lambda_star, rtol=1e-10, atol=0)


def test_float32_inputs_and_prior():
    """A float32 u sums to 1 only within float32 rounding: it must not be rejected as "sums to 1.0000000298"."""
    u32 = np.full(3, 1 / 3, np.float32)
    assert abs(float(u32.astype(float).sum()) - 1) > 1e-9  # the case of the issue
    r = attnverify.solve(T[:3].astype(np.float32), np.float32([0.3, -0.2]), np.float32(0.5), u=u32)
    ref = attnverify.solve(T[:3], [np.float64(np.float32(0.3)), np.float64(np.float32(-0.2))], 0.5)
    assert r.converged and np.allclose(r.lambda_star, ref.lambda_star, rtol=1e-12, atol=0)
    rb = attnverify.solve_batch(T[:3].astype(np.float32), np.float32([[0.3, -0.2]]), 0.5, u=u32)
    assert rb.converged.all()
    with pytest.raises(ValueError, match=r"^u: sums to"):  # a float32 u off the simplex is still refused
        attnverify.solve(T[:3], [0.3, -0.2], 0.5, u=np.float32([0.5, 0.3, 0.3]))


def test_batch_rows_agree_with_single_solves():
    Z = np.random.default_rng(3).normal(size=(20, 2)) * 2
    rb = attnverify.solve_batch(T, Z, 0.9, u=U)
    for k in (0, 7, 19):
        r = attnverify.solve(T, Z[k], 0.9, u=U)
        for f in ("lambda_star", "h_hat", "p_tilde", "lambda_linear", "lambda_quadratic", "h_softmax"):
            assert np.allclose(getattr(rb, f)[k], getattr(r, f), rtol=1e-9, atol=1e-12), f
        for f in ("primal", "dual"):
            assert np.isclose(getattr(rb, f)[k], getattr(r, f), rtol=1e-9, atol=1e-12), f
        assert abs(rb.gap[k]) < 1e-9 and rb.converged[k] == r.converged
    assert rb.p_tilde[:, 3].max() == 0.0  # masked template


def test_bad_arguments_raise_value_error_naming_them():
    with pytest.raises(ValueError, match=r"^alpha: "):
        attnverify.solve(T, [0.3, -0.2], -1.0)
    with pytest.raises(ValueError, match=r"^Z: "):
        attnverify.solve_batch(T, [[0.3, -0.2, 1.0]], 1.0)
    with pytest.raises(ValueError, match=r"^T: "):
        attnverify.solve_batch("abc", [[0.3, -0.2]], 1.0)
    with pytest.raises(ValueError, match=r"^ids: unknown claim IDs FD-99, NOPE"):
        attnverify.verify(["FD-99", "nope", "EOT-UNIQ"])


def test_import_leaves_threads_and_environment_alone():
    code = ("import os; before = dict(os.environ); import attnverify, attnverify.cli; "
            "from threadpoolctl import threadpool_info; "
            "assert dict(os.environ) == before, 'environment changed'; "
            "print(max(i['num_threads'] for i in threadpool_info()))")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                       env={k: v for k, v in __import__("os").environ.items() if not k.endswith("_NUM_THREADS")})
    assert r.returncode == 0, r.stderr

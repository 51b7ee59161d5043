"""Issue 8, item 2: hostile inputs.  `attnverify solve` answers every bad case with one line naming the field
and exit status 2; every public function that takes user data raises a ValueError whose one-line message
starts with the argument's name.  Never a traceback, a NaN, an overflow or a silent wrong answer:
extreme but valid inputs get a correct, finite answer (checked against the known solution)."""

import json
import math
import subprocess
import sys

import numpy as np
import pytest

from attnverify import batched, cli, dual, ot_attention, primal
from attnverify.validate import MAX_ENTRY, MAX_LOGIT

# ---------------------------------------------------------------------------------------------------
# attnverify solve CASE.json
# ---------------------------------------------------------------------------------------------------
GOOD = {"templates": [[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]], "z": [0.3, -0.2], "alpha": 0.5, "u": [0.5, 0.25, 0.25]}


def case(**over):
    c = dict(GOOD)
    for k, v in over.items():
        if v is DROP:
            c.pop(k)
        else:
            c[k] = v
    return json.dumps(c)


DROP = object()

# (name, file text, the field the one-line error must start with)
BAD_CASES = [
    # malformed JSON / not a case
    ("not JSON", "{not json", None),
    ("truncated JSON", '{"templates": [[1, 0], [0', None),
    ("empty file", "", None),
    ("JSON null", "null", None),
    ("JSON list", "[1, 2]", None),
    ("JSON string", '"templates"', None),
    ("JSON number", "5", None),
    ("nested too deeply", "[" * 100_000, None),
    # missing / unknown keys
    ("missing templates", case(templates=DROP), "templates"),
    ("missing z", case(z=DROP), "z"),
    ("missing alpha", case(alpha=DROP), "alpha"),
    ("unknown key gamma", case(gamma=0.5), "gamma"),
    # wrong shapes and types
    ("templates 1-d", case(templates=[1.0, 2.0]), "templates"),
    ("templates 3-d", case(templates=[[[1.0, 0.0]], [[0.0, 1.0]]]), "templates"),
    ("templates ragged", case(templates=[[1.0, 0.0], [0.0]]), "templates"),
    ("templates a string", case(templates="[[1, 0]]"), "templates"),
    ("templates an object", case(templates={"a": 1}), "templates"),
    ("templates null", case(templates=None), "templates"),
    ("templates with a boolean", case(templates=[[True, 0.0], [0.0, 1.0], [1.0, 1.0]]), "templates"),
    ("templates with a string", case(templates=[["1", 0.0], [0.0, 1.0], [1.0, 1.0]]), "templates"),
    ("templates with null", case(templates=[[None, 0.0], [0.0, 1.0], [1.0, 1.0]]), "templates"),
    ("empty template set", case(templates=[]), "templates"),
    ("d = 0", case(templates=[[], [], []], z=[]), "templates"),
    ("z too long", case(z=[1.0, 2.0, 3.0]), "z"),
    ("z a matrix", case(z=[[1.0, 2.0]]), "z"),
    ("z a number", case(z=1.0), "z"),
    ("u too short", case(u=[0.5, 0.5]), "u"),
    ("u a matrix", case(u=[[0.5, 0.25, 0.25]]), "u"),
    ("u a string", case(u="uniform"), "u"),
    ("alpha a string", case(alpha="0.5"), "alpha"),
    ("alpha a boolean", case(alpha=True), "alpha"),
    ("alpha null", case(alpha=None), "alpha"),
    ("alpha a list", case(alpha=[0.5]), "alpha"),
    # NaN / infinity (JSON's NaN, Infinity, and a literal beyond float64)
    ("templates NaN", case().replace("[1.0, 0.0]", "[NaN, 0.0]"), "templates"),
    ("templates Infinity", case().replace("[1.0, 0.0]", "[Infinity, 0.0]"), "templates"),
    ("templates -Infinity", case().replace("[1.0, 0.0]", "[-Infinity, 0.0]"), "templates"),
    ("templates 1e400", case().replace("[1.0, 0.0]", "[1e400, 0.0]"), "templates"),
    ("templates integer beyond float64", case().replace("[1.0, 0.0]", "[1" + "0" * 400 + ", 0.0]"), "templates"),
    ("z NaN", case().replace("[0.3, -0.2]", "[NaN, -0.2]"), "z"),
    ("u NaN", case().replace("[0.5, 0.25, 0.25]", "[NaN, 0.5, 0.5]"), "u"),
    ("alpha NaN", case().replace('"alpha": 0.5', '"alpha": NaN'), "alpha"),
    ("alpha Infinity", case().replace('"alpha": 0.5', '"alpha": Infinity'), "alpha"),
    ("alpha integer beyond float64", case().replace('"alpha": 0.5', '"alpha": 1' + "0" * 400), "alpha"),
    # alpha <= 0 (and below the float64 normal range, where 1/alpha overflows)
    ("alpha 0", case(alpha=0), "alpha"),
    ("alpha -0.0", case(alpha=-0.0), "alpha"),
    ("alpha negative", case(alpha=-1.5), "alpha"),
    ("alpha subnormal", case(alpha=1e-320), "alpha"),
    # u off the simplex
    ("u negative entry", case(u=[0.6, 0.5, -0.1]), "u"),
    ("u sums to more than 1", case(u=[0.5, 0.25, 0.5]), "u"),
    ("u sums to less than 1", case(u=[0.5, 0.25, 0.2]), "u"),
    ("u all masked", case(u=[0.0, 0.0, 0.0]), "u"),
    ("u 1e300", case(u=[1e300, 0.0, 0.0]), "u"),
    # enormous values: a one-line error rather than overflow
    ("templates 1e300", case(templates=[[1e300, 0.0], [0.0, 1.0], [1.0, 1.0]]), "templates"),
    ("z 1e300", case(z=[1e300, 1.0]), "z"),
    ("alpha 1e300", case(alpha=1e300), "alpha"),
    ("templates 1e150 (squares overflow)", case(templates=[[1e150, 0.0], [0.0, 1.0], [1.0, 1.0]]), "templates"),
    ("logit scale 1e20", case(templates=[[1e10, 0.0], [0.0, 1.0], [1.0, 1.0]], z=[1e10, 1.0], alpha=1.0), "templates"),
]


def _solve_in_process(tmp_path, capsys, text: str):
    f = tmp_path / "case.json"
    f.write_text(text)
    rc = cli.main(["solve", str(f)])
    out, err = capsys.readouterr()
    return rc, out, err


@pytest.mark.parametrize("name,text,field", BAD_CASES, ids=[c[0] for c in BAD_CASES])
def test_solve_bad_case_one_line_naming_the_field(tmp_path, capsys, name, text, field):
    rc, out, err = _solve_in_process(tmp_path, capsys, text)
    assert rc == 2 and out == ""
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err, err
    assert lines[0].startswith("attnverify: error: ")
    msg = lines[0][len("attnverify: error: "):]
    assert msg.startswith(f"{field}: " if field else f"{tmp_path / 'case.json'}: "), msg


@pytest.mark.parametrize("text", ["{not json", "[" * 100_000, case(alpha=1e300), case(u=[0.0, 0.0, 0.0])])
def test_solve_bad_case_in_a_real_process(tmp_path, text):
    """The same through a separate process: exit status 2, one line on stderr, no traceback."""
    f = tmp_path / "case.json"
    f.write_text(text)
    r = subprocess.run([sys.executable, "-m", "attnverify.cli", "solve", str(f)], capture_output=True, text=True)
    assert r.returncode == 2 and r.stdout == ""
    assert len(r.stderr.strip().splitlines()) == 1 and "Traceback" not in r.stderr


def test_solve_unreadable_inputs(tmp_path, capsys):
    bad = tmp_path / "latin1.json"
    bad.write_bytes(b"\xff\xfe{")
    for path in (tmp_path / "missing.json", tmp_path, bad):
        rc = cli.main(["solve", str(path)])
        _, err = capsys.readouterr()
        assert rc == 2 and len(err.strip().splitlines()) == 1 and err.startswith(f"attnverify: error: {path}: ")


def _finite(x):
    return all(_finite(v) for v in x) if isinstance(x, list) else (not isinstance(x, float) or math.isfinite(x))


@pytest.mark.parametrize("c,alpha", [(1e6, 1e-3), (1e-300, 1.0), (1.0, 2.3e-308), (1.0, 1e13), (30.0, 1e9 / 900)])
def test_solve_extreme_but_valid_cases_give_the_right_answer(tmp_path, capsys, c, alpha):
    """T = c I_2, z = c (1, 1), u uniform: by symmetry p~ = (1/2, 1/2), h_hat = mu and lambda* = alpha z."""
    rc, out, err = _solve_in_process(tmp_path, capsys, json.dumps(
        {"templates": [[c, 0.0], [0.0, c]], "z": [c, c], "alpha": alpha}))
    assert rc == 0, err
    res = json.loads(out)
    assert _finite(list(res.values())) and res["converged"] is True
    assert np.allclose(res["p_tilde"], [0.5, 0.5], rtol=0, atol=1e-12)
    assert np.allclose(res["lambda_star"], [alpha * c, alpha * c], rtol=1e-9, atol=0)
    assert np.allclose(res["h_hat"], [c / 2, c / 2], rtol=1e-12, atol=0)


# ---------------------------------------------------------------------------------------------------
# the library: every public function that takes user data
# ---------------------------------------------------------------------------------------------------
T0 = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0], [-1.0, 0.5]])
U0 = np.array([0.4, 0.3, 0.3, 0.0])
Z0 = np.array([0.3, -0.2])
M0 = ((T0[:, None] - T0[None]) ** 2).sum(-1)

# bad values per kind of argument (the valid ones are the *0 above)
BAD = {
    "T": [("a string", "abc"), ("None", None), ("empty list", []), ("no templates", np.ones((0, 2))),
          ("d = 0", np.ones((4, 0))), ("1-d", np.ones(4)), ("3-d", np.ones((4, 2, 1))),
          ("ragged", [[1.0, 0.0], [0.0]]), ("NaN", np.where(T0 == 1.0, np.nan, T0)), ("inf", T0 + np.inf),
          ("1e300", T0 * 1e300), ("booleans", [[True, False]] * 4)],
    "u": [("too short", U0[:3]), ("negative", [0.5, 0.6, -0.1, 0.0]), ("sum 1.1", [0.4, 0.4, 0.3, 0.0]),
          ("all masked", np.zeros(4)), ("NaN", [np.nan, 0.5, 0.5, 0.0]), ("2-d", U0[None]), ("a string", "abcd")],
    "vec": [("too long", np.ones(3)), ("ragged", [[1.0], [1.0, 2.0]]), ("NaN", [np.nan, 0.0]), ("inf", [np.inf, 0.0]), ("1e300", [1e300, 0.0]),
            ("a string", "ab"), ("2-d", np.ones((1, 1, 2)))],
    "pos": [("0", 0.0), ("negative", -1.0), ("NaN", np.nan), ("inf", np.inf), ("a boolean", True), ("a string", "1"),
            ("None", None), ("subnormal", 1e-320)],
    "p": [("negative", [1.2, -0.2, 0.0, 0.0]), ("sum 0.5", [0.25, 0.25, 0.0, 0.0]), ("too short", [0.5, 0.5]),
          ("NaN", [np.nan, 1.0, 0.0, 0.0])],
    "s": [("empty", []), ("NaN", [np.nan, 1.0]), ("1e300", [1e300, 0.0]), ("a string", "ab"), ("2-d", [[1.0, 2.0]])],
    "M": [("wrong shape", np.ones((4, 3))), ("NaN", M0 * np.nan), ("-inf", -np.inf * np.ones((4, 4)))],
}

# function -> (valid keyword arguments, {argument: kind of bad values})
FUNCTIONS = {
    "batched.solve_dual_batched": (batched.solve_dual_batched, dict(T=T0, u=U0, Z=Z0[None], alpha=0.5),
                                   {"T": "T", "u": "u", "Z": "vec", "alpha": "pos"}),
    "batched.solve_dual": (batched.solve_dual, dict(T=T0, u=U0, z=Z0, alpha=0.5), {"T": "T", "u": "u", "alpha": "pos"}),
    "dual.log_mgf": (dual.log_mgf, dict(T=T0, u=U0, lam=Z0), {"T": "T", "u": "u", "lam": "vec"}),
    "dual.tilted": (dual.tilted, dict(T=T0, u=U0, lam=Z0), {"T": "T", "u": "u", "lam": "vec"}),
    "dual.dual_objective": (dual.dual_objective, dict(T=T0, u=U0, z=Z0, alpha=0.5, lam=Z0),
                            {"T": "T", "u": "u", "z": "vec", "alpha": "pos", "lam": "vec"}),
    "dual.primal_objective": (dual.primal_objective, dict(T=T0, u=U0, z=Z0, alpha=0.5, p=U0),
                              {"T": "T", "u": "u", "z": "vec", "alpha": "pos", "p": "p"}),
    "dual.solve_dual_newton": (dual.solve_dual_newton, dict(T=T0, u=U0, z=Z0, alpha=0.5),
                               {"T": "T", "u": "u", "z": "vec", "alpha": "pos"}),
    "dual.covariance": (dual.covariance, dict(T=T0, u=U0), {"T": "T", "u": "u"}),
    "dual.lambda_quadratic_13": (dual.lambda_quadratic_13, dict(T=T0, u=U0, z=Z0, alpha=0.5),
                                 {"T": "T", "u": "u", "z": "vec", "alpha": "pos"}),
    "dual.lambda_linear_14": (dual.lambda_linear_14, dict(z=Z0, alpha=0.5), {"alpha": "pos"}),
    "dual.attention_16": (dual.attention_16, dict(T=T0, u=U0, z=Z0, alpha=0.5),
                          {"T": "T", "u": "u", "z": "vec", "alpha": "pos"}),
    "dual.h_hat": (dual.h_hat, dict(T=T0, u=U0, lam=Z0), {"T": "T", "u": "u", "lam": "vec"}),
    "primal.solve_primal_scipy": (primal.solve_primal_scipy, dict(T=T0, u=U0, z=Z0, alpha=0.5),
                                  {"T": "T", "u": "u", "z": "vec", "alpha": "pos"}),
    "primal.solve_primal_cvxpy": (primal.solve_primal_cvxpy, dict(T=T0, u=U0, z=Z0, alpha=0.5),
                                  {"T": "T", "u": "u", "z": "vec", "alpha": "pos"}),
    "primal.solve_mem_scipy": (primal.solve_mem_scipy, dict(T=T0, u=U0, b=Z0, r=2.0), {"T": "T", "u": "u", "b": "vec", "r": "pos"}),
    "primal.solve_mem_cvxpy": (primal.solve_mem_cvxpy, dict(T=T0, u=U0, b=Z0, r=2.0), {"T": "T", "u": "u", "b": "vec", "r": "pos"}),
    "primal.solve_eot_scipy": (primal.solve_eot_scipy, dict(s=[1.0, 0.0, -1.0], tau=0.5), {"s": "s", "tau": "pos"}),
    "primal.solve_eot_cvxpy": (primal.solve_eot_cvxpy, dict(s=[1.0, 0.0, -1.0], tau=0.5), {"s": "s", "tau": "pos"}),
    "ot_attention.ot_attention": (ot_attention.ot_attention, dict(T=T0, u=U0, z=Z0, M=M0, alpha=0.5, gamma=0.5),
                                  {"T": "T", "u": "u", "z": "vec", "M": "M", "alpha": "pos", "gamma": "pos"}),
    "ot_attention.solve_ot_dual": (ot_attention.solve_ot_dual, dict(T=T0, u=U0, z=Z0, M=M0, alpha=0.5, gamma=0.5),
                                   {"T": "T", "u": "u", "z": "vec", "M": "M", "alpha": "pos", "gamma": "pos"}),
}
# the OT module validates T, z and u itself (it takes the shape (m, d) for z and does not reject booleans)
SKIP = set()

LIB_CASES = []
for fname, (fn, good, args) in FUNCTIONS.items():
    for arg, kind in args.items():
        for label, value in BAD[kind]:
            if (fname.split(".")[0], kind if kind != "T" else "T", label) in SKIP:
                continue
            LIB_CASES.append(pytest.param(fn, good, arg, value, id=f"{fname}-{arg}-{label}"))


@pytest.mark.parametrize("fn,good,arg,value", LIB_CASES)
def test_library_bad_argument_raises_value_error_naming_it(fn, good, arg, value):
    kwargs = dict(good, **{arg: value})
    with pytest.raises(ValueError) as e:
        fn(**kwargs)
    msg = str(e.value)
    assert "\n" not in msg and msg.startswith(f"{arg}: "), msg


@pytest.mark.parametrize("fn,good", [pytest.param(fn, good, id=name) for name, (fn, good, _) in FUNCTIONS.items()])
def test_library_valid_arguments_are_accepted(fn, good):
    fn(**good)  # the baseline of the bad cases above is itself valid


@pytest.mark.parametrize("fn,good", [(batched.solve_dual_batched, dict(T=T0, u=U0, Z=Z0[None])),
                                     (dual.lambda_quadratic_13, dict(T=T0, u=U0, z=Z0)),
                                     (primal.solve_primal_scipy, dict(T=T0, u=U0, z=Z0))])
def test_library_enormous_alpha_is_refused_with_the_logit_bound(fn, good):
    with pytest.raises(ValueError, match=r"^alpha: too large: .* bounds the logits"):
        fn(alpha=1e300, **good)


def test_library_alpha_z_beyond_range():
    with pytest.raises(ValueError, match=r"^alpha: alpha z has an entry"):
        dual.lambda_linear_14(np.ones(2) * 1e90, 1e20)


def test_ot_gamma_tiny_is_refused_not_nan():
    """gamma = 1e-320 once returned NaN from ot_attention: now a one-line error naming gamma."""
    with pytest.raises(ValueError, match=r"^gamma: "):
        ot_attention.ot_attention(T0, U0, Z0, M0, 0.5, 1e-320)
    with pytest.raises(ValueError, match=r"^gamma: too small"):
        ot_attention.ot_attention(T0, U0, Z0, M0, 0.5, 1e-300)


def test_library_extreme_but_valid_inputs_give_finite_correct_answers():
    # the logit bound is inclusive of the stress range: alpha = 1e4 with logits 1e4 solves and converges
    c = 1e6
    T, u, z = np.array([[c, 0.0], [0.0, c]]), np.array([0.5, 0.5]), np.array([c, c])
    sol = batched.solve_dual_batched(T, u, z[None], 1e-3)
    assert sol.converged.all() and np.allclose(sol.lam[0], 1e-3 * z, rtol=1e-9)
    assert np.all(np.isfinite(dual.attention_16(T, u, z, 1e-3)))
    # T z at the bound's edge: alpha max||t|| (||z|| + 2 max||t||) just below MAX_LOGIT is accepted
    a = 0.99 * MAX_LOGIT / (1.0 * (math.sqrt(2) + 2.0))
    lam = batched.solve_dual(np.eye(2), [0.5, 0.5], [1.0, 1.0], a).lam
    assert np.all(np.isfinite(lam)) and np.allclose(lam, a * np.ones(2), rtol=1e-9)
    # entries at MAX_ENTRY are accepted when the logit scale allows (small alpha)
    h = dual.attention_16(MAX_ENTRY * np.eye(2), [0.5, 0.5], [MAX_ENTRY, MAX_ENTRY], 1e-300)
    assert np.all(np.isfinite(h)) and np.allclose(h, MAX_ENTRY / 2 * np.ones(2))

"""`attnverify solve`: a valid case gives every output field; bad input gives one line and exit 2."""

import json
import subprocess
import sys

import numpy as np
import pytest

KEYS = {"lambda_star", "h_hat", "p_tilde", "lambda_approx_14", "lambda_approx_13", "h_attention_16",
        "primal", "dual", "gap", "converged", "iterations"}


def run(tmp_path, text):
    case = tmp_path / "case.json"
    case.write_text(text)
    return subprocess.run([sys.executable, "-m", "attnverify.cli", "solve", str(case)],
                          capture_output=True, text=True)


def good_case(**over):
    c = {"templates": [[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]], "z": [0.3, -0.2], "alpha": 0.5,
         "u": [0.5, 0.25, 0.25]}
    c.update(over)
    return json.dumps(c)


def test_solve_valid_case(tmp_path):
    r = run(tmp_path, good_case())
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert KEYS <= set(out)
    assert out["converged"] is True
    assert abs(out["gap"]) <= 1e-12
    assert abs(sum(out["p_tilde"]) - 1) <= 1e-12
    # h_hat = b - lambda*/alpha
    T = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    b = T.T @ np.array([0.5, 0.25, 0.25]) + np.array([0.3, -0.2])
    assert np.allclose(out["h_hat"], b - np.array(out["lambda_star"]) / 0.5, atol=1e-12)


def test_solve_uniform_default_and_zero_weight(tmp_path):
    c = json.loads(good_case())
    del c["u"]
    assert run(tmp_path, json.dumps(c)).returncode == 0
    r = run(tmp_path, good_case(u=[0.5, 0.5, 0.0]))
    out = json.loads(r.stdout)
    assert out["p_tilde"][2] == 0.0  # outside supp(u)


BAD = [
    ("{not json", "not valid JSON"),
    ("[1, 2]", "expected a JSON object"),
    (json.dumps({"z": [1, 2], "alpha": 1}), "templates: missing key"),
    (good_case(alpha=0), "alpha: must be a finite number > 0"),
    (good_case(alpha=-1.5), "alpha: must be a finite number > 0"),
    (good_case(alpha="big"), "alpha: must be a number"),
    (good_case().replace('"alpha": 0.5', '"alpha": NaN'), "alpha: must be a finite number > 0"),
    (good_case(u=[0.5, 0.6, -0.1]), "u: entry 2 is negative"),
    (good_case(u=[0.5, 0.25, 0.5]), "u: sums to"),
    (good_case(u=[0.5, 0.5]), "u: has length 2, there are 3 templates"),
    (good_case(z=[1.0, 2.0, 3.0]), "z: has length 3, templates have dimension 2"),
    (good_case(templates=[[1.0, 0.0], [0.0]]), "templates: must be"),
    (good_case(templates=[]), "templates: empty template set"),
    (good_case(templates=[[[1.0, 0.0]], [[0.0, 1.0]]]), "templates: expected a 2-d array"),
    (good_case(templates=[[], [], []], z=[]), "templates: templates have dimension d = 0"),
    (good_case().replace("[1.0, 0.0]", "[NaN, 0.0]"), "templates: contains NaN or infinity"),
    (good_case(extra=1), "extra: unknown key"),
]


@pytest.mark.parametrize("text,message", BAD, ids=[m for _, m in BAD])
def test_solve_bad_input_one_line_exit_2(tmp_path, text, message):
    r = run(tmp_path, text)
    assert r.returncode == 2
    assert r.stdout == ""
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in r.stderr
    assert message in lines[0]


def test_solve_missing_file(tmp_path):
    r = subprocess.run([sys.executable, "-m", "attnverify.cli", "solve", str(tmp_path / "nope.json")],
                       capture_output=True, text=True)
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1

"""`attnverify regress`: what counts as a regression, the drift tolerance of each check, and, end to end,
that editing one closed form (in a copy of the project) makes the regression run fail with a readable
diff while the unedited copy passes."""

from __future__ import annotations

import copy
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from attnverify.regress import (DRIFT_OF_TOL, DRIFT_REL, BaselineError, compare, drift_tolerance, load_baseline,
                                render, tolerance_scale)

ROOT = Path(__file__).resolve().parents[1]


def _check(name, value, tol, passed=True, method="newton", cls="iterative"):
    return {"key": name.replace(" ", "-"), "name": name, "method": method, "metric": "m", "value": value,
            "tolerance": tol, "passed": passed, "why": "w", "numerical_class": cls}


def _results(env="A"):
    claims = [
        {"id": "X-1", "title": "t", "status": "verified", "reason": "r", "wall_time_s": 1.0,
         "figures": [{"path": "figures/x.png", "caption": "c"}],
         "checks": [_check("identity", "0", "exact", method="symbolic", cls="exact"),
                    _check("slope is 2", 5.0e-4, 0.05),
                    _check("duality gap", 3.3e-16, 1e-12, cls="roundoff"),
                    _check("solver distance ratio", 0.19, 1.0, method="scipy"),
                    _check("count", 1, 1, cls="exact"),
                    _check("seconds", 0.31, 10.0, method="timing", cls="measured")]},
        {"id": "X-2", "title": "t", "status": "refuted", "reason": "r", "wall_time_s": 2.0, "figures": [],
         "checks": [_check("printed form", 1.4, 2e-4, passed=False)]},
    ]
    errata = [{"source": "s.txt", "equation": "(23)", "printed": "a", "corrected": "b", "note": "", "claim": "X-2"}]
    return {"schema": 1, "summary": {}, "claims": claims, "errata": errata,
            "run": {"seed": 1, "versions": {"numpy": "2"}, "wall_time_s": 10.0, "environment": env}}


def _failures(old, new, **kw):
    return [c for c in compare(old, new, **kw) if c.failure]


def test_identical_runs_pass_and_machine_fields_are_ignored():
    old, new = _results(), _results()
    new["run"].update(wall_time_s=99.0, versions={"numpy": "3"}, platform="other", cached=["X-1"])
    for c in new["claims"]:
        c["wall_time_s"] = 123.0
        c["reason"] = "reworded"
        for ch in c["checks"]:
            ch["why"] = ch["metric"] = "reworded"
    assert _failures(old, new) == []


def test_status_change_and_check_that_stops_passing():
    old, new = _results(), _results()
    new["claims"][0]["status"] = "refuted"
    new["claims"][0]["checks"][1].update(passed=False, value=0.9)
    fails = _failures(old, new)
    assert {(c.claim, c.what, c.field) for c in fails} == {
        ("X-1", "status", "status"), ("X-1", "slope-is-2", "passed"), ("X-1", "slope-is-2", "value")}
    text = render(compare(old, new), "base.json", 2, 6)
    assert "X-1 | status: verified -> refuted" in text
    assert "X-1 | slope-is-2 | passed: yes -> NO" in text
    assert "X-1 | slope-is-2 | value: 0.0005 -> 0.9 | iterative, same environment: allowed drift 5e-05" in text
    assert text.splitlines()[-1] == "regress: 3 regressions (1 status, 1 passed, 1 drift) against base.json"
    # verdict changes come first, drift last
    body = [ln.strip() for ln in text.splitlines() if ln.strip().startswith("X-1 |")]
    assert [("status" in b, "passed" in b, "value" in b) for b in body] == [
        (True, False, False), (False, True, False), (False, False, True)]


def test_drift_within_and_beyond_the_per_check_tolerance():
    ch = _check("slope is 2", 5.0e-4, 0.05)
    tol, why = drift_tolerance(ch)
    assert tol == pytest.approx(max(DRIFT_REL * 5e-4, DRIFT_OF_TOL * 0.05)) and "0.05" in why
    old = _results()
    for delta, bad in ((0.9 * tol, False), (1.1 * tol, True)):
        new = _results()
        new["claims"][0]["checks"][1]["value"] = 5.0e-4 + delta
        assert bool(_failures(old, new)) == bad, delta


def test_round_off_values_may_move_by_round_off_only():
    old, new = _results(), _results()
    new["claims"][0]["checks"][2]["value"] = 3.5e-16  # another ulp pattern: not a regression
    assert _failures(old, new) == []
    new["claims"][0]["checks"][2]["value"] = 5e-13  # still passes 1e-12, but 1000x the round-off: caught
    assert [c.what for c in _failures(old, new)] == ["duality-gap"]


def test_exact_values_tolerances_counts_and_lost_checks():
    old = _results()
    for mutate, what, field in [
        (lambda r: r["claims"][0]["checks"][0].update(value="x - y"), "identity", "value"),
        (lambda r: r["claims"][0]["checks"][4].update(value=2), "count", "value"),
        (lambda r: r["claims"][0]["checks"][1].update(tolerance=0.5), "slope-is-2", "tolerance"),
        (lambda r: r["claims"][0]["checks"].pop(1), "slope-is-2", "check"),
        (lambda r: r["claims"][0]["checks"][1].update(value="nan"), "slope-is-2", "value"),
        (lambda r: r["claims"][0].update(figures=[]), "figures", "figure"),
        (lambda r: r.update(errata=[]), "errata", "erratum"),
    ]:
        new = copy.deepcopy(old)
        mutate(new)
        assert [(c.what, c.field) for c in _failures(old, new)] == [(what, field)]


def test_new_claims_and_checks_are_listed_not_failed():
    old, new = _results(), _results()
    new["claims"].append({"id": "X-3", "title": "t", "status": "verified", "checks": [], "figures": []})
    new["claims"][0]["checks"].append(_check("another", 1.0, 2.0))
    changes = compare(old, new)
    assert not any(c.failure for c in changes) and {c.claim for c in changes} == {"X-1", "X-3"}
    assert "not in the baseline" in render(changes, "b", 2, 6)


def test_removed_and_unselected_claims():
    old, new = _results(), _results()
    new["claims"].pop(1)
    assert _failures(old, new, ran={"X-1"}) == []  # a selective run: X-2 was not asked for
    assert [c.new for c in _failures(old, new, registered={"X-1"})] == ["no longer registered"]
    assert [c.new for c in _failures(old, new)] == ["not reported by this run"]


def test_solver_values_across_environments():
    """Same environment: a SciPy value must reproduce; another CPU/version set: within its tolerance."""
    old = _results("A")
    new = _results("A")
    new["claims"][0]["checks"][3]["value"] = 0.03  # measured when forcing another OpenBLAS kernel
    assert [c.what for c in _failures(old, new)] == ["solver-distance-ratio"]
    new["run"]["environment"] = "B"
    assert _failures(old, new) == []
    new["claims"][0]["checks"][3]["value"] = 1.3  # beyond its tolerance even across machines
    assert [c.what for c in _failures(old, new)] == ["solver-distance-ratio"]
    new = _results("B")
    new["claims"][0]["checks"][1]["value"] = 0.01  # an iterative value within its tolerance 0.05
    assert _failures(old, new) == []
    new["claims"][0]["checks"][1]["value"] = 0.06  # beyond it
    assert [c.what for c in _failures(old, new)] == ["slope-is-2"]


def test_tolerance_scale_reads_text_tolerances():
    assert tolerance_scale(0.05) == 0.05
    assert tolerance_scale("1 ± 0.05") == 0.05
    assert tolerance_scale(">= -1") == 1
    assert tolerance_scale("> 0") == 0 and tolerance_scale("exact") == 0
    assert drift_tolerance(_check("s", "0", "exact", cls="exact"))[0] is None
    assert drift_tolerance(_check("n", 1, 1, cls="exact"))[0] is None


def _other_env(res):
    res["run"]["environment"] = "B"
    return res


def test_each_class_has_one_rule_across_environments():
    old = _results()
    # roundoff, iterative and statistical values may move within their tolerance on another machine
    new = _other_env(_results())
    new["claims"][0]["checks"][2]["value"] = 9e-13  # duality gap, roundoff, tolerance 1e-12
    new["claims"][0]["checks"][3]["value"] = 0.03  # solver ratio, iterative, tolerance 1
    assert _failures(old, new) == []
    # but not beyond it, and exact values not at all
    new["claims"][0]["checks"][3]["value"] = 1.2
    new["claims"][0]["checks"][4]["value"] = 2
    fails = _failures(old, new)
    assert {(c.what, c.field) for c in fails} == {("solver-distance-ratio", "value"), ("count", "value")}
    # on the same machine the same moves are drift
    same = _results()
    same["claims"][0]["checks"][2]["value"] = 9e-13
    assert [(c.what, c.field) for c in _failures(old, same)] == [("duality-gap", "value")]


def test_measured_checks_are_excluded():
    old, new = _results(), _results()
    new["claims"][0]["checks"][5].update(value=99.0, passed=False, tolerance=1.0)
    assert _failures(old, new) == []


def test_computed_tolerances_follow_the_value_rule_not_equality():
    old, new = _results(), _results()
    old["claims"][0]["checks"][2]["tolerance"] = 4.696241e-12
    new["claims"][0]["checks"][2]["tolerance"] = 4.696241e-12 * (1 + 1e-15)  # last bits, prints the same
    assert _failures(old, new) == []
    new["claims"][0]["checks"][2]["tolerance"] = 1e-6  # loosened: a regression
    assert [(c.what, c.field) for c in _failures(old, new)] == [("duality-gap", "tolerance")]
    # a solver-derived tolerance may move by its own size on another machine, not beyond
    old = _results()
    old["claims"][0]["checks"][3]["tolerance"] = 6.27089e-10
    new = _other_env(_results())
    new["claims"][0]["checks"][3]["tolerance"] = 6.277995e-10
    assert _failures(old, new) == []
    new["claims"][0]["checks"][3]["tolerance"] = 2e-9
    assert [(c.what, c.field) for c in _failures(old, new)] == [("solver-distance-ratio", "tolerance")]


def test_checks_are_matched_by_key_not_by_name():
    old, new = _results(), _results()
    for ch in new["claims"][0]["checks"]:
        ch["name"] = "reworded " + ch["name"]
    assert _failures(old, new) == []


def test_part_status_changes_are_regressions():
    old, new = _results(), _results()
    old["claims"][0]["parts"] = [{"id": "X-1/a", "status": "verified", "checks": ["count"]}]
    new["claims"][0]["parts"] = [{"id": "X-1/a", "status": "refuted", "checks": ["count"]}]
    assert [(c.what, c.field) for c in _failures(old, new)] == [("X-1/a", "status")]


def test_baseline_is_the_committed_file_not_the_working_tree(tmp_path):
    if shutil.which("git") is None:
        pytest.skip("git not installed")
    run = lambda *a: subprocess.run(["git", "-C", str(tmp_path), *a], check=True, capture_output=True)  # noqa: E731
    run("init", "-q")
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "results.json").write_text(json.dumps(_results()))
    run("add", "docs/results.json")
    run("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "baseline")
    rewritten = _results()
    rewritten["claims"][0]["status"] = "refuted"  # what a `make verify` may have written since
    (tmp_path / "docs" / "results.json").write_text(json.dumps(rewritten))
    res, where = load_baseline(None, tmp_path)
    assert res["claims"][0]["status"] == "verified" and where.startswith("HEAD:docs/results.json")
    other = tmp_path / "other.json"
    other.write_text(json.dumps(rewritten))
    assert load_baseline(str(other), tmp_path)[0]["claims"][0]["status"] == "refuted"
    other.write_text("{")
    with pytest.raises(BaselineError, match="not valid JSON"):
        load_baseline(str(other), tmp_path)


def test_outside_git_the_working_tree_file_is_used_and_said(tmp_path):
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "results.json").write_text(json.dumps(_results()))
    res, where = load_baseline(None, tmp_path)
    assert "not a git checkout" in where and res["claims"][0]["id"] == "X-1"


# ---- end to end: a broken closed form in a copy of the project -------------------------------------
EDITS = {
    # (13) with the sign of alpha Sigma flipped in the derivation's candidate: symbolic checks fail
    "FD-13": ("derivations/cumulant.py", "(I + a * Sig)", "(I - a * Sig)"),
    # FD-14's predicted coefficient off by 1%: still inside the check's 2% tolerance (it passes), but
    # the value moves far beyond its drift tolerance, which only a regression run sees
    "FD-14": ("checks/closed_forms.py", "return -dual.covariance(T, u) @ z",
              "return -1.01 * dual.covariance(T, u) @ z"),
}


def _copy_project(dest: Path) -> Path:
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for pkg in ("attnverify", "derivations", "checks"):
        shutil.copytree(ROOT / pkg, dest / pkg, ignore=ignore)
    shutil.copy(ROOT / "pyproject.toml", dest)
    return dest


def _cli(proj: Path, *args) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(proj), ATTNVERIFY_CACHE=str(proj / ".cache"))
    return subprocess.run([sys.executable, "-m", "attnverify.cli", *args], cwd=proj, env=env,
                          capture_output=True, text=True, timeout=600)


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    proj = _copy_project(tmp_path_factory.mktemp("proj"))
    where = subprocess.run([sys.executable, "-c", "import attnverify.checks as checks, attnverify; print(checks.__file__, attnverify.__file__)"],
                           cwd=proj, env=dict(os.environ, PYTHONPATH=str(proj)), capture_output=True, text=True)
    assert where.stdout.count(str(proj)) == 2, f"the copy is not the code that runs: {where.stdout}{where.stderr}"
    docs = proj / "baseline"
    r = _cli(proj, "verify", "--only", *EDITS, "--no-cache", "--docs", str(docs))
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    return proj, docs / "results.json"


def test_regress_passes_on_an_unchanged_project(project):
    proj, baseline = project
    r = _cli(proj, "regress", "--only", *EDITS, "--baseline", str(baseline), "-q")
    assert r.returncode == 0, r.stdout + r.stderr[-2000:]
    assert "0 regressions" in r.stdout


@pytest.mark.parametrize("claim", list(EDITS))
def test_regress_fails_readably_when_a_closed_form_is_broken(project, claim, tmp_path):
    proj, baseline = project
    broken = _copy_project(tmp_path / "broken")
    path, old, new = EDITS[claim]
    src = (broken / path).read_text()
    assert old in src, f"{path} no longer contains {old!r}: update EDITS in this test"
    (broken / path).write_text(src.replace(old, new))
    r = _cli(broken, "regress", "--only", claim, "--baseline", str(baseline), "-q")
    assert r.returncode == 1, r.stdout + r.stderr[-2000:]
    names = {c.get("key") or c["name"] for c in next(c for c in json.loads(baseline.read_text())["claims"]
                                                     if c["id"] == claim)["checks"]}
    lines = [ln.strip() for ln in r.stdout.splitlines() if ln.strip().startswith(f"{claim} |")]
    assert lines, r.stdout
    for ln in lines:  # claim | check | field: old -> new | tolerance
        parts = ln.split(" | ")
        assert parts[0] == claim and "->" in ln, ln
        if len(parts) >= 3 and parts[2].startswith("value:"):  # a value names its check and tolerance
            assert parts[1].split(" (#")[0] in names, ln
            assert len(parts) == 4 and ("allowed drift" in parts[3] or "must be equal" in parts[3]), ln
    if claim == "FD-13":
        assert f"{claim} | status: verified -> refuted" in r.stdout
        assert "passed: yes -> NO" in r.stdout
    else:  # the check still passes; only its value gives the edit away
        assert "status:" not in r.stdout and "passed:" not in r.stdout
        assert "leading-coefficient" in r.stdout and "allowed drift" in r.stdout
    assert r.stdout.strip().splitlines()[-1].startswith("regress: ")

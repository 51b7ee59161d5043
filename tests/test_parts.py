"""Claims in parts, and judgement calls with their sensitivity (issue 15; CLAIMS.md, "What a claim's
status judges" and "Judgement calls")."""

import re
import sys
from pathlib import Path
import types

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from attnverify.evidence import Check, Evidence, sensitivity_problem
from attnverify.registry import Claim, Part, Quote, _claim, load_claims
from attnverify.verify import WORST_FIRST, judge, run_claim


def _claim_with(parts, **kw):
    return Claim(id="X-1", title="t", seed="s", equation="(1)", statement="x", checks=["m:f"],
                 parts=[Part(id=f"X-1/{pid}", title=pid, statement=pid, checks=keys) for pid, keys in parts], **kw)


def _ev(**outcomes):
    """Evidence with one numerical check per key: True passes, False fails."""
    ev = Evidence()
    for key, ok in outcomes.items():
        ev.at_most(key, key, 0.0 if ok else 2.0, 1.0, "test", method="numpy", numerical_class="exact", evidence="float")
    return ev


def test_claim_is_the_worst_of_its_parts():
    c = _claim_with([("a", ["k1", "k2"]), ("b", ["k3"])])
    d = judge(c, _ev(k1=True, k2=True, k3=True), [])
    assert d.status == "verified" and [p["status"] for p in d.parts] == ["verified", "verified"]
    assert d.decided == "all 3 checks of parts X-1/a, X-1/b passed"
    d = judge(c, _ev(k1=True, k2=True, k3=False), [])
    assert d.status == "refuted" and [p["status"] for p in d.parts] == ["verified", "refuted"]
    assert d.decided.startswith("X-1/b refuted by check `k3`")
    d = judge(c, _ev(k1=True, k3=True), [])  # k2 did not run
    assert d.status == "inconclusive" and d.parts[0]["status"] == "inconclusive" and "k2" in d.reason


def test_a_part_without_checks_is_not_checked_yet():
    c = _claim_with([("a", ["k1"]), ("todo", [])])
    d = judge(c, _ev(k1=True), [])
    assert d.status == "inconclusive" and d.parts[1]["status"] == "inconclusive"
    assert "not checked yet" in d.parts[1]["finding"]


def test_a_check_in_no_part_still_counts():
    c = _claim_with([("a", ["k1"])])
    assert judge(c, _ev(k1=True, loose=True), []).status == "verified"
    d = judge(c, _ev(k1=True, loose=False), [])
    assert d.status == "refuted" and d.parts[0]["status"] == "verified" and "loose" in d.decided


def test_a_function_that_could_not_decide_keeps_the_claim_from_verified():
    c = _claim_with([("a", ["k1"])])
    assert judge(c, _ev(k1=True), ["m:f: solver did not converge"]).status == "inconclusive"
    assert judge(c, _ev(k1=False), ["m:f: solver did not converge"]).status == "refuted"


def test_a_not_checkable_part_keeps_the_claim_from_verified():
    c = _claim_with([("a", ["k1"])])
    c.parts.append(Part(id="X-1/words", title="w", statement="w", status="not-checkable", reason="no statement"))
    d = judge(c, _ev(k1=True), [])
    assert d.status == "not-checkable" and d.parts[1]["finding"].endswith("no statement")
    assert judge(c, _ev(k1=False), []).status == "refuted"


def test_part_findings_from_the_checks():
    c = _claim_with([("a", ["k1"])])
    ev = _ev(k1=False)
    ev.part_finding("X-1/a", "what is true instead")
    assert judge(c, ev, []).parts[0]["finding"] == "what is true instead"


@settings(max_examples=60, deadline=None)
@given(st.lists(st.lists(st.sampled_from([True, False, None]), min_size=1, max_size=3), min_size=1, max_size=4))
def test_worst_of_parts_property(outcomes):
    """For any pattern of passing (True), failing (False) and missing (None) checks, the claim's status
    is the worst of its parts', and a part is refuted iff one of its checks failed."""
    parts = [(f"p{i}", [f"k{i}-{j}" for j in range(len(o))]) for i, o in enumerate(outcomes)]
    ran = {f"k{i}-{j}": ok for i, o in enumerate(outcomes) for j, ok in enumerate(o) if ok is not None}
    d = judge(_claim_with(parts), _ev(**ran), [])
    for o, p in zip(outcomes, d.parts):
        want = "refuted" if False in o else "inconclusive" if None in o else "verified"
        assert p["status"] == want
    assert d.status == min((p["status"] for p in d.parts), key=WORST_FIRST.index)


# ---- judgement calls ------------------------------------------------------------------------------

def _judged(value, threshold=0.1, rng=(0.05, 0.2), **kw):
    ev = Evidence()
    ev.judged("j", "mean deviation is small", value, threshold, "what 'small' means here",
              parameter="threshold on the mean deviation", declared_range=rng,
              why_this_range="test", method="numpy", numerical_class="measured", evidence="float", **kw)
    return ev


def test_judged_exact_flip_point_for_a_threshold():
    c = _judged(0.111).checks[0]
    assert not c.passed and c.threshold_kind == "judgement"
    assert c.sensitivity["verdict_over_range"] == "flips" and c.sensitivity["flips_at"] == pytest.approx(0.111)
    assert _judged(0.03).checks[0].sensitivity == {
        "parameter": "threshold on the mean deviation", "declared_range": [0.05, 0.2], "nominal": 0.1,
        "why_this_range": "test", "flips_at": None, "verdict_over_range": "stable"}
    assert _judged(0.5).checks[0].sensitivity["verdict_over_range"] == "stable"  # fails over the whole range
    lo = _judged(0.3, threshold=0.5, rng=(0.2, 1.0), kind="at_least").checks[0]
    assert lo.passed is False and lo.sensitivity["flips_at"] == pytest.approx(0.3)


def test_judged_bisects_a_setup_parameter():
    """A verdict that depends on a setup choice (here: passes below scale 3.7) is located by bisection."""
    ev = _judged(0.0, threshold=1.0, rng=(0.5, 10.0), verdict_at=lambda x: x < 3.7, log=True)
    s = ev.checks[0].sensitivity
    assert ev.checks[0].passed and s["verdict_over_range"] == "flips"
    assert s["flips_at"] == pytest.approx(3.7, rel=1e-6)


def test_judged_range_must_contain_the_threshold_and_have_a_reason():
    with pytest.raises(ValueError, match="must contain"):
        _judged(0.0, threshold=0.3)
    with pytest.raises(ValueError, match="reason"):
        Evidence().judged("j", "n", 0.0, 0.1, "w", parameter="p", declared_range=(0.05, 0.2), why_this_range="",
                          method="numpy")


def test_a_flipping_judgement_makes_the_part_inconclusive_with_the_flip_point():
    c = _claim_with([("layers", ["j"]), ("other", ["k1"])])
    ev = _judged(0.111)
    ev.extend(_ev(k1=True))
    d = judge(c, ev, [])
    assert d.status == "inconclusive" and d.parts[0]["status"] == "inconclusive"
    assert "flips at threshold on the mean deviation = 0.111" in d.decided
    ev = _judged(0.5)  # fails over the whole declared range: refuted
    ev.extend(_ev(k1=True))
    assert judge(c, ev, []).parts[0]["status"] == "refuted"
    ev = _judged(0.03)
    ev.extend(_ev(k1=True))
    assert judge(c, ev, []).status == "verified"
    # a judgement that passes at the nominal threshold but flips in range is not verified either
    ev = _judged(0.09)
    ev.extend(_ev(k1=True))
    assert ev.checks[0].passed and judge(c, ev, []).status == "inconclusive"


def test_a_judgement_without_sensitivity_is_an_engine_error():
    ev = Evidence()
    ev.check("a judged thing", "numpy", "m", 0.05, 0.1, True, "w", key="j", threshold_kind="judgement")
    assert "no sensitivity" in sensitivity_problem(ev.checks[0])
    d = judge(Claim(id="X-1", title="t", seed="s", equation="(1)", statement="x", checks=["m:f"]), ev, [])
    assert d.status == "inconclusive" and "engine error" in d.reason
    bad = Check("n", "numpy", "m", 0.0, 1.0, True, key="j", threshold_kind="judgement",
                sensitivity={"parameter": "p", "declared_range": [1, 0], "why_this_range": "w", "flips_at": None,
                             "verdict_over_range": "stable"})
    assert "lo < hi" in sensitivity_problem(bad)


# ---- registry and results.json -------------------------------------------------------------------

def test_registry_parses_parts_and_quote_and_rejects_bad_parts():
    base = {"id": "X-1", "title": "t", "seed": "s", "equation": "(1)", "statement": "x", "reading": "r",
            "quote": {"source": "s", "location": "l", "text": "q"},
            "part": [{"id": "X-1/a", "title": "a", "statement": "a", "checks": ["k"]}]}
    c = _claim(base)
    assert c.quote == Quote("s", "l", "q") and c.parts[0].checks == ["k"] and c.reading == "r"
    with pytest.raises(ValueError, match="must start with"):
        _claim(dict(base, part=[{"id": "Y/a", "title": "a", "statement": "a"}]))
    with pytest.raises(ValueError, match="takes its status from them"):
        _claim(dict(base, status="not-checkable", reason="r"))
    with pytest.raises(ValueError, match="claim X-1"):
        _claim(dict(base, quote={"source": "s"}))


def test_run_claim_emits_quote_reading_parts_decided(monkeypatch):
    mod = types.ModuleType("fake_part_checks")

    def f():
        ev = _ev(k1=True, k2=False)
        ev.part_finding("X-1/b", "b is false as printed; corrected form holds")
        return ev

    mod.f = f
    monkeypatch.setitem(sys.modules, "fake_part_checks", mod)
    c = _claim_with([("a", ["k1"]), ("b", ["k2"])])
    c.checks = ["fake_part_checks:f"]
    c.quote, c.reading = Quote("s.txt", "Sec 1", "the  paper's\n words"), "what we add"
    r = run_claim(c, log=lambda s: None)
    assert r["quote"] == {"source": "s.txt", "location": "Sec 1", "text": "the paper's words"}
    assert r["reading"] == "what we add" and r["status"] == "refuted"
    assert [p["id"] for p in r["parts"]] == ["X-1/a", "X-1/b"]
    assert set(r["parts"][0]) == {"id", "title", "statement", "status", "checks", "finding"}
    assert r["parts"][1]["finding"].startswith("b is false") and r["decided"].startswith("X-1/b refuted")


def test_a_part_may_name_a_family_of_keys_by_pattern():
    c = _claim_with([("layers", ["layer-*-ok"]), ("t5", ["t5"])])
    d = judge(c, _ev(**{"layer-0-ok": True, "layer-1-ok": True, "t5": True}), [])
    assert d.status == "verified" and d.parts[0]["checks"] == ["layer-0-ok", "layer-1-ok"]
    d = judge(c, _ev(**{"layer-0-ok": True, "layer-1-ok": False, "t5": True}), [])
    assert d.parts[0]["status"] == "refuted" and "layer-1-ok" in d.decided
    d = judge(c, _ev(t5=True), [])  # a pattern that matches nothing: the part's checks did not run
    assert d.parts[0]["status"] == "inconclusive"


def _claims_md():
    for up in Path(__file__).resolve().parents:
        if (up / "shared" / "CLAIMS.md").is_file():
            return up / "shared" / "CLAIMS.md"
    return None


def test_the_parts_claims_md_requires_exist():
    md = _claims_md()
    if md is None:
        pytest.skip("../shared/CLAIMS.md not found next to the checkout")
    required = set(re.findall(r"`((?:FD|EOT|GOAT|EOS)-[A-Z0-9]+/[a-z0-9-]+)`", md.read_text()))
    have = {p.id for c in load_claims() for p in c.parts}
    assert required and required <= have, sorted(required - have)


def test_only_placeholder_parts_have_no_checks():
    """A part without checks is 'not checked yet' (inconclusive): only the parts other helpers fill."""
    empty = {p.id for c in load_claims() for p in c.parts if not p.checks and not p.status}
    assert empty <= {"FD-FIG4/layers", "FD-FIG4/heads", "FD-FIG4/gauge", "FD-VIT/tables", "FD-VIT/reduced"}


def test_a_stable_failing_judgement_refutes_and_says_it_is_stable():
    c = _claim_with([("a", ["j"])])
    d = judge(c, _judged(0.5), [])
    assert d.status == "refuted" and "fails over its whole declared range [0.05, 0.2]" in d.decided


def test_mutants_of_a_not_checkable_claim_with_checks_are_judged_by_them():
    """GOAT-SINK is not-checkable as a whole but its corollary part runs checks: a mutant that makes one of
    them fail is caught; a not-checkable claim without checks still cannot judge its mutants."""
    from attnverify.mutate import judge as judge_mutant

    ref = {"status": "not-checkable", "reason": "r", "failed": [], "checks": 12}
    assert judge_mutant(ref, {"status": "refuted", "reason": "x", "failed": ["k"], "crashed": False})[0]
    assert not judge_mutant(ref, {"status": "not-checkable", "reason": "r", "failed": [], "crashed": False})[0]
    assert not judge_mutant(dict(ref, checks=0), {"status": "refuted", "reason": "x", "failed": ["k"],
                                                  "crashed": False})[0]


def test_verified_with_a_stable_judgement_says_so():
    c = _claim_with([("a", ["j", "k1"])])
    ev = _judged(0.03)
    ev.extend(_ev(k1=True))
    d = judge(c, ev, [])
    assert d.status == "verified" and "1 judgement call stable over its declared range" in d.decided
    assert "stable over its declared range" in judge(_claim_with([]), ev, []).decided  # no parts: the claim itself

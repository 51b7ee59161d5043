"""The status rule, the registry, and that a wrong closed form is reported as not passing."""

import re
from pathlib import Path

import numpy as np
import pytest

from attnverify import dual
from attnverify.evidence import Evidence, Inconclusive
from attnverify.registry import Claim, load_claims
from attnverify.verify import decide, run_claim

CLAIMS_MD = Path(__file__).resolve().parents[2] / "shared" / "CLAIMS.md"


# Claims beyond the catalogue, added by an issue (issue 6: other regularisers give other attentions).
# Listed here so that a mistyped catalogue ID cannot pass as an "extra".
EXTRA_IDS = {"EOT-OMEGA"}


def test_registry_lists_every_catalogue_id():
    ids = [c.id for c in load_claims()]
    assert len(ids) == len(set(ids))
    if CLAIMS_MD.exists():
        want = re.findall(r"^\| ((?:FD|EOT|GOAT|EOS)-[A-Z0-9]+) \|", CLAIMS_MD.read_text(), re.M)
        assert set(want) <= set(ids)
        assert set(ids) - set(want) == EXTRA_IDS


def _claim(**kw):
    return Claim(id="X-1", title="t", seed="s", equation="(1)", statement="x", **kw)


def test_status_rule():
    ok, bad = Evidence(), Evidence()
    ok.check("a", "numeric", "m", 0.0, 1e-9, True, key="a")
    bad.check("a", "numeric", "m", 1.0, 1e-9, False, key="a")
    c = _claim(checks=["m:f"])
    assert decide(c, ok, [])[0] == "verified"
    assert decide(c, bad, [])[0] == "refuted"
    assert decide(c, ok, ["solver failed"])[0] == "inconclusive"
    assert decide(c, Evidence(), [])[0] == "inconclusive"  # ran, but recorded nothing
    assert decide(_claim(), Evidence(), []) == ("inconclusive", "not implemented yet")
    assert decide(_claim(status="not-checkable", reason="r"), Evidence(), [])[0] == "not-checkable"


def test_inconclusive_and_crash_are_not_verified(monkeypatch):
    import types, sys

    mod = types.ModuleType("fake_checks")

    def passes():
        ev = Evidence()
        ev.check("ok", "numeric", "m", 0.0, 1.0, True, key="ok")
        return ev

    def undecided():
        raise Inconclusive("solver did not converge")

    def crashes():
        raise ZeroDivisionError("boom")

    mod.passes, mod.undecided, mod.crashes = passes, undecided, crashes
    monkeypatch.setitem(sys.modules, "fake_checks", mod)
    quiet = lambda s: None
    assert run_claim(_claim(checks=["fake_checks:passes"]), log=quiet)["status"] == "verified"
    r = run_claim(_claim(checks=["fake_checks:passes", "fake_checks:undecided"]), log=quiet)
    assert r["status"] == "inconclusive" and "did not converge" in r["reason"]
    r = run_claim(_claim(checks=["fake_checks:passes", "fake_checks:crashes"]), log=quiet)
    assert r["status"] == "inconclusive" and "ZeroDivisionError" in r["reason"]


# ---- wrong closed forms must be reported as not passing ------------------------------------------

def test_wrong_sign_in_lambda_14_fails_order_check():
    from attnverify.checks import closed_forms as cf

    ev = cf._order_check("FD-14", lambda i, a, lam: lam + a * i.z,  # sign flipped: alpha z -> -alpha z
                         lambda T, u, z: -dual.covariance(T, u) @ z)
    assert not all(c.passed for c in ev.checks)


def test_dropped_factor_in_13_fails_order_check():
    from attnverify.checks import closed_forms as cf

    def wrong_13(i, a, lam):  # alpha dropped in front of Sigma: (I + Sigma)^-1
        return lam - a * np.linalg.solve(np.eye(len(i.z)) + dual.covariance(i.T, i.u), i.z)

    ev = cf._order_check("FD-13", wrong_13, lambda T, u, z: -0.5 * cf._third_cumulant_zz(T, u, z))
    assert not all(c.passed for c in ev.checks)


def test_wrong_coefficient_fails_even_with_right_order():
    from attnverify.checks import closed_forms as cf

    ev = cf._order_check("FD-14", lambda i, a, lam: lam - a * i.z,
                         lambda T, u, z: +dual.covariance(T, u) @ z)  # predicted sign flipped
    assert ev.failed() == ["leading-coefficient-of-lambda-alpha-z-matches-the-derivation"]


def test_wrong_recovery_formula_fails_pinsker_check():
    """(9) with the sign of the exponent flipped is far from the primal minimiser."""
    from attnverify.checks.instances import pinsker_bound, solved_instances

    s = solved_instances()[5]
    wrong = dual.tilted(s.inst.T, s.inst.u, -s.lam)
    F_wrong = dual.primal_objective(s.inst.T, s.inst.u, s.inst.z, s.inst.alpha, wrong)
    right = np.abs(s.p9 - s.scipy.p).sum() / pinsker_bound(s.primal_at_p9, s.scipy.value, s.dual_value, len(s.inst.u))
    assert right <= 1
    # the wrong p is not a near-minimiser: its value gap is large
    assert F_wrong - s.dual_value > 1e-6


def test_every_check_needs_a_key_unique_within_its_claim(monkeypatch):
    import sys
    import types

    from attnverify.evidence import Check, DuplicateKey

    with pytest.raises(TypeError):
        Evidence().check("a", "numeric", "m", 0.0, 1.0, True)  # no key
    with pytest.raises(ValueError, match="no key"):
        Check("a", "numeric", "m", 0.0, 1.0, True)
    ev = Evidence()
    ev.at_most("gap", "duality gap", 0.0, 1e-9, "w", method="newton")
    with pytest.raises(DuplicateKey, match="'gap'"):
        ev.at_most("gap", "another duality gap", 0.0, 1e-9, "w", method="newton")

    # two functions of one claim with the same key: the claim is not verified, and the reason names claim and key
    mod = types.ModuleType("fake_dup")

    def one():
        e = Evidence()
        e.at_most("gap", "duality gap", 0.0, 1e-9, "w", method="newton")
        return e

    mod.one = mod.two = one
    monkeypatch.setitem(sys.modules, "fake_dup", mod)
    r = run_claim(_claim(checks=["fake_dup:one", "fake_dup:two"]), log=lambda s: None)
    assert r["status"] == "inconclusive" and "X-1" in r["reason"] and "'gap'" in r["reason"]
    assert r["decided_by"] == ["fake_dup:one", "fake_dup:two"]


def test_comparison_helpers_record_the_tolerance_text():
    ev = Evidence()
    assert ev.at_least("a", "a", 0.2, 0.1, "w", method="pot", strict=True, shown="> 1e-1")
    assert not ev.at_least("b", "b", 0.1, 0.1, "w", method="pot", strict=True)
    assert ev.within("c", "c", 2.05, 2, 0.1, "w", method="scipy", shown="2 +- 0.1")
    assert ev.equal("d", "d", 1, 1, "w", method="symbolic", shown=1)
    assert [c.tolerance for c in ev.checks] == ["> 1e-1", "> 0.1", "2 +- 0.1", 1]
    assert not ev.at_most("e", "e", float("nan"), 1.0, "w", method="numpy")

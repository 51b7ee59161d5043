"""Tests for the Edge-of-Stability claims: derivations.eos (EOS-REC, EOS-LOSS, EOS-P2) and
checks.eos_numeric (the same three numerically, and EOS-SHARP).

Each derivation and numeric check must pass; each wrong candidate (boundary 1/eta, a dropped
factor 1/2, a flipped sign of the bifurcation side, the separable-only kappa, the Hessian at
theta_t instead of the segment average, a broken Hessian-vector product) must make a check fail.
"""

import time

import numpy as np
import pytest
import sympy as sp

from attnverify import context
from attnverify.evidence import Evidence
from attnverify.checks import eos_numeric as en
from attnverify.derivations import eos

DERIVATIONS = [eos.step_recurrence, eos.loss_change, eos.period_two]
# EOS-LOSS/nogap is false as printed (issue 15): exactly its as-printed checks fail
NOGAP = {eos.loss_change: {"nogap-htilde-is-the-hessian-at-a-point", "nogap-hhat-is-the-top-eigenvalue"},
         en.loss_change_numeric: {"nogap-numeric-htilde-is-the-hessian-at-a-point",
                                  "nogap-numeric-hhat-is-the-top-eigenvalue"}}


@pytest.mark.parametrize("fn", DERIVATIONS, ids=lambda f: f.__name__)
def test_derivation_passes(fn):
    t0 = time.time()
    ev = fn()
    assert time.time() - t0 < 10
    assert ev.steps and all(s.text for s in ev.steps)
    assert any(s.text.startswith("Made precise") for s in ev.steps)  # what we had to fix ourselves is shown
    assert ev.checks and set(ev.failed()) == NOGAP.get(fn, set())
    assert all(c.method == "symbolic" for c in ev.checks)
    # EOS-LOSS/nogap's corrected form goes into the Errata (issue 15); nothing else is an erratum
    assert ev.finding == "" and len(ev.errata) == (fn is eos.loss_change)
    assert fn.__doc__ and "Source:" in fn.__doc__


# ---------------------------------------------------------------- symbolic must-fail


def test_wrong_stability_boundary_is_detected():
    assert eos._stability_evidence(Evidence(), 2 / eos.eta)
    assert not eos._stability_evidence(Evidence(), 1 / eos.eta)


def test_wrong_sign_in_recurrence_is_detected():
    assert eos._recurrence_identity(Evidence())
    plus = lambda H: sp.Identity(H.shape[0]) + eos.eta * H
    assert not eos._recurrence_identity(Evidence(), candidate=plus)


def test_dropped_half_in_loss_formula_is_detected():
    assert eos._loss_formula_evidence(Evidence())
    assert not eos._loss_formula_evidence(Evidence(), candidate=lambda e, G, h: -e * G * (1 - e * h))
    assert not eos._loss_formula_evidence(Evidence(), candidate=lambda e, G, h: e * G * (1 - e * h / 2))


def test_wrong_sign_boundary_is_detected():
    assert eos._sign_evidence(Evidence(), 2 / eos.eta)
    assert not eos._sign_evidence(Evidence(), 1 / eos.eta)


def test_wrong_kappa_is_detected():
    ev = Evidence()
    eos._amplitude_1d(ev, kappa_candidate=lambda: eos.b_ / 6 + eos.a_ ** 2 / (2 * eos.h_))
    assert "half-amplitude-coefficient-kappa-l-6-l-2-2-l" in ev.failed()


def test_flipped_bifurcation_side_is_detected():
    assert eos._side_evidence(Evidence())
    assert not eos._side_evidence(Evidence(), side=lambda sgn: "above" if sgn > 0 else "below")


def test_separable_only_kappa_is_detected_in_2d():
    sep_only = lambda T, Q, hs: Q / 6 - sp.Rational(1, 2) * T(0, 0, 0) ** 2 / hs[0]
    assert eos._lyapunov_schmidt(Evidence(), 2)
    assert not eos._lyapunov_schmidt(Evidence(), 2, kappa_formula=sep_only)


def test_kappa_examples():
    assert eos.kappa_1d(1, 0, 6) == 1  # x^2/2 + x^4/4: subcritical
    assert eos.kappa_1d(1, 2, 6) == -1  # x^2/2 + x^3/3 + x^4/4: supercritical


# ---------------------------------------------------------------- numeric checks


@pytest.mark.parametrize("fn", [en.recurrence_numeric, en.loss_change_numeric, en.period_two_numeric],
                         ids=lambda f: f.__name__)
def test_numeric_checks_pass(fn, tmp_path, monkeypatch):
    monkeypatch.setattr(context, "FIGURE_DIR", tmp_path)
    ev = fn()
    assert ev.checks and set(ev.failed()) == NOGAP.get(fn, set())
    assert all(c.why for c in ev.checks)


def _one_step(f, seed=0):
    rng = np.random.default_rng(seed)
    th, eta = en._samples(f, rng, n=1)[0]
    return en._step(f, th, eta), eta


def test_hessian_at_theta_t_breaks_the_recurrence():
    for f in en._losses():
        sd, eta = _one_step(f)
        ok = np.linalg.norm(sd.delta1 - (sd.delta - eta * sd.Hbar @ sd.delta)) <= sd.tol_rec
        bad = np.linalg.norm(sd.delta1 - (sd.delta - eta * sd.H0 @ sd.delta)) <= sd.tol_rec
        assert ok and not bad


def test_wrong_averages_and_factor_break_the_loss_formula():
    for f in en._losses():
        sd, eta = _one_step(f)
        dL = sd.L1 - sd.L0
        assert abs(dL - en._loss_formula(eta, sd.g, sd.Htil)) <= sd.tol_loss
        assert abs(dL - en._loss_formula(eta, sd.g, sd.Hbar)) > sd.tol_loss  # uniform weights: not exact
        assert abs(dL - en._loss_formula(eta, sd.g, 2 * sd.Htil)) > sd.tol_loss  # factor 1/2 dropped


def test_boundary_check_detects_1_over_eta():
    assert en._boundary_agreement(2.0, n=500)[0] == 0
    assert en._boundary_agreement(1.0, n=500)[0] > 0


def test_flipped_side_and_wrong_kappa_fail_numerically():
    models = en._models_1d()
    _, side_bad, _, slopes, mu_bad, _ = en._p2_1d(models)
    assert side_bad == 0 and mu_bad == 0 and min(slopes.values()) >= en.SLOPE_MIN
    flip = lambda k: "above" if k > 0 else "below"
    assert en._p2_1d(models, side_of=flip)[1] > 0
    _, side_bad, _, slopes, mu_bad, _ = en._p2_1d(models[1:], kappa_of=lambda m: -m.kappa)
    assert side_bad > 0 and mu_bad > 0 and min(slopes.values()) < en.SLOPE_MIN


def test_separable_only_kappa_fails_on_coupled_model():
    coupled = en._models_2d()[2:]
    _, side_bad, slopes, _, _ = en._p2_2d(coupled, np.random.default_rng(1), kappa_index=6)
    assert side_bad > 0 and min(slopes.values()) < en.SLOPE_MIN


# ---------------------------------------------------------------- EOS-SHARP machinery


def _tiny():
    return en._problem("eos-tiny", n=7, m=3)


def _complex_step_hessian(net, p, h=1e-20):
    return np.array([net.loss_grad(p + 1j * h * e)[1].imag / h for e in np.eye(net.P)])


def test_hvp_matches_full_hessian_and_finite_differences():
    net, p, rng = _tiny()
    p = p + 0.3 * rng.normal(size=net.P)  # away from zero biases, so every block is exercised
    H_cs = _complex_step_hessian(net, p)
    H_hvp = net.hessian(p)
    assert np.abs(H_hvp - H_cs).max() <= 1e-12 * np.abs(H_cs).max()
    assert np.abs(H_hvp - H_hvp.T).max() <= 1e-13 * np.abs(H_cs).max()
    v = rng.normal(size=net.P)
    h = 1e-5
    fd = (net.loss_grad(p + h * v)[1] - net.loss_grad(p - h * v)[1]) / (2 * h)
    assert np.linalg.norm(fd - net.hvp(p, v)) <= 1e-7 * np.linalg.norm(fd)


def test_broken_hvp_is_detected():
    """Dropping the residual (non-Gauss-Newton) part of the R-operator must fail the comparison."""
    net, p, rng = _tiny()
    p = p + 0.3 * rng.normal(size=net.P)
    H_cs = _complex_step_hessian(net, p)

    class GaussNewtonOnly(en.MLP):
        def hvp(self, q, v):
            W1, b1, w2, b2 = self.unpack(q)
            V1, c1, v2, c2 = self.unpack(v)
            A = np.tanh(self.X @ W1.T + b1)
            S = 1 - A * A
            RA = S * (self.X @ V1.T + c1)
            RdF = (RA @ w2 + A @ v2 + c2) / self.n
            RdZ = np.outer(RdF, w2) * S
            return np.concatenate([(RdZ.T @ self.X).ravel(), RdZ.sum(0), RdF @ A, [RdF.sum()]])

    bad = GaussNewtonOnly(net.X, net.y, net.m)
    assert np.abs(bad.hessian(p) - H_cs).max() > 1e-6 * np.abs(H_cs).max()


def test_power_iteration_finds_top_eigenvalue():
    net, p, rng = _tiny()
    lam, v, res, _ = en.top_eig(net, p, rng.normal(size=net.P), rtol=1e-10, maxit=20000)
    top = np.linalg.eigvalsh(_complex_step_hessian(net, p))[-1]
    assert abs(lam - top) <= max(res, 1e-12)


def test_decision_rule():
    eta, steps = 0.1, 1000
    t = np.arange(0, steps + 1, 50)
    hover = np.stack([t, 2 / eta * np.minimum(1.0, 0.3 + t / 300) * (1 + 0.05 * np.sin(t))], 1)
    assert en._decide(hover, eta, steps)[-1]
    flat = np.stack([t, 2 / eta * 0.64 * np.ones_like(t, dtype=float)], 1)
    assert not en._decide(flat, eta, steps)[-1]
    over = np.stack([t, 2 / eta * np.minimum(1.5, 0.3 + t / 300)], 1)  # overshoots and stays at 1.5
    assert not en._decide(over, eta, steps)[-1]


def test_sharpness_claim(tmp_path, monkeypatch):
    """Runs the full experiment (~5 s): the HVP / power-iteration checks pass, and the decision
    checks agree with the finding (a refutation must come with what holds instead)."""
    monkeypatch.setattr(context, "FIGURE_DIR", tmp_path)
    t0 = time.time()
    ev = en.sharpness_gd()
    assert time.time() - t0 < 60
    machinery = [c for c in ev.checks if "sharpness-rises" not in c.key]
    assert machinery and all(c.passed for c in machinery)
    decisions = [c for c in ev.checks if "sharpness-rises" in c.key]
    assert len(decisions) == len(en.SHARP_K)
    assert (ev.finding != "") == (not all(c.passed for c in decisions))

"""Mutants of the edge-of-stability claims (002): the step recurrence, the loss-change formula and the
period-two orbits.  EOS-SHARP's mutants (full training runs) are in mutants/training.py."""

from __future__ import annotations

import functools

import sympy as sp

from . import Mutant


def _eta():
    from derivations.eos import eta

    return eta


def _symbols(*names):
    import derivations.eos as E

    return [getattr(E, nm) for nm in names]


def _kappa_sign_flipped():
    h, a, b = _symbols("h_", "a_", "b_")
    return b / 6 + a**2 / (2 * h)


def _kappa_indices_swapped(T, Q, hs):
    """kappa_1 with T_11k replaced by T_1kk."""
    return Q / 6 - sp.Rational(1, 2) * sum(T(0, k, k) ** 2 / hs[k] for k in range(len(hs)))


MUTANTS = [
    Mutant("EOS-REC/sign", "EOS", "step recurrence delta_{t+1} = (I + eta Hbar) delta_t (sign flipped)",
           patch={"derivations.eos:_recurrence_identity": lambda orig: functools.partial(
               orig, candidate=lambda H: sp.Identity(H.shape[0]) + _eta() * H)}),
    Mutant("EOS-REC/boundary-halved", "EOS", "stability boundary 1/eta instead of 2/eta (factor 2 dropped)",
           patch={"derivations.eos:_stability_evidence": lambda orig: lambda ev, boundary: orig(ev, boundary / 2)}),
    Mutant("EOS-REC/boundary-halved-numeric", "EOS", "numeric contraction test against spec in (0, 1/eta)",
           patch={"checks.eos_numeric:_boundary_agreement": lambda orig: functools.partial(orig, factor=1.0)}),
    Mutant("EOS-LOSS/half-dropped", "EOS", "loss change -eta ||g||^2 (1 - eta hhat) (the 1/2 dropped)",
           patch={"derivations.eos:_loss_formula_evidence": lambda orig: functools.partial(
               orig, candidate=lambda e, G, h: -e * G * (1 - e * h))}),
    Mutant("EOS-LOSS/half-dropped-numeric", "EOS", "numeric loss-change formula without the 1/2",
           patch={"checks.eos_numeric:_loss_formula": lambda orig: lambda eta, g, H:
                  -eta * (g @ g) * (1 - eta * (g @ H @ g) / (g @ g))}),
    Mutant("EOS-P2/kappa-sign", "EOS", "kappa = L''''/6 + L'''^2/(2 L'') (sign of the cubic term flipped)",
           patch={"derivations.eos:_amplitude_1d": lambda orig: functools.partial(
               orig, kappa_candidate=_kappa_sign_flipped)}),
    Mutant("EOS-P2/indices-swapped", "EOS", "kappa_1 = Q_1111/6 - 1/2 sum_k T_1kk^2/h_k (T_11k -> T_1kk)",
           patch={"derivations.eos:_lyapunov_schmidt": lambda orig: functools.partial(
               orig, kappa_formula=_kappa_indices_swapped)}),
    Mutant("EOS-P2/kappa-sign-numeric", "EOS", "numeric kappa = b/6 + a^2/(2h) (sign flipped)",
           patch={"checks.eos_numeric:_kappa": lambda orig: lambda h, a, b: b / 6 + a * a / (2 * h)}),
    Mutant("EOS-P2/cross-term-dropped", "EOS", "2-D kappa_1 without the cross term T_112 (separable part only)",
           patch={"checks.eos_numeric:_p2_2d": lambda orig: functools.partial(orig, kappa_index=6)}),
    Mutant("EOS-LOSS/nan", "EOS", "numeric loss-change formula evaluates to NaN",
           patch={"checks.eos_numeric:_loss_formula": lambda orig: lambda eta, g, H: float("nan")}),
    Mutant("EOS-P2/nan", "EOS", "numeric kappa evaluates to NaN",
           patch={"checks.eos_numeric:_kappa": lambda orig: lambda h, a, b: float("nan")}),
]

"""Mutants of the edge-of-stability claims (002): the step recurrence, the loss-change formula and the
period-two orbits.  EOS-SHARP's mutants (full training runs) are in mutants/training.py."""

from __future__ import annotations

import sympy as sp

from . import Mutant


def _eta():
    from attnverify.derivations.eos import eta

    return eta


def _symbols(*names):
    import attnverify.derivations.eos as E

    return [getattr(E, nm) for nm in names]


def _kappa_sign_flipped():
    h, a, b = _symbols("h_", "a_", "b_")
    return b / 6 + a**2 / (2 * h)


def _kappa_indices_swapped(T, Q, hs):
    r""":math:`\kappa_1` with :math:`T_{11k}` replaced by :math:`T_{1kk}`."""
    return Q / 6 - sp.Rational(1, 2) * sum(T(0, k, k) ** 2 / hs[k] for k in range(len(hs)))


def rec_sign():
    r"""EOS-REC with :math:`\delta_{t+1} = (I + \eta \bar H)\,\delta_t` (sign flipped)."""
    from attnverify.derivations import eos as E

    return E.step_recurrence(candidate=lambda H: sp.Identity(H.shape[0]) + _eta() * H)


def _public(ref, **kw):
    """The public function ``module:function`` with the formula under test passed by keyword."""

    def run():
        import importlib

        module, _, name = ref.partition(":")
        return getattr(importlib.import_module(module), name)(**kw)

    run.__doc__ = f"{ref} with {', '.join(kw)} replaced"
    return run


REC, LOSS, P2 = "attnverify.derivations.eos:step_recurrence", "attnverify.derivations.eos:loss_change", "attnverify.derivations.eos:period_two"
NREC, NLOSS, NP2 = ("attnverify.checks.eos_numeric:recurrence_numeric", "attnverify.checks.eos_numeric:loss_change_numeric",
                    "attnverify.checks.eos_numeric:period_two_numeric")

rec_boundary_halved = _public(REC, boundary_factor=1)
rec_boundary_halved_numeric = _public(NREC, boundary_factor=1.0)
loss_half_dropped = _public(LOSS, candidate=lambda e, G, h: -e * G * (1 - e * h))
loss_half_dropped_numeric = _public(NLOSS, loss_formula=lambda eta, g, H: -eta * (g @ g) * (1 - eta * (g @ H @ g) / (g @ g)))
loss_nan = _public(NLOSS, loss_formula=lambda eta, g, H: float("nan"))
p2_kappa_sign = _public(P2, kappa_candidate=_kappa_sign_flipped)
p2_indices_swapped = _public(P2, kappa_formula=_kappa_indices_swapped)
p2_kappa_sign_numeric = _public(NP2, kappa=lambda h, a, b: b / 6 + a * a / (2 * h))
p2_cross_term_dropped = _public(NP2, kappa_index=6)
p2_nan = _public(NP2, kappa=lambda h, a, b: float("nan"))

MUTANTS = [
    Mutant("EOS-REC/sign", "EOS", r"step recurrence $\delta_{t+1} = (I + \eta \bar H)\,\delta_t$ (sign flipped)",
           replace={REC: "attnverify.mutants.eos:rec_sign"}),
    Mutant("EOS-REC/boundary-halved", "EOS", r"stability boundary $1/\eta$ instead of $2/\eta$ (factor 2 dropped)",
           replace={REC: "attnverify.mutants.eos:rec_boundary_halved"}),
    Mutant("EOS-REC/boundary-halved-numeric", "EOS", r"numeric contraction test against $\operatorname{spec} M \subset (0, 1/\eta)$",
           replace={NREC: "attnverify.mutants.eos:rec_boundary_halved_numeric"}),
    Mutant("EOS-LOSS/half-dropped", "EOS", r"loss change $-\eta \lVert g\rVert^2 (1 - \eta \hat h)$ (the $1/2$ dropped)",
           replace={LOSS: "attnverify.mutants.eos:loss_half_dropped"}),
    Mutant("EOS-LOSS/half-dropped-numeric", "EOS", "numeric loss-change formula without the $1/2$",
           replace={NLOSS: "attnverify.mutants.eos:loss_half_dropped_numeric"}),
    Mutant("EOS-P2/kappa-sign", "EOS", r"$\kappa = L''''/6 + L'''^2/(2 L'')$ (sign of the cubic term flipped)",
           replace={P2: "attnverify.mutants.eos:p2_kappa_sign"}),
    Mutant("EOS-P2/indices-swapped", "EOS", r"$\kappa_1 = Q_{1111}/6 - \frac12 \sum_k T_{1kk}^2/h_k$ ($T_{11k} \to T_{1kk}$)",
           replace={P2: "attnverify.mutants.eos:p2_indices_swapped"}),
    Mutant("EOS-P2/kappa-sign-numeric", "EOS", r"numeric $\kappa = b/6 + a^2/(2h)$ (sign flipped)",
           replace={NP2: "attnverify.mutants.eos:p2_kappa_sign_numeric"}),
    Mutant("EOS-P2/cross-term-dropped", "EOS", r"2-D $\kappa_1$ without the cross term $T_{112}$ (separable part only)",
           replace={NP2: "attnverify.mutants.eos:p2_cross_term_dropped"}),
    Mutant("EOS-LOSS/nan", "EOS", "numeric loss-change formula evaluates to NaN",
           replace={NLOSS: "attnverify.mutants.eos:loss_nan"}),
    Mutant("EOS-P2/nan", "EOS", r"numeric $\kappa$ evaluates to NaN",
           replace={NP2: "attnverify.mutants.eos:p2_nan"}),
]

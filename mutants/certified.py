"""Mutants that only the certified checks (checks.certified) can kill, one per certified check family.

Kind ``replace`` only: the claim's float check is replaced by :func:`no_float_check` (records nothing) and its
certified check by a variant here that runs the same certified check with one closed form made wrong (patched
for the duration of that call, as ``make mutate`` patches). So the claim must be refuted by a ball-arithmetic
enclosure alone. (FD-FIG3 has none: its verdict rests on a judgement call that flips inside its declared
range, so the unmutated claim is inconclusive and no mutant of it could be judged.)"""

from __future__ import annotations

import dataclasses

import numpy as np

from attnverify.evidence import Evidence
from attnverify.registry import resolve

from . import Mutant

D = "attnverify.dual"
NONE = "attnverify.mutants.certified:no_float_check"


def no_float_check() -> Evidence:
    """Stands in for a claim's float check: records nothing."""
    return Evidence()


def _primal_returns_u(orig):
    def solve(T, u, z, alpha, *args, **kwargs):
        return dataclasses.replace(orig(T, u, z, alpha, *args, **kwargs), p=np.asarray(u, float).copy())

    return solve


def _certified_with(ref: str, patch: dict) -> Evidence:
    """The certified check ``ref`` run with ``patch`` applied; refuses to report if the patch was never called."""
    from attnverify.mutate import patched  # lazily: importing mutate sets the BLAS thread variables

    calls = {}
    with patched(patch, calls):
        ev = resolve(ref)()
    if calls and not any(calls.values()):
        raise RuntimeError(f"mutation not injected: {sorted(calls)} never called by {ref}")
    return ev


K = "attnverify.checks.certified"
TILT = {f"{D}:tilted": lambda orig: lambda T, u, lam: orig(T, u, -np.asarray(lam, float))}


def fd3_primal_is_u():
    """The SciPy primal solve returns the prior u instead of the minimiser of (3)."""
    return _certified_with(f"{K}:primal_minimiser_certified", {"attnverify.checks.instances:solve_primal_scipy": _primal_returns_u})


def fd7_tilt_sign():
    """(9) with the tilt's sign flipped."""
    return _certified_with(f"{K}:strong_duality_certified", TILT)


def fd10_half_lambda():
    """(10) evaluated at lambda*/2."""
    return _certified_with(f"{K}:h_hat_through_lambda_certified",
                           {f"{D}:h_hat": lambda orig: lambda T, u, lam: orig(T, u, 0.5 * np.asarray(lam, float))})


def fd13_sigma_is_identity():
    """Sigma replaced by I in (13)."""
    return _certified_with(f"{K}:order_of_13_certified", {
        f"{D}:lambda_quadratic_13": lambda orig: lambda T, u, z, alpha: alpha / (1 + alpha) * np.asarray(z, float)})


def fd14_one_plus_alpha():
    """(14) as alpha (1 + alpha) z: order 2 kept, coefficient wrong."""
    return _certified_with(f"{K}:order_of_14_certified",
                           {f"{D}:lambda_linear_14": lambda orig: lambda z, alpha: (1 + alpha) * orig(z, alpha)})


def fd16_u_ignored():
    """(16) with u replaced by 1/n."""
    return _certified_with(f"{K}:order_of_16_certified", {
        f"{D}:attention_16": lambda orig: lambda T, u, z, alpha: orig(T, np.full(len(u), 1 / len(u)), z, alpha)})


def erratum33_printed_is_corrected():
    """The corrected (33) evaluated as printed: the erratum would be missed."""
    return _certified_with(f"{K}:erratum_33_certified", {
        f"{K}:conjugate_33": lambda orig: lambda g, u, M, gamma, printed: orig(g, u, M, gamma, True)})


def erratum42_printed_is_corrected():
    """The corrected (42) evaluated as printed."""
    return _certified_with(f"{K}:erratum_42_certified",
                           {f"{K}:covariance_42": lambda orig: lambda Q, a, printed: orig(Q, a, True)})


def _m(mid, family, what, float_ref, cert_fn, cert_ref):
    return Mutant(mid, family, what + "; float check removed",
                  replace={float_ref: NONE, f"{K}:{cert_ref}": f"attnverify.mutants.certified:{cert_fn}"})


MUTANTS = [
    _m("FD-3/certified-only-primal-is-u", "FD", "the SciPy primal solve returns u instead of the minimiser of (3)",
       "attnverify.checks.primal_dual:primal_minimiser", "fd3_primal_is_u", "primal_minimiser_certified"),
    _m("FD-7/certified-only-tilt-sign", "FD", "(9) with the tilt's sign flipped",
       "attnverify.checks.primal_dual:strong_duality", "fd7_tilt_sign", "strong_duality_certified"),
    _m("FD-10/certified-only-half-lambda", "FD", "(10) evaluated at lambda*/2",
       "attnverify.checks.primal_dual:h_hat_through_lambda", "fd10_half_lambda", "h_hat_through_lambda_certified"),
    _m("FD-13/certified-only-sigma-is-identity", "FD", "Sigma replaced by I in (13)",
       "attnverify.checks.closed_forms:order_of_13", "fd13_sigma_is_identity", "order_of_13_certified"),
    _m("FD-14/certified-only-one-plus-alpha", "FD", "(14) as alpha (1 + alpha) z (order 2 kept, coefficient wrong)",
       "attnverify.checks.closed_forms:order_of_14", "fd14_one_plus_alpha", "order_of_14_certified"),
    _m("FD-16/certified-only-u-ignored", "FD", "(16) with u replaced by 1/n",
       "attnverify.checks.closed_forms:order_of_16", "fd16_u_ignored", "order_of_16_certified"),
    _m("FD-33/certified-only-printed-is-corrected", "FD-OT", "erratum (33): the corrected conjugate evaluated as printed",
       "attnverify.checks.ot_numeric:conjugate_numeric", "erratum33_printed_is_corrected", "erratum_33_certified"),
    _m("FD-22/certified-only-42-printed-is-corrected", "FD-OT", "erratum (42): the corrected covariance evaluated as printed",
       "attnverify.checks.ot_numeric:exact_vs_22", "erratum42_printed_is_corrected", "erratum_42_certified"),
]

"""Mutants of the OT-based attention claims of 004 (FD-20, FD-33, FD-37, FD-22, FD-G): the closed forms of
attnverify.ot_attention and the candidates of derivations.ot."""

from __future__ import annotations

import numpy as np
import sympy as sp

from . import Mutant

OTA = "attnverify.ot_attention"


def conjugate_transposed():
    """FD-33 with the cost transposed inside the conjugate: gamma (H(u) + sum_j u_j log sum_i e^{(g_i - M_ji)/gamma})."""
    from attnverify.derivations import ot as O

    wrong = O.gam * (-sp.Sum(O.u[O.j] * sp.log(O.u[O.j]), (O.j, 1, O.N))
                     + sp.Sum(O.u[O.j] * sp.log(sp.Sum(sp.exp((O.g[O.i] - O.M[O.j, O.i]) / O.gam), (O.i, 1, O.N))), (O.j, 1, O.N)))
    return O.conjugate(candidate=wrong)


def preference_row_normalised():
    """FD-37 with the normaliser taken over the row of M (sum_l e^{-M_jl/gamma}) instead of the column."""
    from attnverify.derivations import ot as O

    ev = O.true_preference(candidate=O.ut_printed())
    return ev


def attention_ratio_inverted():
    """FD-22 with alpha/gamma <-> gamma/alpha in lambda* = (I + (alpha/gamma) Sigmabar)^{-1} alpha z."""
    from attnverify.derivations import ot as O

    return O.ot_attention_steps(candidate=lambda al, ga, Sig, z, I: (I + (ga / al) * Sig).inv() * al * z)


def group_off_by_one():
    """FD-G with the group size off by one: u_i/(|G| + 1)."""
    from attnverify.derivations import ot as O

    return O.group_cost(candidate=lambda ui, G: ui / (G + 1))


def _transposed(orig, position):
    """orig with its cost argument (at ``position``) transposed."""

    def fn(*args, **kwargs):
        args = list(args)
        args[position] = np.asarray(args[position], float).T
        return orig(*args, **kwargs)

    return fn


MUTANTS = [
    Mutant("FD-20/entropy-sign", "FD-OT", "(20) with the entropy sign flipped: <M, X> + gamma H(X)",
           patch={f"{OTA}:xlogx": lambda orig: lambda x: -orig(x)}),
    Mutant("FD-20/transposed-cost", "FD-OT", "Sinkhorn with the cost matrix transposed (M^T: rows for u, columns for p)",
           patch={f"{OTA}:sinkhorn_log": lambda orig: _transposed(orig, 2)}),
    Mutant("FD-33/conjugate-transposed", "FD-OT", "(33) with M_ji for M_ij inside the log-sum-exp",
           replace={"attnverify.derivations.ot:conjugate": "attnverify.mutants.ot:conjugate_transposed"}),
    Mutant("FD-33/gradient-transposed", "FD-OT", "(34) evaluated with the cost matrix transposed",
           patch={f"{OTA}:ot_conjugate_grad": lambda orig: _transposed(orig, 2)}),
    Mutant("FD-33/gamma-dropped", "FD-OT", "(33) without the factor gamma in front",
           patch={f"{OTA}:ot_conjugate": lambda orig: lambda g, u, M, gamma: orig(g, u, M, gamma) / gamma}),
    Mutant("FD-37/row-normaliser", "FD-OT", "(37) normalised over the row of M instead of the column (the printed "
           "form, wrong for non-symmetric M)",
           replace={"attnverify.derivations.ot:true_preference": "attnverify.mutants.ot:preference_row_normalised"}),
    Mutant("FD-37/exp-sign", "FD-OT", "u~ with e^{+M/gamma} instead of e^{-M/gamma} (sign flipped)",
           patch={f"{OTA}:true_preference": lambda orig: lambda u, M, gamma: orig(u, -np.asarray(M, float), gamma)}),
    Mutant("FD-22/ratio-inverted", "FD-OT", "lambda* = (I + (gamma/alpha) Sigmabar)^{-1} alpha z (alpha/gamma inverted)",
           replace={"attnverify.derivations.ot:ot_attention_steps": "attnverify.mutants.ot:attention_ratio_inverted"}),
    Mutant("FD-22/transposed-cost", "FD-OT", "(22) evaluated with the cost matrix transposed",
           patch={f"{OTA}:ot_attention": lambda orig: _transposed(orig, 3)}),
    Mutant("FD-22/alpha-inverted", "FD-OT", "(22) with alpha <-> 1/alpha in the exponent",
           patch={f"{OTA}:ot_attention": lambda orig: lambda T, u, z, M, alpha, gamma, **kw:
                  orig(T, u, z, M, 1 / alpha, gamma, **kw)}),
    Mutant("FD-G/off-by-one", "FD-OT", "grouped weights u_i/(|G| + 1)",
           replace={"attnverify.derivations.ot:group_cost": "attnverify.mutants.ot:group_off_by_one"}),
    Mutant("FD-G/u-ignored", "FD-OT", "(22) with the preference u replaced by the uniform 1/N",
           patch={f"{OTA}:ot_attention": lambda orig: lambda T, u, z, M, alpha, gamma, **kw:
                  orig(T, np.full(len(u), 1 / len(u)), z, M, alpha, gamma, **kw)}),
]

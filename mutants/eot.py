"""Mutants of the EOT claims (000, 001, 003): softmax as the entropic minimiser, its value and gradient,
SDPA, the policy gradient, the Fisher information and the temperature limits."""

from __future__ import annotations

import numpy as np
import sympy as sp

from . import Mutant


def kkt_tau_inverted():
    """EOT-KKT with tau <-> 1/tau: exp(s_k tau)/sum_l exp(s_l tau)."""
    from attnverify.derivations import eot as E

    return E.kkt(candidate=lambda idx: sp.exp(E.s[idx] * E.tau) / sp.Sum(sp.exp(E.s[E.l] * E.tau), (E.l, 1, E.n)))


def uniq_power():
    """EOT-UNIQ with the second variation tau v_j^2/p_j^2 (p_j squared)."""
    from attnverify.derivations import eot as E

    return E.uniqueness(candidate=lambda pj, vj: E.tau * vj**2 / pj**2)


def lse_sign():
    """EOT-LSE with the sign of the optimal value flipped: +tau log sum_j e^{s_j/tau}."""
    from attnverify.derivations import eot as E

    return E.log_sum_exp(candidate=lambda: E.tau * sp.log(E.partition_function()))


def sdpa_tau_is_d():
    """EOT-SDPA with tau = d instead of sqrt(d)."""
    from attnverify.checks import eot_torch

    return eot_torch.sdpa_equivalence(tau_fn=float)


def pg_tau_dropped():
    """EOT-PG without the factor 1/tau: dL/ds_k = p_k (g_k - E_p[g])."""
    from attnverify.derivations import eot_gradients as G

    return G.policy_gradient(candidate=lambda idx: G.softmax(idx) * (G.g[idx] - G.Ep(lambda i: G.g[i])))


def pg_uniform_baseline():
    """EOT-PG with E_p[g] replaced by the plain mean of g (wrong normaliser of the baseline)."""
    from attnverify.checks import eot_torch

    return eot_torch.policy_gradient_autograd(dS_fn=lambda p, g, tau: p * (g - g.mean(-1, keepdims=True)) / tau)


def fisher_sign():
    """EOT-FISHER with the sign of the rank-one term flipped: diag p + p p^T."""
    from attnverify.derivations import eot_gradients as G

    return G.fisher(candidate=lambda pp, a, bb: sp.KroneckerDelta(a, bb) * pp(a) + pp(a) * pp(bb))


def fisher_rank_one_dropped():
    """EOT-FISHER numerically with the rank-one term dropped: I = diag p."""
    from attnverify.checks import eot_torch

    return eot_torch.fisher_numeric(fisher_fn=np.diag)


def limits_one_hot():
    """EOT-LIMITS with the tau -> 0 limit e_argmax (mass 1) on a tie of m maxima, instead of 1/m."""
    from attnverify.derivations import eot_gradients as G

    return G.limits(zero_limit=lambda mm: sp.Integer(1))


def limits_one_hot_numeric():
    """EOT-LIMITS numerically with the tau -> 0 target e_argmax instead of uniform on the argmax set."""
    from attnverify.checks import eot_torch

    return eot_torch.limits_numeric(zero_target=lambda s: np.eye(len(s))[np.argmax(s)])


def _nan_like(x):
    """What 0/0 or inf/inf gives (an exp that overflows, a normaliser that underflows): NaN everywhere."""
    return np.full(np.shape(x), np.nan)


def _nan_reference(orig):
    """attnverify.checks.eot_torch.attention_reference whose output evaluates to NaN."""

    def attention_reference(Q, K, V, tau, mask=None, bias=None):
        out, p, x = orig(Q, K, V, tau, mask, bias)
        return _nan_like(out), p, x

    return attention_reference


def pg_nan():
    """EOT-PG with a backprop formula that evaluates to NaN."""
    from attnverify.checks import eot_torch

    return eot_torch.policy_gradient_autograd(dS_fn=lambda p, g, tau: _nan_like(p))


def fisher_nan():
    """EOT-FISHER with a Fisher matrix that evaluates to NaN."""
    from attnverify.checks import eot_torch

    return eot_torch.fisher_numeric(fisher_fn=lambda p: np.full((len(p), len(p)), np.nan))


MUTANTS = [
    Mutant("EOT-KKT/tau-inverted", "EOT", "softmax with tau <-> 1/tau: exp(s_k tau)/sum exp(s_l tau)",
           replace={"attnverify.derivations.eot:kkt": "attnverify.mutants.eot:kkt_tau_inverted"}),
    Mutant("EOT-KKT/sign", "EOT", "closed form softmax(-s/tau) (sign flipped) in the direct-solver comparison",
           patch={"attnverify.checks.eot_numeric:softmax": lambda orig: lambda x: orig(-np.asarray(x))}),
    Mutant("EOT-UNIQ/power", "EOT", "second variation tau v_j^2 / p_j^2 instead of tau v_j^2 / p_j",
           replace={"attnverify.derivations.eot:uniqueness": "attnverify.mutants.eot:uniq_power"}),
    Mutant("EOT-LSE/sign", "EOT", "optimal value +tau lse(s/tau) (sign flipped)",
           replace={"attnverify.derivations.eot:log_sum_exp": "attnverify.mutants.eot:lse_sign"}),
    Mutant("EOT-LSE/log-mean-exp", "EOT", "wrong normaliser: tau log((1/n) sum e^{s/tau}) for the optimal value",
           patch={"attnverify.checks.eot_numeric:logsumexp": lambda orig: lambda x: orig(x) - np.log(len(x))}),
    Mutant("EOT-SDPA/tau-is-d", "EOT", "temperature tau = d instead of sqrt(d)",
           replace={"attnverify.checks.eot_torch:sdpa_equivalence": "attnverify.mutants.eot:sdpa_tau_is_d"}),
    Mutant("EOT-SDPA/mask-ignored", "EOT", "the EOT reference ignores the mask (support = all keys)",
           patch={"attnverify.checks.eot_torch:attention_reference": lambda orig: lambda Q, K, V, tau, mask=None, bias=None:
                  orig(Q, K, V, tau, None, bias)}),
    Mutant("EOT-PG/tau-dropped", "EOT", "backprop formula without 1/tau: p_k (g_k - E_p g)",
           replace={"attnverify.derivations.eot_gradients:policy_gradient": "attnverify.mutants.eot:pg_tau_dropped"}),
    Mutant("EOT-PG/uniform-baseline", "EOT", "baseline mean(g) instead of E_p[g] in p (g - b)/tau",
           replace={"attnverify.checks.eot_torch:policy_gradient_autograd": "attnverify.mutants.eot:pg_uniform_baseline"}),
    Mutant("EOT-FISHER/sign", "EOT", "Fisher information diag p + p p^T (sign flipped)",
           replace={"attnverify.derivations.eot_gradients:fisher": "attnverify.mutants.eot:fisher_sign"}),
    Mutant("EOT-FISHER/rank-one-dropped", "EOT", "Fisher information diag p (rank-one term dropped)",
           replace={"attnverify.checks.eot_torch:fisher_numeric": "attnverify.mutants.eot:fisher_rank_one_dropped"}),
    Mutant("EOT-LIMITS/one-hot", "EOT", "tau -> 0 limit with mass 1 on each of m tied maxima (1 instead of 1/m)",
           replace={"attnverify.derivations.eot_gradients:limits": "attnverify.mutants.eot:limits_one_hot"}),
    Mutant("EOT-LIMITS/one-hot-numeric", "EOT", "tau -> 0 target e_argmax instead of uniform on the argmax set",
           replace={"attnverify.checks.eot_torch:limits_numeric": "attnverify.mutants.eot:limits_one_hot_numeric"}),
    Mutant("EOT-KKT/nan", "EOT", "closed form evaluates to NaN (0/0, as an overflowing exp or underflowing normaliser gives)",
           patch={"attnverify.checks.eot_numeric:softmax": lambda orig: _nan_like}),
    Mutant("EOT-SDPA/nan", "EOT", "reference attention evaluates to NaN",
           patch={"attnverify.checks.eot_torch:attention_reference": _nan_reference}),
    Mutant("EOT-PG/nan", "EOT", "backprop formula evaluates to NaN",
           replace={"attnverify.checks.eot_torch:policy_gradient_autograd": "attnverify.mutants.eot:pg_nan"}),
    Mutant("EOT-FISHER/nan", "EOT", "Fisher matrix evaluates to NaN",
           replace={"attnverify.checks.eot_torch:fisher_numeric": "attnverify.mutants.eot:fisher_nan"}),
]

"""Mutants of the Fenchel-dual claims of 004 (FD-3 ... FD-19): the closed forms of attnverify.dual,
the symbolic derivations' candidates, and the reparameterisations checked against real models."""

from __future__ import annotations

import dataclasses
import functools

import numpy as np
import sympy as sp
from scipy.special import logsumexp

from . import Mutant

D = "attnverify.dual"


# -- replacement refs (kind "ref"): the public derivation with one candidate made wrong --------------
def _inv(M):
    return M.inv() if isinstance(M, sp.MatrixBase) else M.I


def fd11_half_dropped():
    """(11) without the 1/2: log M = <mu, l> + l^T Sigma l, whose second directional derivative is 2 v^T Sigma v."""
    from attnverify.derivations import cumulant as C

    return C.cumulant_expansion(second=2 * C.variance_along())


def fd13_sign():
    """(13) with the sign of alpha Sigma flipped: alpha (I - alpha Sigma)^{-1} z."""
    from attnverify.derivations import cumulant as C

    return C.quadratic_cumulant_solution(candidate=lambda a, Sig, z, I: a * _inv(I - a * Sig) * z)


def _gaussian(**kw):
    from attnverify.derivations import gaussian as G

    return G.gaussian_case(**kw)


def fd5_alpha_inverted():
    """Sec 5 with alpha <-> 1/alpha: lambda* = (1/alpha)/(1/alpha + 1) (b - mu) = (b - mu)/(1 + alpha)."""
    return _gaussian(lam_candidate=lambda a, b, mu: 1 / (a + 1) * (b - mu))


def fd5_mean_swapped():
    """Sec 5 with the weights of mu and b swapped: mean alpha mu/(1+alpha) + b/(1+alpha)."""
    return _gaussian(mean_candidate=lambda a, b, mu: a * mu / (1 + a) + b / (1 + a))


def fd7_dual_alpha_inverted():
    """(7) with alpha <-> 1/alpha in the quadratic: <lambda, mu + z> - alpha ||lambda||^2 / 2 - log M(lambda)."""
    from attnverify.derivations import fenchel_dual as F

    def wrong(vec=F.lam):
        return (sp.Sum(vec[F.a] * (F.mu[F.a] + F.z[F.a]), (F.a, 1, F.d)) - F.alpha * F.sqnorm(vec[F.a]) / 2
                - sp.log(F.mgf(vec)))

    return F.dual_problem(candidate=wrong)


def fd14_kappa3_sign():
    """FD-14's third-order coefficient of lambda* with the kappa_3 sign flipped: sigma^4 z + kappa_3 z^2/2."""
    from attnverify.derivations import cumulant as C

    return C.first_order_lambda(a3_candidate=lambda s2, k3, z: s2**2 * z + k3 * z**2 / 2)


def fdmem_nu_factor():
    """MEM's multiplier read as alpha = nu instead of alpha = 2 nu (factor 2 dropped)."""
    from attnverify.derivations import fenchel_dual as F

    return F.mem_kkt(alpha_of_nu=lambda v: v)


def fdb_alpha_inverted():
    """Appx B with alpha <-> 1/alpha: alpha = eta sigma^2 instead of 1/(eta sigma^2)."""
    from attnverify.derivations import fenchel_dual as F

    return F.ml_and_map(alpha_of=lambda eta, sigma: eta * sigma**2)


# -- patched closed forms and helpers (kind "patch") ------------------------------------------------
def _second_moment(T, u):
    """Sigma replaced by the uncentred second moment sum_i u_i t_i t_i^T."""
    return (T * u[:, None]).T @ T


def _attention_16_linear_exp(T, u, z, alpha):
    """(16) with exp replaced by its first-order Taylor polynomial: weights u_i (1 + alpha <t_i, z>)."""
    w = u * (1 + alpha * (T @ np.asarray(z, float)))
    return T.T @ (w / w.sum())


def _h_hat_unnormalised(T, u, lam):
    """(10) without the normaliser M(lambda): sum_i t_i u_i e^{<t_i, lambda>}."""
    return T.T @ (u * np.exp(T @ lam))


def _log_mgf_without_u(T, u, lam):
    """log M of (8) with the preference weights dropped: log sum_i e^{<t_i, lambda>}."""
    return float(logsumexp(T @ lam))


def _primal_objective_kl_swapped(T, u, z, alpha, p):
    """(3) evaluated with the KL arguments swapped: alpha/2 ||b - T^T p||^2 + KL(u || p)."""
    b = T.T @ u + z
    r = b - T.T @ p
    s = u > 0
    if np.any(s & (p <= 0)):
        return float("inf")
    return float(alpha / 2 * r @ r + np.sum(u[s] * (np.log(u[s]) - np.log(p[s]))))


def _preference_mask_ignored(a, b, h):
    """(17) without the mask: u_j(t_i) ∝ e^{b_{j-i}} for every word, masked ones included."""
    w = np.exp(a.bias[h])
    return w / w.sum(axis=1, keepdims=True)


def _head_parts_no_value_scale(orig):
    """Sec 8's V' = sqrt(d') V with the factor sqrt(d') dropped."""

    def head_parts(x, lc, h, dh, query_bias=True, scale_dim=None):
        T, Z, Vp, bV = orig(x, lc, h, dh, query_bias, scale_dim)
        return T, Z, Vp / np.sqrt(dh if scale_dim is None else scale_dim), bV

    return head_parts


def _solver_nan(orig):
    """A dual solver that returns NaN and reports convergence."""

    def solve_dual_instance(*args, **kwargs):
        sol = orig(*args, **kwargs)
        return dataclasses.replace(sol, lam=np.full(np.shape(sol.lam), np.nan), converged=True)

    return solve_dual_instance


MUTANTS = [
    Mutant("FD-11/half-dropped", "FD", "(11) without the 1/2 in front of l^T Sigma l",
           replace={"attnverify.derivations.cumulant:cumulant_expansion": "attnverify.mutants.fd:fd11_half_dropped"}),
    Mutant("FD-11/uncentred-sigma", "FD", "Sigma replaced by the uncentred second moment E_u[t t^T] (dual.covariance)",
           patch={f"{D}:covariance": lambda orig: _second_moment}),
    Mutant("FD-13/sign", "FD", "(13) with the sign flipped: alpha (I - alpha Sigma)^{-1} z",
           replace={"attnverify.derivations.cumulant:quadratic_cumulant_solution": "attnverify.mutants.fd:fd13_sign"}),
    Mutant("FD-13/sigma-is-identity", "FD", "Sigma replaced by I in (13): alpha/(1+alpha) z (dual.lambda_quadratic_13)",
           patch={f"{D}:lambda_quadratic_13": lambda orig: lambda T, u, z, alpha: alpha / (1 + alpha) * np.asarray(z, float)}),
    Mutant("FD-13/alpha-inverted", "FD", "alpha <-> 1/alpha in (13): (1/alpha)(I + Sigma/alpha)^{-1} z",
           patch={f"{D}:lambda_quadratic_13": lambda orig: lambda T, u, z, alpha: orig(T, u, z, 1 / alpha)}),
    Mutant("FD-14/alpha-inverted", "FD", "alpha <-> 1/alpha in (14): lambda* ≈ z/alpha (dual.lambda_linear_14)",
           patch={f"{D}:lambda_linear_14": lambda orig: lambda z, alpha: orig(z, 1 / alpha)}),
    Mutant("FD-14/kappa3-sign", "FD", "third-order coefficient of lambda* with the kappa_3 sign flipped: "
           "sigma^4 z + kappa_3 z^2/2",
           replace={"attnverify.derivations.cumulant:first_order_lambda": "attnverify.mutants.fd:fd14_kappa3_sign"}),
    Mutant("FD-16/missing-exp", "FD", "(16) with exp replaced by its linearisation 1 + x: weights u_i (1 + alpha <t_i, z>)",
           patch={f"{D}:attention_16": lambda orig: _attention_16_linear_exp}),
    Mutant("FD-16/u-ignored", "FD", "(16) with the preference u replaced by the uniform 1/n",
           patch={f"{D}:attention_16": lambda orig: lambda T, u, z, alpha: orig(T, np.full(len(u), 1 / len(u)), z, alpha)}),
    Mutant("FD-16/alpha-dropped", "FD", "(16) with the factor alpha dropped from the exponent: e^{<t_i, z>}",
           patch={f"{D}:attention_16": lambda orig: lambda T, u, z, alpha: orig(T, u, z, 1.0)}),
    Mutant("FD-5/alpha-inverted", "FD", "Sec 5 with alpha <-> 1/alpha: lambda* = (b - mu)/(1 + alpha)",
           replace={"attnverify.derivations.gaussian:gaussian_case": "attnverify.mutants.fd:fd5_alpha_inverted"}),
    Mutant("FD-5/mean-swapped", "FD", "Sec 5 mean with the weights of mu and b swapped: alpha mu/(1+alpha) + b/(1+alpha)",
           replace={"attnverify.derivations.gaussian:gaussian_case": "attnverify.mutants.fd:fd5_mean_swapped"}),
    Mutant("FD-7/dual-alpha-inverted", "FD", "(7) with alpha <-> 1/alpha in the quadratic term: - alpha ||lambda||^2/2",
           replace={"attnverify.derivations.fenchel_dual:dual_problem": "attnverify.mutants.fd:fd7_dual_alpha_inverted"}),
    Mutant("FD-7/normaliser-without-u", "FD", "M(lambda) of (8) without the weights u_i: log sum_i e^{<t_i, lambda>} "
           "(dual.log_mgf)", patch={f"{D}:log_mgf": lambda orig: _log_mgf_without_u}),
    Mutant("FD-7/tilt-sign", "FD", "(9) with the sign of the tilt flipped: p_i ∝ u_i e^{-<t_i, lambda*>} (dual.tilted)",
           patch={f"{D}:tilted": lambda orig: lambda T, u, lam: orig(T, u, -np.asarray(lam, float))}),
    Mutant("FD-10/missing-normaliser", "FD", "(10) without the normaliser: sum_i t_i u_i e^{<t_i, lambda*>} (dual.h_hat)",
           patch={f"{D}:h_hat": lambda orig: _h_hat_unnormalised}),
    Mutant("FD-3/kl-swapped", "FD", "objective (3) evaluated with the KL arguments swapped: KL(u || p) "
           "(attnverify.primal.primal_objective, which the solvers and checks.instances use)",
           patch={"attnverify.primal:primal_objective": lambda orig: _primal_objective_kl_swapped}),
    Mutant("FD-MEM/nu-factor", "FD", "MEM multiplier read as alpha = nu (factor 2 of alpha = 2 nu dropped)",
           replace={"attnverify.derivations.fenchel_dual:mem_kkt": "attnverify.mutants.fd:fdmem_nu_factor"}),
    Mutant("FD-B/alpha-inverted", "FD", "Appx B with alpha <-> 1/alpha: alpha = eta sigma^2",
           replace={"attnverify.derivations.fenchel_dual:ml_and_map": "attnverify.mutants.fd:fdb_alpha_inverted"}),
    Mutant("FD-17/relative-position-off-by-one", "FD", "T5 bias b_{j-i} read off by one: bucket(i - j + 1)",
           patch={"attnverify.checks.t5_identity:relative_bias": lambda orig: functools.partial(orig, shift=1)}),
    Mutant("FD-17/relative-position-transposed", "FD", "T5 bias with the indices swapped, b_{i-j}: bucket(j - i)",
           patch={"attnverify.checks.t5_identity:relative_bias": lambda orig: functools.partial(orig, sign=-1)}),
    Mutant("FD-17/mask-ignored", "FD", "(17) without the mask: u_i ∝ e^{b_{j-i}} on masked words too",
           patch={"attnverify.checks.t5_identity:preference": lambda orig: _preference_mask_ignored}),
    Mutant("FD-19/query-bias-dropped", "FD", "Sec 8's z = K^T (Q x_k + b_Q) without b_Q",
           patch={"attnverify.checks.real_model:head_parts": lambda orig: lambda x, lc, h, dh, query_bias=True, scale_dim=None:
                  orig(x, lc, h, dh, False, scale_dim)}),
    Mutant("FD-19/value-scale-dropped", "FD", "Sec 8's V' = sqrt(d') V with the factor sqrt(d') dropped",
           patch={"attnverify.checks.real_model:head_parts": _head_parts_no_value_scale}),
    Mutant("FD-16/nan", "FD", "(16) evaluates to NaN (0/0 from an underflowing normaliser)",
           patch={f"{D}:attention_16": lambda orig: lambda T, u, z, alpha: np.full(np.shape(T)[1], np.nan)}),
    Mutant("FD-5/solver-nan", "FD", "the dual solver returns NaN and reports convergence (quadrature check)",
           patch={"attnverify.checks.gaussian_numeric:solve_dual_instance": _solver_nan}),
]

"""Mutants of EOT-OMEGA: other regularisers, other attentions (sparsemax, alpha-entmax)."""

from __future__ import annotations

import numpy as np
import sympy as sp

from . import Mutant


def threshold_off_by_one():
    """sparsemax threshold with the support size off by one: (sum_{i<=K} s_i - 1)/(K + 1)."""
    from attnverify.derivations import regularised as R

    return R.omega_template(sparse_thr=lambda KK: (sp.Sum(R.s[R.i], (R.i, 1, KK)) - 1) / (KK + 1))


def threshold_sign():
    """sparsemax threshold with the sign of the 1 flipped: (sum_{i<=K} s_(i) + 1)/K."""
    from attnverify.checks import regularised

    return regularised.omega_numeric(sparse_thr=lambda cumsum_K, K: (cumsum_K + 1) / K)


def _entmax15_exponent_dropped(s):
    """1.5-entmax with the exponent 1/(alpha - 1) = 2 dropped: p = [s/2 - tau*]_+."""
    a = np.sort(s / 2)[::-1]
    k = np.arange(1, len(s) + 1)
    mean, msq = np.cumsum(a) / k, np.cumsum(a**2) / k
    tau = mean - np.sqrt(np.clip((1 - k * (msq - mean**2)) / k, 0, None))
    K = int(k[tau <= a].max())
    return np.maximum(s / 2 - tau[K - 1], 0.0)


def threshold_nan():
    """sparsemax threshold evaluating to NaN."""
    from attnverify.checks import regularised

    return regularised.omega_numeric(sparse_thr=lambda cumsum_K, K: np.nan)


MUTANTS = [
    Mutant("EOT-OMEGA/threshold-off-by-one", "EOT-OMEGA", "sparsemax threshold (sum_{i<=K} s_i - 1)/(K+1)",
           replace={"attnverify.derivations.regularised:omega_template": "attnverify.mutants.omega:threshold_off_by_one"}),
    Mutant("EOT-OMEGA/threshold-sign", "EOT-OMEGA", "sparsemax threshold (sum_{i<=K} s_(i) + 1)/K (sign flipped)",
           replace={"attnverify.checks.regularised:omega_numeric": "attnverify.mutants.omega:threshold_sign"}),
    Mutant("EOT-OMEGA/entmax-exponent-dropped", "EOT-OMEGA", "1.5-entmax [s/2 - tau*]_+ without the square",
           patch={"attnverify.checks.regularised:entmax15": lambda orig: _entmax15_exponent_dropped}),
    Mutant("EOT-OMEGA/nan", "EOT-OMEGA", "sparsemax threshold evaluates to NaN",
           replace={"attnverify.checks.regularised:omega_numeric": "attnverify.mutants.omega:threshold_nan"}),
]

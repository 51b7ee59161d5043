"""Validation of one instance of (3)/(7); every failure is a ValueError naming the field."""

from __future__ import annotations

import math

import numpy as np

SIMPLEX_TOL = 1e-9  # sum(u) may differ from 1 by round-off of a decimal file, not more


class InputError(ValueError):
    """Bad input: the message names the field and the problem, in one line."""


def _array(name, value, ndim):
    try:
        a = np.asarray(value, dtype=float)
    except (TypeError, ValueError):
        raise InputError(f"{name}: must be {'a list of numbers' if ndim == 1 else 'a list of equal-length lists of numbers'}") from None
    if a.ndim != ndim:
        raise InputError(f"{name}: expected a {ndim}-d array, got shape {a.shape}")
    if not np.all(np.isfinite(a)):
        raise InputError(f"{name}: contains NaN or infinity")
    return a


def instance(templates, z, alpha, u=None):
    """Check and convert (T, u, z, alpha); u defaults to uniform. Returns float64 arrays."""
    T = _array("templates", templates, 2)
    n, d = T.shape
    if n == 0:
        raise InputError("templates: empty template set")
    if d == 0:
        raise InputError("templates: templates have dimension d = 0")
    zz = _array("z", z, 1)
    if zz.shape != (d,):
        raise InputError(f"z: has length {zz.shape[0]}, templates have dimension {d}")
    if isinstance(alpha, bool) or not isinstance(alpha, (int, float)):
        raise InputError(f"alpha: must be a number, got {type(alpha).__name__}")
    if not math.isfinite(alpha) or alpha <= 0:
        raise InputError(f"alpha: must be a finite number > 0, got {alpha}")
    if u is None:
        uu = np.full(n, 1.0 / n)
    else:
        uu = _array("u", u, 1)
        if uu.shape != (n,):
            raise InputError(f"u: has length {uu.shape[0]}, there are {n} templates")
        if np.any(uu < 0):
            raise InputError(f"u: entry {int(np.argmin(uu))} is negative ({uu.min()}); u must lie on the simplex")
        if abs(uu.sum() - 1.0) > SIMPLEX_TOL:
            raise InputError(f"u: sums to {uu.sum():.12g}, not 1; u must lie on the simplex")
        uu = uu / uu.sum()
    return T, uu, zz, float(alpha)


def batch(T, u, Z, alpha):
    """Check the arguments of the batched solver: T (n, d), u (n,) on the simplex, Z (m, d), alpha > 0.

    Raises InputError (a ValueError) naming the argument; returns float64 arrays with Z 2-d."""
    T = _array("T", T, 2)
    n, d = T.shape
    if n == 0:
        raise InputError("T: empty template set")
    if d == 0:
        raise InputError("T: templates have dimension d = 0")
    uu = _array("u", u, 1)
    if uu.shape != (n,):
        raise InputError(f"u: has length {uu.shape[0]}, T has {n} templates")
    if np.any(uu < 0):
        raise InputError(f"u: entry {int(np.argmin(uu))} is negative ({uu.min()}); u must lie on the simplex")
    if abs(uu.sum() - 1.0) > SIMPLEX_TOL:
        raise InputError(f"u: sums to {uu.sum():.12g}, not 1; u must lie on the simplex (all-masked u sums to 0)")
    ZZ = np.asarray(Z, dtype=float) if not isinstance(Z, np.ndarray) else Z.astype(float, copy=False)
    if ZZ.ndim == 1:
        ZZ = ZZ[None]
    ZZ = _array("Z", ZZ, 2)
    if ZZ.shape[1] != d:
        raise InputError(f"Z: rows have length {ZZ.shape[1]}, T has dimension {d}")
    if isinstance(alpha, bool) or not isinstance(alpha, (int, float, np.floating, np.integer)):
        raise InputError(f"alpha: must be a number, got {type(alpha).__name__}")
    if not math.isfinite(alpha) or alpha <= 0:
        raise InputError(f"alpha: must be a finite number > 0, got {alpha}")
    return T, uu / uu.sum(), ZZ, float(alpha)

r"""Validation of user data for (3)/(7); every failure is an InputError (a ValueError) whose one-line
message starts with the name of the offending field.

Besides shapes, NaN/inf and the simplex, the magnitudes are bounded so that float64 can represent
what the solvers form (a correct answer or a one-line error, never an overflow):

* entries of templates and evidence: :math:`|x| \le` MAX_ENTRY :math:`= 10^{100}`, so squared norms
  (:math:`\le 10^{200}` a term) cannot overflow;
* :math:`\alpha \ge` the smallest normal float64, so :math:`1/\alpha` is finite;
* the logit scale :math:`\alpha \max_i\|t_i\| (\|z\| + 2\max_i\|t_i\|)`, a bound on every
  :math:`|\langle t_i, \lambda^*\rangle|` (:math:`\lambda^* = \alpha (b - \hat h)`,
  :math:`\|b\| \le \max_i\|t_i\| + \|z\|`, :math:`\|\hat h\| \le \max_i\|t_i\|`), at most
  MAX_LOGIT :math:`= 1/(64\epsilon) \approx 7.0 \cdot 10^{13}`: beyond it the float64 floor of
  :math:`\nabla D` (:func:`attnverify.dual.gradient_floor`, :math:`64\epsilon(1 + |\text{logit}|)\max_i\|t_i\|`)
  exceeds the problem's own scale :math:`\max_i\|t_i\|`, so no solver could resolve :math:`\lambda^*`; the
  same bound keeps :math:`I + \alpha\Sigma` of (13) (condition :math:`\le 1 + \alpha\max_i\|t_i\|^2`) far
  from singular in float64;
* for the OT attention (ot_scale), which works in the log domain, only that its logits stay finite
  (:math:`\le` MAX_OT_LOGIT :math:`= 10^{300}`) and that :math:`1/\gamma` is finite.

Booleans and strings inside arrays are refused (np.asarray would silently read True as 1.0).
"""

from __future__ import annotations

import math

import numpy as np

SIMPLEX_TOL = 1e-9  # sum(u) may differ from 1 by round-off of a decimal file, not more
EPS = np.finfo(float).eps
MAX_ENTRY = 1e100
MIN_ALPHA = float(np.finfo(float).tiny)
MAX_LOGIT = 1 / (64 * EPS)


class InputError(ValueError):
    """Bad input: the message names the field and the problem, in one line."""


def _has_non_number(value, depth=0) -> bool:
    """True if a nested list/tuple holds a bool or a string (np.asarray would turn True into 1.0),
    or nests deeper than any array here (3 levels)."""
    if isinstance(value, (list, tuple)):
        return depth > 3 or any(_has_non_number(v, depth + 1) for v in value)
    return isinstance(value, (bool, str, np.bool_))


def array(name, value, ndim, allow_posinf=False):
    """``value`` as a float64 array of ``ndim`` dimensions (an int, or a tuple of accepted ones), every
    entry finite (``allow_posinf``: +inf allowed, e.g. a forbidden transport in a cost matrix)."""
    dims = (ndim,) if isinstance(ndim, int) else tuple(ndim)
    what = "a list of numbers" if dims == (1,) else "a list of equal-length lists of numbers"
    if value is None or isinstance(value, (str, bytes, dict, bool)) or _has_non_number(value):
        raise InputError(f"{name}: must be {what}")
    try:
        a = np.asarray(value, dtype=float)
    except (TypeError, ValueError, RecursionError):
        raise InputError(f"{name}: must be {what}") from None
    except OverflowError:  # an integer beyond float64
        raise InputError(f"{name}: contains a number beyond the float64 range") from None
    if a.ndim not in dims:
        raise InputError(f"{name}: expected a {' or '.join(f'{k}-d' for k in dims)} array, got shape {a.shape}")
    if not (np.isfinite(a).all() if not allow_posinf else not (np.isnan(a) | np.isneginf(a)).any()):
        raise InputError(f"{name}: contains NaN or {'-inf' if allow_posinf else 'infinity'}")
    return a


def _bounded(name, a):
    big = float(np.abs(a).max()) if a.size else 0.0
    if big > MAX_ENTRY:
        raise InputError(f"{name}: has an entry of magnitude {big:.3g} > {MAX_ENTRY:g}: squared norms would "
                         "overflow float64 (rescale the input)")
    return a


def templates(T, name="T"):
    r"""(n, d) float64 templates: :math:`n \ge 1`, :math:`d \ge 1`, finite, bounded."""
    if isinstance(T, (list, tuple)) and len(T) == 0 or isinstance(T, np.ndarray) and T.size == 0 and T.ndim < 2:
        raise InputError(f"{name}: empty template set (need at least one template)")
    a = array(name, T, 2)
    n, d = a.shape
    if n == 0:
        raise InputError(f"{name}: empty template set (need at least one template)")
    if d == 0:
        raise InputError(f"{name}: templates have dimension d = 0")
    return _bounded(name, a)


def vector(name, v, d, of="templates have dimension"):
    """A finite, bounded vector of length d."""
    a = array(name, v, 1)
    if a.shape != (d,):
        raise InputError(f"{name}: has length {a.shape[0]}, {of} {d}")
    return _bounded(name, a)


def simplex_tol(dtype, n: int) -> float:
    r"""How far from 1 the sum of a distribution over n entries stored as ``dtype`` may be.

    float64 (or anything not a narrower float, e.g. a list of decimals from a file): SIMPLEX_TOL.
    A narrower float type (float32, float16) cannot hold a distribution that sums to 1 within
    SIMPLEX_TOL: rounding each stored :math:`u_i` moves the sum by up to :math:`\epsilon/2`, and normalising
    in that type (``u / u.sum()``, numpy's pairwise summation: naive 8-way unrolled blocks of at most 128
    entries, then a binary tree) errs by at most about :math:`(16 + \log_2 n)\epsilon`. So the tolerance is
    :math:`(17 + \log_2 n)\epsilon` of that type: float32 and n = 3 gives :math:`2.2 \cdot 10^{-6}`. The accepted u is then
    renormalised in float64, so the solvers see an exact distribution either way."""
    dtype = np.dtype(dtype) if dtype is not None else np.dtype(float)
    if dtype.kind != "f" or dtype.itemsize >= 8:
        return SIMPLEX_TOL
    return max(SIMPLEX_TOL, float(np.finfo(dtype).eps) * (17 + math.log2(max(n, 1))))


def _dtype(value):
    """The float type the caller stored value in (None for lists of Python numbers, strings, ...)."""
    if isinstance(value, (np.ndarray, np.generic)):
        return value.dtype
    if isinstance(value, (list, tuple)) and value and all(isinstance(v, np.floating) for v in value):
        return np.result_type(*value)
    return None


def simplex(name, u, n, of="there are"):
    """A distribution over n templates (zeros allowed, not all), summing to 1 within
    :func:`simplex_tol` of its float type (SIMPLEX_TOL for float64)."""
    tol = simplex_tol(_dtype(u), n)
    a = array(name, u, 1)
    if a.shape != (n,):
        raise InputError(f"{name}: has length {a.shape[0]}, {of} {n} templates")
    if np.any(a < 0):
        raise InputError(f"{name}: entry {int(np.argmin(a))} is negative ({a.min()}); {name} must lie on the simplex")
    if not np.any(a > 0):
        raise InputError(f"{name}: every entry is 0 (all templates masked): {name} must put mass on some template")
    if abs(a.sum() - 1.0) > tol:
        raise InputError(f"{name}: sums to {a.sum():.12g}, not 1 (within {tol:.2g}); {name} must lie on the simplex")
    return a


def positive(name, x, lowest=0.0, why="1/{name} would overflow"):
    r"""A finite number :math:`> 0` (:math:`\ge` lowest if given), as float."""
    if isinstance(x, (bool, np.bool_)) or not isinstance(x, (int, float, np.integer, np.floating)):
        raise InputError(f"{name}: must be a number, got {type(x).__name__}")
    try:
        finite = math.isfinite(x)
    except OverflowError:  # an integer beyond float64
        finite = False
    if not finite or x <= 0:
        raise InputError(f"{name}: must be a finite number > 0, got {x:.3g}" if finite or isinstance(x, float)
                         else f"{name}: must be a finite number > 0, got an integer beyond the float64 range")
    if x < lowest:
        raise InputError(f"{name}: {x:.3g} is below {lowest:.3g} ({why.format(name=name)})")
    return float(x)


def positive_scale(alpha, name="alpha"):
    r"""A positive scale (:math:`\alpha`, :math:`\gamma`, a temperature :math:`\tau`, a radius): a finite number :math:`\ge` the smallest
    normal float64, so that its reciprocal is finite."""
    return positive(name, alpha, MIN_ALPHA, "the smallest normal float64: 1/{name} would overflow")


def scale(T, u, zmax, alpha, names=("T", "z", "alpha")):
    """The logit-scale bound of the module docstring; names = the (templates, evidence, alpha) fields."""
    on = u > 0
    tmax = float(np.linalg.norm(T[on], axis=1).max())
    L = alpha * tmax * (zmax + 2 * tmax)
    if L > MAX_LOGIT:
        # name the input that contributes most (in orders of magnitude)
        culprit = max(zip((tmax, zmax, alpha), names), key=lambda t: math.log10(max(t[0], 1.0)))[1]
        raise InputError(f"{culprit}: too large: alpha max||t_i|| (||z|| + 2 max||t_i||) = {L:.3g} bounds the logits "
                         f"<t_i, lambda*>; above 1/(64 eps) = {MAX_LOGIT:.3g} float64 cannot resolve the dual (7) "
                         "(rescale templates, z or alpha)")


def instance(templates_, z, alpha, u=None):
    r"""Check and convert :math:`(T, u, z, \alpha)` of ``attnverify solve``; u defaults to uniform. Returns float64 arrays."""
    T = templates(templates_, "templates")
    n, d = T.shape
    zz = vector("z", z, d)
    a = positive_scale(alpha)
    if u is None:
        uu = np.full(n, 1.0 / n)
    else:
        uu = simplex("u", u, n)
        uu = uu / uu.sum()
    scale(T, uu, float(np.linalg.norm(zz)), a, ("templates", "z", "alpha"))
    return T, uu, zz, a


def batch(T, u, Z, alpha):
    r"""Check the arguments of the batched solver: T (n, d), u (n,) on the simplex, Z (m, d), :math:`\alpha > 0`.

    Raises InputError (a ValueError) naming the argument; returns float64 arrays with Z 2-d."""
    T = templates(T, "T")
    n, d = T.shape
    uu = simplex("u", u, n, of="T has")
    try:  # one query (d,) or a batch (m, d)
        nd = 1 if np.ndim(Z) == 1 else 2
    except (TypeError, ValueError):
        nd = 2
    ZZ = array("Z", Z, nd)
    if ZZ.ndim == 1:
        ZZ = ZZ[None]
    if ZZ.shape[1] != d:
        raise InputError(f"Z: rows have length {ZZ.shape[1]}, T has dimension {d}")
    _bounded("Z", ZZ)
    a = positive_scale(alpha)
    uu = uu / uu.sum()
    if len(ZZ):
        scale(T, uu, float(np.linalg.norm(ZZ, axis=1).max()), a, ("T", "Z", "alpha"))
    return T, uu, ZZ, a


_ABSENT = object()


def dual_args(T, u, z=_ABSENT, alpha=_ABSENT, lam=_ABSENT, p=_ABSENT):
    """Arguments of the functions of attnverify.dual (and the primal solvers), checked but not changed
    (u is not renormalised: results stay bit-identical).  Returns [T, u] + the given ones, in order."""
    T = templates(T, "T")
    n, d = T.shape
    out = [T, simplex("u", u, n, of="T has")]
    if z is not _ABSENT:
        out.append(vector("z", z, d))
    if alpha is not _ABSENT:
        out.append(positive_scale(alpha))
    if z is not _ABSENT and alpha is not _ABSENT:
        scale(T, out[1], float(np.linalg.norm(out[2])), out[3])
    if lam is not _ABSENT:
        out.append(vector("lam", lam, d))
    if p is not _ABSENT:
        a = array("p", p, 1)
        if a.shape != (n,):
            raise InputError(f"p: has length {a.shape[0]}, T has {n} templates")
        if np.any(a < 0) or abs(a.sum() - 1.0) > SIMPLEX_TOL:
            raise InputError(f"p: must lie on the simplex (min {a.min():.3g}, sum {a.sum():.12g})")
        out.append(a)
    return out


def linear_args(z, alpha):
    r""":math:`(z, \alpha)` of (14): z a finite, bounded, non-empty vector; :math:`\alpha z` representable."""
    zz = _bounded("z", array("z", z, 1))
    if zz.size == 0:
        raise InputError("z: is empty (dimension d = 0)")
    a = positive_scale(alpha)
    if a * float(np.abs(zz).max()) > MAX_ENTRY:  # lambda = alpha z must itself be a valid input (lam)
        raise InputError(f"alpha: alpha z has an entry of magnitude {a * float(np.abs(zz).max()):.3g} > {MAX_ENTRY:g} "
                         "(rescale z or alpha)")
    return zz, a


def scores(s, name="s"):
    """Scores of the entropic problem: a non-empty, finite, bounded vector."""
    a = _bounded(name, array(name, s, 1))
    if a.size == 0:
        raise InputError(f"{name}: is empty (no keys to attend to)")
    return a


def cost_matrix(M, N, u=None):
    """An (N, N) cost matrix of the OT attention: entries real or +inf (transport forbidden), no NaN or
    -inf; with a preference u, no column that u puts mass on may be all +inf (nothing could reach it)."""
    M = array("M", M, 2, allow_posinf=True)
    if M.shape != (N, N):
        raise InputError(f"M: has shape {M.shape}, expected ({N}, {N}) (one row and column per template)")
    if u is not None:
        dead = (u > 0) & ~np.any(np.isfinite(M), axis=0)
        if np.any(dead):
            raise InputError(f"M: column {int(np.argmax(dead))} is all +inf but u puts mass there; nothing can be "
                             "transported")
    return M


MAX_OT_LOGIT = 1e300  # the OT module works in the log domain: finite logits of any size are shifted, never exponentiated


def ot_scale(T, Z, M, alpha, gamma):
    r"""OT attention (22) and its exact dual (36): entries of T and z bounded, :math:`1/\alpha` and
    :math:`1/\gamma` finite, and the logits :math:`(t^\top\lambda - M_{ij})/\gamma` finite in float64 for every
    :math:`\lambda` up to the size of :math:`\lambda^*` (:math:`|t^\top\lambda^*| \le
    \alpha\max_i\|t_i\|(\|z\| + 2\max_i\|t_i\|)`, as for (7)): no inf - inf, no NaN."""
    _bounded("T", T)
    _bounded("z", Z)
    positive_scale(alpha)
    positive("gamma", gamma, MIN_ALPHA)
    tmax = float(np.linalg.norm(T, axis=1).max())
    zmax = float(np.linalg.norm(Z.reshape(-1, T.shape[1]), axis=1).max()) if Z.size else 0.0
    fin = M[np.isfinite(M)]
    mmax = float(np.abs(fin).max()) if fin.size else 0.0
    with np.errstate(over="ignore"):
        L = (alpha * tmax * (zmax + 2 * tmax) + mmax) / gamma
    if not L <= MAX_OT_LOGIT:
        sizes = {"alpha": alpha, "gamma": 1 / gamma, "T": tmax, "z": zmax, "M": mmax}
        culprit = max(sizes, key=lambda k: math.log10(max(sizes[k], 1.0)))
        raise InputError(f"{culprit}: too {'small' if culprit == 'gamma' else 'large'}: (alpha max||t_i|| (||z|| + 2 max||t_i||) + max|M|)/gamma = {L:.3g} "
                         f"bounds the logits of (22)/(36); above {MAX_OT_LOGIT:g} they overflow float64 "
                         "(rescale T, z, M, alpha or gamma)")

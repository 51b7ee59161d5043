r"""attnverify: a symbolic and numeric verifier for the claims that explain attention as the
solution of an optimisation problem, and an exact solver for that problem.

The public Python API is three functions:

* :func:`solve` solves one instance of the estimation problem (3) through its Fenchel dual (7);
* :func:`solve_batch` solves many instances that share their templates (one attention head);
* :func:`verify` runs registered claims and returns their results.

Problem (3), over distributions p on the templates :math:`t_1, \dots, t_n` (the rows of T), with a
prior u on the simplex, evidence z and :math:`\alpha > 0`, and its dual (7):

.. math::
    \min_{p \in \Delta_n} \frac{\alpha}{2}\|b - T^\top p\|^2 + \mathrm{KL}(p\,\|\,u),
    \qquad
    \max_{\lambda} \langle\lambda, b\rangle - \frac{\|\lambda\|^2}{2\alpha}
        - \log\sum_i u_i e^{\langle t_i,\lambda\rangle},
    \qquad b = \mu + z,\ \mu = T^\top u.

Reference: 004_830fd89135933577.txt (the Fenchel-dual paper), Theorem 1, (3) and (7)-(16).

Examples
--------
>>> import attnverify
>>> r = attnverify.solve([[1, 0], [0, 1], [1, 1]], [0.3, -0.2], alpha=0.5)
>>> r.converged
True
>>> r.lambda_star.round(6)
array([ 0.131278, -0.083311])
"""

from __future__ import annotations

import sys as _sys
import types as _types
from dataclasses import dataclass
from importlib import metadata as _metadata

import numpy as np

try:
    __version__ = _metadata.version("attnverify")
except _metadata.PackageNotFoundError:  # run from a source tree that was never installed
    __version__ = "0+unknown"

# attnverify.checks, .derivations and .mutants: in a source tree they stand beside this folder (the
# project's layout: checks/, derivations/, mutants/ at the top); installed, setuptools' package-dir
# puts them inside it. Adding the tree's root to this package's path makes `import attnverify.checks`
# find the tree's own folder, also in a copy of the tree run with PYTHONPATH (the regress tests).
SUBPACKAGES = ("checks", "derivations", "mutants")
_TREE = __import__("pathlib").Path(__file__).resolve().parent.parent
if (_TREE / "pyproject.toml").is_file() and any((_TREE / s / "__init__.py").is_file() for s in SUBPACKAGES):
    __path__.append(str(_TREE))  # noqa: F821 (a package's __path__)

__all__ = ["Solution", "solve", "solve_batch", "verify", "__version__"]


@dataclass(frozen=True, eq=False)  # arrays: == would be ambiguous
class Solution:
    r"""The solution of (3)/(7) and the paper's closed forms beside it.

    From :func:`solve` every array field is one instance's (shapes below); from
    :func:`solve_batch` every field has a leading axis of length m, one row per query (the
    scalars become arrays of shape (m,)).

    Attributes
    ----------
    lambda_star : ndarray, shape (d,)
        :math:`\lambda^*`, the maximiser of the dual (7).
    h_hat : ndarray, shape (d,)
        :math:`\hat h = T^\top\tilde p = b - \lambda^*/\alpha`, the attention output (10).
    p_tilde : ndarray, shape (n,)
        :math:`\tilde p_i = u_i e^{\langle t_i,\lambda^*\rangle}/M(\lambda^*)`, the minimiser of
        (3) (9); exactly 0 where :math:`u_i = 0`.
    lambda_linear : ndarray, shape (d,)
        The closed form (14), :math:`\lambda^* \approx \alpha z`.
    lambda_quadratic : ndarray, shape (d,)
        The closed form (13), :math:`\lambda^* \approx \alpha (I + \alpha\Sigma)^{-1} z`,
        :math:`\Sigma = \mathrm{Cov}_u(t)`.
    h_softmax : ndarray, shape (d,)
        The closed form (16), softmax attention
        :math:`\sum_i t_i\, u_i e^{\alpha\langle t_i,z\rangle} / \sum_j u_j e^{\alpha\langle t_j,z\rangle}`.
    primal, dual, gap : float
        The values of (3) at :math:`\tilde p` and of (7) at :math:`\lambda^*`, and primal - dual.
    grad_norm : float
        :math:`\|\nabla D(\lambda^*)\|` at the returned :math:`\lambda^*`.
    error_bound : float
        The solver's certified bound on :math:`\|\lambda^* - \lambda_{exact}\|`
        (:mod:`attnverify.certificate`): D is :math:`1/\alpha`-strongly concave, so
        :math:`\|\lambda - \lambda_{exact}\| \le \alpha\|\nabla D(\lambda)\|` for every :math:`\lambda`,
        with the float64 error of the computed gradient included (and a sharper local-curvature
        bound where one holds).
    converged : bool
        The solver's verdict: True only if the certified bound is at most rtol times
        :math:`\|\lambda^*\|` and the relative duality gap at most rtol.
    iterations : int
        Newton steps taken.
    """

    lambda_star: np.ndarray
    h_hat: np.ndarray
    p_tilde: np.ndarray
    lambda_linear: np.ndarray
    lambda_quadratic: np.ndarray
    h_softmax: np.ndarray
    primal: float | np.ndarray
    dual: float | np.ndarray
    gap: float | np.ndarray
    grad_norm: float | np.ndarray
    error_bound: float | np.ndarray
    converged: bool | np.ndarray
    iterations: int | np.ndarray


def _from_instance(out: dict, alpha: float) -> Solution:
    """Adapter: the dict of :func:`attnverify.solve.solve_instance` (the fields `attnverify solve`
    prints) as a :class:`Solution`. The one place that knows that dict's field names."""
    a = lambda k: np.asarray(out[k], dtype=float)  # noqa: E731
    return Solution(lambda_star=a("lambda_star"), h_hat=a("h_hat"), p_tilde=a("p_tilde"),
                    lambda_linear=a("lambda_approx_14"), lambda_quadratic=a("lambda_approx_13"),
                    h_softmax=a("h_attention_16"), primal=float(out["primal"]), dual=float(out["dual"]),
                    gap=float(out["gap"]), grad_norm=float(out["grad_norm"]),
                    error_bound=float(out["bound"]), converged=bool(out["converged"]),
                    iterations=int(out["iterations"]))


def _solve_rows(T, u, Z, alpha):
    r"""Adapter: :math:`\lambda^*` (m, d), converged (m,), iterations (m,), :math:`\|\nabla D\|` (m,) and the certified bound (m,)
    for every row of Z from the batched solver. The one place that knows its result object's fields."""
    from .batched import solve_dual_batched

    sol = solve_dual_batched(T, u, Z, alpha)
    return (sol.lam, np.asarray(sol.converged, bool), np.asarray(sol.iterations, int), np.asarray(sol.grad_norm),
            np.asarray(sol.bound, float))


def solve(T, z, alpha, u=None) -> Solution:
    r"""Solve one instance of (3)/(7) exactly, with the closed forms (13), (14), (16) beside it.

    .. math::
        \tilde p = \arg\min_{p \in \Delta_n} \frac{\alpha}{2}\|b - T^\top p\|^2 + \mathrm{KL}(p\,\|\,u),
        \qquad
        \lambda^* = \arg\max_{\lambda} \langle\lambda, b\rangle - \frac{\|\lambda\|^2}{2\alpha}
            - \log\sum_i u_i e^{\langle t_i,\lambda\rangle},
        \qquad b = T^\top u + z,

    with :math:`\tilde p_i \propto u_i e^{\langle t_i, \lambda^*\rangle}` (9) and
    :math:`\hat h = T^\top\tilde p = b - \lambda^*/\alpha` (10).

    Parameters
    ----------
    T : array_like, shape (n, d)
        The templates, one per row (any float type, or nested lists).
    z : array_like, shape (d,)
        The evidence.
    alpha : float
        :math:`\alpha > 0`, the inverse temperature (:math:`\alpha z` is the logit scale).
    u : array_like, shape (n,), optional
        The prior on the simplex; zeros mask templates. None (the default) means uniform. Its sum
        may differ from 1 by the rounding of its float type (see
        :func:`attnverify.validate.simplex_tol`); it is renormalised in float64.

    Returns
    -------
    Solution
        :math:`\lambda^*`, :math:`\hat h`, :math:`\tilde p`, the closed forms, the objective values,
        the certified error bound and the convergence verdict.

    Raises
    ------
    ValueError
        If an argument is invalid; the one-line message starts with its name.

    Notes
    -----
    The dual (7) is solved by the same code as ``attnverify solve``, so the two agree bit for bit.
    A result with ``converged`` False is returned, not raised: check it.

    Examples
    --------
    >>> import numpy as np
    >>> import attnverify
    >>> T = [[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]]
    >>> r = attnverify.solve(T, [0.3, -0.2], alpha=0.5, u=[0.5, 0.25, 0.25])
    >>> r.converged, r.iterations
    (True, 2)
    >>> bool(r.error_bound < 1e-9)
    True
    >>> r.p_tilde.round(4), round(float(r.p_tilde.sum()), 12)
    (array([0.5365, 0.2164, 0.2472]), 1.0)

    At small :math:`\alpha` the closed forms approach :math:`\lambda^*`: (14) to first order in :math:`\alpha`,
    (13) to second order (relative errors here about 3e-3 and 1e-6):

    >>> r = attnverify.solve(T, [0.3, -0.2], alpha=1e-2)
    >>> rel = lambda x: float(np.linalg.norm(x - r.lambda_star) / np.linalg.norm(r.lambda_star))
    >>> f"{rel(r.lambda_linear):.1e}", f"{rel(r.lambda_quadratic):.1e}"
    ('3.3e-03', '1.4e-06')

    float32 inputs are accepted (a float32 prior sums to 1 only within float32 rounding):

    >>> u32 = np.full(3, 1 / 3, dtype=np.float32)
    >>> attnverify.solve(np.asarray(T, np.float32), np.float32([0.3, -0.2]), 0.5, u=u32).converged
    True
    """
    from .solve import solve_instance
    from .validate import instance

    T, u, z, alpha = instance(T, z, alpha, u)
    return _from_instance(solve_instance(T, u, z, alpha), alpha)


def solve_batch(T, Z, alpha, u=None) -> Solution:
    r"""Solve (3)/(7) for every row of Z, sharing the templates T and the prior u (one attention head).

    .. math::
        \lambda^*_k = \arg\max_{\lambda} \langle\lambda, T^\top u + z_k\rangle - \frac{\|\lambda\|^2}{2\alpha}
            - \log\sum_i u_i e^{\langle t_i,\lambda\rangle}, \qquad k = 1, \dots, m,

    the dual (7) of (3) for the evidence :math:`z_k` of each query (see :func:`solve`).

    Parameters
    ----------
    T : array_like, shape (n, d)
        The templates, one per row.
    Z : array_like, shape (m, d) or (d,)
        The evidence of each query, one per row (a single vector is one query).
    alpha : float
        :math:`\alpha > 0`.
    u : array_like, shape (n,), optional
        The prior on the simplex, shared by every query; None (the default) means uniform.

    Returns
    -------
    Solution
        Every field with a leading axis of length m: ``lambda_star`` (m, d), ``p_tilde`` (m, n),
        ``converged`` (m,), and so on. Row k agrees with ``solve(T, Z[k], alpha, u)`` to round-off
        (the batched solver and the closed forms are evaluated for all rows at once; the objective
        values by the same centred forms as there, :func:`attnverify.solve.objective_values_rows`).

    Raises
    ------
    ValueError
        If an argument is invalid; the one-line message starts with its name.

    Examples
    --------
    >>> import numpy as np
    >>> import attnverify
    >>> T = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    >>> Z = np.random.default_rng(0).normal(size=(1000, 2))
    >>> r = attnverify.solve_batch(T, Z, alpha=2.0)
    >>> r.lambda_star.shape, r.p_tilde.shape, bool(r.converged.all())
    ((1000, 2), (1000, 3), True)
    >>> one = attnverify.solve(T, Z[7], alpha=2.0)
    >>> bool(np.allclose(r.lambda_star[7], one.lambda_star, rtol=1e-9, atol=0))
    True
    >>> bool((r.error_bound <= 1e-8 * np.linalg.norm(r.lambda_star, axis=1)).all())
    True
    """
    from .solve import objective_values_rows
    from .validate import batch

    T0 = T
    T, uu, Z, alpha = batch(T, _uniform(T0) if u is None else u, Z, alpha)
    lam, conv, iters, gnorm, bound = _solve_rows(T, uu, Z, alpha)
    p = _tilted_rows(T, uu, lam)
    primal, dual = objective_values_rows(T, uu, Z, alpha, lam, p)  # as solve: the centred forms of solve.py
    lam13, h16 = _closed_forms_rows(T, uu, Z, alpha)
    return Solution(lambda_star=lam, h_hat=p @ T, p_tilde=p, lambda_linear=alpha * Z, lambda_quadratic=lam13,
                    h_softmax=h16, primal=primal, dual=dual, gap=primal - dual, grad_norm=gnorm,
                    error_bound=bound, converged=conv, iterations=iters)


def _softmax_rows(logits):
    from scipy.special import logsumexp

    return np.exp(logits - logsumexp(logits, axis=1, keepdims=True))


def _tilted_rows(T, u, Lam):
    r"""The tilted distributions (9) :math:`\tilde p(\lambda)` of the rows of Lam (m, d), renormalised as
    in :func:`attnverify.solve.solve_instance`: a distribution to round-off at any logit scale."""
    from .certificate import log_u

    p = _softmax_rows(log_u(u) + Lam @ T.T)
    p /= p.sum(axis=1, keepdims=True)
    return p


def _closed_forms_rows(T, u, Z, alpha):
    r"""The closed forms (13) :math:`\alpha(I + \alpha\Sigma)^{-1} z` and (16), softmax attention, for every
    row z of Z (m, d)."""
    from .certificate import log_u
    from .dual import covariance

    d = T.shape[1]
    lam13 = alpha * np.linalg.solve(np.eye(d) + alpha * covariance(T, u), Z.T).T
    h16 = _softmax_rows(log_u(u) + alpha * Z @ T.T) @ T
    return lam13, h16


def _uniform(T):
    """The uniform prior over T's rows (T not yet validated: a bad T is reported by the validator)."""
    try:
        n = len(T)
    except TypeError:
        return None
    return np.full(n, 1.0 / n) if n else None


def verify(ids=None, docs=None) -> dict:
    """Run registered claims and return their results (the dictionary ``results.json`` holds).

    Parameters
    ----------
    ids : str or iterable of str, optional
        Claim IDs (case-insensitive), as ``attnverify list`` shows them; None (the default) runs
        every claim, which takes minutes.
    docs : path, optional
        Where figures are drawn (``docs/figures``; the results name them relative to ``docs``).
        Default: a new temporary folder. No report and no ``results.json`` are written, and the
        cache is not used: every claim is computed.

    Returns
    -------
    dict
        ``{"schema", "summary", "claims", "errata", "run"}``; ``claims`` holds one entry per
        claim run, with its ``status``, ``reason`` and ``checks``.

    Raises
    ------
    ValueError
        If an ID is not registered (the message names every unknown one).

    Notes
    -----
    BLAS runs on one thread inside the call (ATTNVERIFY_THREADS changes that), as in
    ``attnverify verify``, so the values repeat bit for bit; the limit is lifted on return.

    Examples
    --------
    >>> import attnverify
    >>> res = attnverify.verify(["EOT-UNIQ"])
    >>> [(c["id"], c["status"]) for c in res["claims"]]
    [('EOT-UNIQ', 'verified')]
    >>> res["summary"]["verified"]
    1
    """
    import tempfile
    from pathlib import Path

    from . import context
    from .threads import limited
    from .verify import run_all

    select = None if ids is None else _registered_ids(ids)
    folder = Path(docs) if docs is not None else Path(tempfile.mkdtemp(prefix="attnverify-"))
    saved = context.FIGURE_DIR
    context.FIGURE_DIR = folder / "figures"
    try:
        with limited():
            return run_all(select=select, log=lambda s: None, cache=None)
    finally:
        context.FIGURE_DIR = saved


def _registered_ids(ids):
    """A selector of the claims named by ids (case-insensitive); ValueError naming every unregistered ID."""
    from .registry import load_claims

    wanted = {ids.upper()} if isinstance(ids, str) else {str(i).upper() for i in ids}
    unknown = sorted(wanted - {c.id.upper() for c in load_claims()})
    if unknown:
        raise ValueError(f"ids: unknown claim ID{'s' * (len(unknown) > 1)} {', '.join(unknown)}")
    return lambda c: c.id.upper() in wanted


class _Package(_types.ModuleType):
    """The package module, keeping the API functions :func:`solve` and :func:`verify` bound.

    The submodules attnverify.solve and attnverify.verify (the engine) share those names; when a
    submodule is first imported, the import system binds it as an attribute of its package, which
    would replace the function. This class ignores exactly that binding, so ``attnverify.solve``
    and ``attnverify.verify`` stay the functions however the modules are imported, and the
    modules stay lazy (importing attnverify does not load SciPy or SymPy). Code that needs those
    modules imports from them (``from attnverify.verify import run_all``) or calls
    ``importlib.import_module("attnverify.verify")``."""

    def __setattr__(self, name, value):
        if name in ("solve", "verify") and isinstance(value, _types.ModuleType):
            return
        super().__setattr__(name, value)


_sys.modules[__name__].__class__ = _Package


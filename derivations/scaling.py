r"""The exact scaling symmetry of the dual (7), for general n and d.

For :math:`s > 0`, :math:`(T, z, \alpha, \lambda) \mapsto (sT, sz, \alpha/s^2, \lambda/s)` leaves (7)
unchanged, the tilted logits :math:`\langle t_i, \lambda\rangle` of (9) and the attention logits
:math:`\alpha\langle t_i, z\rangle` of (16) too. So :math:`\lambda^*` scales by 1/s, while
:math:`\hat h`, (16) and :math:`\mu` scale by s: every relative error between them is invariant.
FD-FIG3 (the ensemble's scale is :math:`\alpha` in disguise) and FD-FIG4/gauge (another split of the
constants is a rescaled :math:`\alpha`) rest on it.

Source: 004_830fd89135933577.txt, (7), (9), (16).
"""

from __future__ import annotations

import sympy as sp

from attnverify.evidence import Evidence


def scaling_law(*, alpha_scaling=lambda a, s: a / s**2) -> Evidence:
    r"""The scaling law, symbolically for general :math:`n` and :math:`d`:
    :math:`D(sT, sz, \alpha/s^2; \lambda/s) = D(T, z, \alpha; \lambda)`, the tilted logits and (16)'s logits are
    invariant, so :math:`\hat h` and (16) scale by :math:`s`. ``alpha_scaling(alpha, s)`` is the law's
    :math:`\alpha` under test (:math:`\alpha/s^2`; a mutant passes another)."""
    ev = Evidence()
    n, d = sp.symbols("n d", integer=True, positive=True)
    i, j = sp.symbols("i j", integer=True)
    s, a = sp.symbols("s alpha", positive=True)
    t, u, z, lam = sp.IndexedBase("t"), sp.IndexedBase("u"), sp.IndexedBase("z"), sp.IndexedBase("lambda")

    def dual(ts, zs, al, lm):
        logit = sp.Sum(ts(i, j) * lm(j), (j, 1, d))
        return (sp.Sum(lm(j) * (sp.Sum(u[i] * ts(i, j), (i, 1, n)) + zs(j)), (j, 1, d))
                - sp.Sum(lm(j) ** 2, (j, 1, d)) / (2 * al) - sp.log(sp.Sum(u[i] * sp.exp(logit), (i, 1, n))))

    D1 = dual(lambda i_, j_: t[i_, j_], lambda j_: z[j_], a, lambda j_: lam[j_])
    Ds = dual(lambda i_, j_: s * t[i_, j_], lambda j_: s * z[j_], alpha_scaling(a, s), lambda j_: lam[j_] / s)
    ev.step(r"The dual (7) with templates $sT$, evidence $sz$, $\alpha/s^2$, at $\lambda/s$:", sp.Eq(sp.Symbol("D_s"), Ds))
    ev.identity("the dual (7) is invariant under (T, z, alpha, lambda) -> (sT, sz, alpha/s^2, lambda/s)",
                _pull_scalars(Ds), D1, key="dual-invariant")
    logit1 = sp.Sum(t[i, j] * lam[j], (j, 1, d))
    logits = sp.Sum(s * t[i, j] * lam[j] / s, (j, 1, d))
    ev.identity("the tilted logits <t_i, lambda> of (9) are invariant", _pull_scalars(logits), logit1,
                key="tilted-logits-invariant")
    att1 = a * sp.Sum(t[i, j] * z[j], (j, 1, d))
    atts = alpha_scaling(a, s) * sp.Sum(s * t[i, j] * s * z[j], (j, 1, d))
    ev.identity("(16)'s logits alpha <t_i, z> are invariant", _pull_scalars(atts), att1, key="attention-logits-invariant")
    ev.step(r"So $\lambda^* \to \lambda^*/s$, and $\hat h = \mathbb E_{\tilde p}[t]$, (16) $= \mathbb E_{\rm softmax}[t]$ and $\mu$ "
            r"all scale by $s$: $e = \|h_{(16)} - \hat h\| / \|\hat h - \mu\|$ is invariant; with $s = 1/\sigma$, "
            r"$e(\sigma T, \sigma z, \alpha) = e(T, z, \alpha\sigma^2)$.", r"e(\sigma T,\sigma z,\alpha)=e(T,z,\alpha\sigma^2)")
    return ev


def _pull_scalars(expr):
    """Move factors free of the summation index out of every Sum, then simplify."""
    def pull(e):
        if isinstance(e, sp.Sum):
            body, lims = sp.expand(pull(e.function)), e.limits
            if body.is_Add:  # a sum of sums, term by term
                return sp.Add(*[pull(sp.Sum(term, *lims)) for term in body.args])
            idx = {lim[0] for lim in lims}
            factors = sp.Mul.make_args(body)
            outside = [f for f in factors if not (f.free_symbols & idx) and not f.has(sp.Indexed)]
            inside = [f for f in factors if f not in outside]
            return sp.Mul(*outside) * sp.Sum(sp.Mul(*inside), *lims)
        if e.args:
            return e.func(*[pull(x) for x in e.args])
        return e
    return sp.simplify(pull(expr))



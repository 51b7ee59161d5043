"""The SymPy algebra of finite sums shared by the derivations (one definition of each helper).

Two normal forms, of different strength:

* :func:`sum_normal` distributes sums over their summands, pulls out factors free of the summation
  index, flattens nested linear sums and renames bound indices canonically, so that two expressions
  equal by the ordinary rules of finite sums normalise to the same expression. :func:`sum_simplify`
  is the simplifier that ``Evidence.identity`` uses with it.
* :func:`sum_expand` only expands: it distributes every sum over its summand, pulls out the factors
  free of its index and gives every innermost single sum the same index; it neither merges nor
  exchanges sums, so its output keeps the shape of the input (the steps of ``derivations.ot`` and
  ``derivations.cumulant`` print it). :func:`sum_expand_simplify` is its residual simplifier.

:func:`resolve` evaluates the KroneckerDelta sums that differentiating through a ``Sum`` produces;
:func:`eq` writes a step's LaTeX.
"""

from __future__ import annotations

import sympy as sp

from attnverify.evidence import full_simplify


def _expand(e):
    # keep exp(Sum) intact: expand would otherwise turn it into a Product
    return sp.expand(e, power_exp=False)


def _norm(e):
    if isinstance(e, sp.Sum):
        return _norm_sum(e)
    if not e.args or isinstance(e, (sp.Indexed, sp.Idx)):
        return e
    return e.func(*[_norm(x) for x in e.args])


def _norm_sum(S):
    # fresh bound names first, so flattening nested sums cannot capture a free index
    fresh = {lim[0]: sp.Dummy(lim[0].name) for lim in S.limits}
    f = _expand(_norm(S.function.xreplace(fresh)))
    limits = [(fresh[x],) + tuple(lim) for x, *lim in S.limits]
    out = sp.S.Zero
    for term in sp.Add.make_args(f):  # sum of a sum = sum of sums
        lims, factors = list(limits), []
        for fac in sp.Mul.make_args(term):
            if isinstance(fac, sp.Sum):  # a linear inner sum: merge into a multiple sum
                inner = {lim[0]: sp.Dummy(lim[0].name) for lim in fac.limits}
                factors.append(fac.function.xreplace(inner))
                lims += [(inner[x],) + tuple(lim) for x, *lim in fac.limits]
            else:
                factors.append(fac)
        for t2 in sp.Add.make_args(_expand(sp.Mul(*factors))):
            out += _canon(t2, lims)
    return out


def _canon(term, lims):
    """coefficient * Sum(body) with factors free of the indices pulled out and canonical names."""
    dums = {lim[0] for lim in lims}
    coeff, dep = [], []
    for fac in sp.Mul.make_args(term):
        (dep if fac.free_symbols & dums else coeff).append(fac)
    body, c, used = sp.Mul(*dep), sp.Mul(*coeff), []
    for x, lo, hi in lims:
        if x in body.free_symbols:
            used.append((x, lo, hi))
        else:  # summing something constant in x
            c *= hi - lo + 1
    if not used:
        return c * body
    used.sort(key=lambda lim: (str(lim[1]), str(lim[2])))  # ranges are independent here
    # avoid names already used (e.g. bound in an inner exp(Sum)); Dummies are placeholders only
    taken = {s.name for s in body.atoms(sp.Symbol) if not isinstance(s, sp.Dummy)}
    ren, new_lims = {}, []
    for x, lo, hi in used:
        m = 0
        while f"iota_{hi}_{m}" in taken:
            m += 1
        y = sp.Symbol(f"iota_{hi}_{m}", integer=True)
        taken.add(y.name)
        ren[x] = y
        new_lims.append((y, lo, hi))
    return c * sp.Sum(body.xreplace(ren), *new_lims)


def sum_normal(e, rules=()):
    """Normal form of an expression with finite sums; ``rules`` are (Sum-expression, value) pairs.

    ``expand_log(force=True)`` is used: every log here is of a positive quantity (probabilities,
    priors, partition functions), and exp of a real exponent.
    """
    e = _expand(_norm(_expand(sp.expand_log(sp.sympify(e), force=True))))
    for lhs, rhs in rules:
        ln = sum_normal(lhs)
        sums = [f for f in sp.Mul.make_args(ln) if isinstance(f, sp.Sum)]
        if len(sums) != 1:
            raise ValueError(f"rule left side must normalise to c*Sum(...): {ln}")
        coeff = ln / sums[0]
        e = _expand(e.xreplace({sums[0]: sum_normal(rhs) / coeff}))
        e = _expand(_norm(e))
    return e


def _rename_innermost_dummies(e, dummy):
    """Give every innermost single sum the index ``dummy``, so equal sums compare equal.

    Only innermost sums are renamed: an outer sum's index may occur in its inner sums' summands,
    and renaming it to ``dummy`` would capture the inner index.
    """

    def ren(w):
        (v, lo, hi), = w.limits
        return sp.Sum(w.function.subs(v, dummy), (dummy, lo, hi))

    return e.replace(lambda w: isinstance(w, sp.Sum) and len(w.limits) == 1 and not w.function.has(sp.Sum), ren)


def sum_expand(e, dummy, unit_sums=()):
    r"""Expand ``e``, distribute every sum over its summand, pull the factors free of its index out of it
    (``factor_terms``), rename the index of every innermost single sum to ``dummy``, and replace each sum
    of ``unit_sums`` (written with index ``dummy``, e.g. ``Sum(u[dummy], (dummy, 1, n))``, i.e.
    :math:`\sum_k u_k = 1`) by 1.

    No ``simplify`` here: it would re-merge sums under one index.
    """
    e = sp.expand(e)
    e = e.replace(lambda w: isinstance(w, sp.Sum), lambda w: sp.factor_terms(sp.Sum(sp.expand(w.function), *w.limits).expand()))
    e = _rename_innermost_dummies(sp.expand(e), dummy)
    for unit in unit_sums:
        e = e.subs(unit, 1)
    return sp.expand(e)


def sum_expand_simplify(e, dummy, unit_sums=()):
    """Residual simplifier for identities between sums: :func:`sum_expand`, then ``simplify`` unless already 0."""
    r = sum_expand(e, dummy, unit_sums)
    return r if r == 0 else sp.simplify(r)


def readable(e, names=None):
    """Rename the canonical bound indices of :func:`sum_normal` for display in a step."""
    names = names or {"n": "jlir", "d": "acef"}
    ren = {}
    for sym in e.atoms(sp.Symbol):
        if sym.name.startswith("iota_"):
            _, hi, pos = sym.name.split("_")
            ren[sym] = sp.Symbol(names.get(hi, "xyzw")[int(pos)], integer=True)
    return e.xreplace(ren)


def eq(lhs_latex: str, rhs) -> str:
    """A step's LaTeX 'lhs = rhs' with a hand-written left side."""
    return f"{lhs_latex} = {sp.latex(rhs)}"


def sum_simplify(e):
    """Simplifier for ``Evidence.identity`` on expressions with symbolic finite sums."""
    r = sum_normal(e)
    if r == 0:
        return r
    try:  # a second chance for non-sum algebra; SymPy's sum_simplify can crash on 1/Sum terms
        return full_simplify(r)
    except Exception:  # noqa: BLE001  (a crash is "not shown to be 0", the residual stands)
        return r


N_KEYS = sp.Symbol("n", integer=True, positive=True)  # the number of keys n of derivations.eot (same symbol)


def resolve(expr, idxs, lo=1, hi=N_KEYS):
    r"""``doit`` the KroneckerDelta sums and keep the Piecewise branches valid for :math:`lo \le i \le hi`,
    for every index :math:`i` in ``idxs`` (one index or a list)."""
    true_for = {}
    for i in (idxs if isinstance(idxs, (list, tuple)) else [idxs]):
        true_for.update({sp.Le(i, hi): True, sp.Ge(hi, i): True, sp.Ge(i, lo): True, sp.Le(lo, i): True})

    def pick(pw):
        for ec in pw.args:
            if sp.simplify(sp.sympify(ec.cond).xreplace(true_for)) is sp.true:
                return ec.expr
        raise ValueError(f"cannot resolve {pw} for {lo} <= {idxs} <= {hi}")

    return expr.doit().replace(lambda e: isinstance(e, sp.Piecewise), pick)


def replace_indexed(expr, base, fn):
    """Replace every ``base[i]`` by ``fn(i)`` (also inside sums, where ``subs`` does not reach)."""
    return expr.replace(lambda e: isinstance(e, sp.Indexed) and e.base == base, lambda e: fn(*e.indices))

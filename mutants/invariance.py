"""Mutants of the invariance studies (issue 15): a gauge that changes the model, a wrong scaling law."""

from __future__ import annotations

from . import Mutant


def gauge_changes_logits():
    r"""FD-FIG4/gauge with :math:`z \to z / c^2` instead of :math:`z / c`: the logits, hence the model, change with c."""
    from attnverify.checks.fig4_gauge import gauge_invariance

    return gauge_invariance(split=lambda T, Z, c: (c * T, Z / c**2))


def scaling_alpha_over_s():
    r"""The scaling law with :math:`\alpha \to \alpha / s` instead of :math:`\alpha / s^2`."""
    from attnverify.derivations.scaling import scaling_law

    return scaling_law(alpha_scaling=lambda a, s: a / s)


MUTANTS = [
    Mutant("FD-FIG4/gauge-changes-logits", "FD", r"the gauge $z \to z/c^2$ (not $z/c$): the attention output changes",
           replace={"attnverify.checks.fig4_gauge:gauge_invariance": "attnverify.mutants.invariance:gauge_changes_logits"}),
    Mutant("FD-FIG3/scaling-alpha-over-s", "FD", r"the scaling law with $\alpha/s$ in place of $\alpha/s^2$",
           replace={"attnverify.derivations.scaling:scaling_law": "attnverify.mutants.invariance:scaling_alpha_over_s"}),
]

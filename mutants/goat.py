"""Mutants of the GOAT claims (002): the KL-to-a-prior attention, its uniform case and attention sinks."""

from __future__ import annotations

import numpy as np
import sympy as sp

from . import Mutant


def prior_prescaled():
    """GOAT-PRIOR with the prior entering before the scaling: softmax(s/tau + tau log pi)."""
    from attnverify.derivations import goat as G

    return G.prior(candidate=lambda idx: G.biased_softmax(lambda a: G.tau * sp.log(G.pi[a]), idx))


def prior_sign():
    """GOAT-PRIOR closed form with the sign of log pi flipped: softmax(s/tau - log pi)."""
    from attnverify.checks import goat_torch

    def closed(s, tau, pi):
        with np.errstate(divide="ignore"):
            return goat_torch.softmax(s / tau - np.log(pi))

    return goat_torch.prior_against_solvers(closed=closed)


def prior_mask_prescaled():
    """GOAT through SDPA with attn_mask = tau log pi (a pre-scaling bias put after the scaling)."""
    from attnverify.checks import goat_torch

    return goat_torch.prior_sdpa(mask_fn=lambda logpi, tau: tau * logpi)


def uniform_normaliser():
    """GOAT-UNIFORM with the uniform prior 1/(n + 1) (wrong normaliser)."""
    from attnverify.derivations import goat as G

    return G.uniform(uniform=lambda nn: 1 / (nn + 1))


def sink_uniform():
    """GOAT-SINK with flat scores giving the uniform 1/n instead of the prior pi."""
    from attnverify.derivations import goat as G

    return G.sink(flat_value=lambda a: 1 / G.n)


def sink_uniform_numeric():
    """GOAT-SINK numerically with the flat-score target 1/n instead of pi."""
    from attnverify.checks import goat_torch

    return goat_torch.sink_numeric(flat_target=lambda pi: np.full_like(pi, 1 / len(pi)))


def prior_nan():
    """GOAT-PRIOR closed form evaluating to NaN."""
    from attnverify.checks import goat_torch

    return goat_torch.prior_against_solvers(closed=lambda s, tau, pi: np.full(len(s), np.nan))


def sink_nan():
    """GOAT-SINK flat-score target evaluating to NaN."""
    from attnverify.checks import goat_torch

    return goat_torch.sink_numeric(flat_target=lambda pi: np.full(len(pi), np.nan))


MUTANTS = [
    Mutant("GOAT-PRIOR/prescaled-bias", "GOAT", "softmax(s/tau + tau log pi): the prior scaled by tau",
           replace={"attnverify.derivations.goat:prior": "attnverify.mutants.goat:prior_prescaled"}),
    Mutant("GOAT-PRIOR/sign", "GOAT", "softmax(s/tau - log pi) (sign of the prior flipped)",
           replace={"attnverify.checks.goat_torch:prior_against_solvers": "attnverify.mutants.goat:prior_sign"}),
    Mutant("GOAT-PRIOR/mask-prescaled", "GOAT", "SDPA attn_mask = tau log pi instead of log pi",
           replace={"attnverify.checks.goat_torch:prior_sdpa": "attnverify.mutants.goat:prior_mask_prescaled"}),
    Mutant("GOAT-UNIFORM/normaliser", "GOAT", "uniform prior 1/(n+1) (wrong normaliser)",
           replace={"attnverify.derivations.goat:uniform": "attnverify.mutants.goat:uniform_normaliser"}),
    Mutant("GOAT-UNIFORM/temperature-halved", "GOAT", "standard attention softmax(2 s/tau) in the numeric comparison",
           patch={"attnverify.checks.goat_torch:softmax": lambda orig: lambda x, axis=None: orig(2 * np.asarray(x), axis=axis)}),
    Mutant("GOAT-SINK/uniform", "GOAT", "flat scores give 1/n instead of the prior pi",
           replace={"attnverify.derivations.goat:sink": "attnverify.mutants.goat:sink_uniform"}),
    Mutant("GOAT-SINK/uniform-numeric", "GOAT", "flat-score target 1/n instead of pi, against torch SDPA",
           replace={"attnverify.checks.goat_torch:sink_numeric": "attnverify.mutants.goat:sink_uniform_numeric"}),
    Mutant("GOAT-PRIOR/nan", "GOAT", "closed form softmax(s/tau + log pi) evaluates to NaN",
           replace={"attnverify.checks.goat_torch:prior_against_solvers": "attnverify.mutants.goat:prior_nan"}),
    Mutant("GOAT-SINK/nan", "GOAT", "flat-score target evaluates to NaN",
           replace={"attnverify.checks.goat_torch:sink_numeric": "attnverify.mutants.goat:sink_nan"}),
]

"""Mutants of the training-scale claims: EOS-SHARP (digits), FD-VIT/reduced and GOAT-EXTRAP.

Each one is a mistake a training reproduction could make, patched into the function the claim runs
(each run is a full training run, ~1 min per mutant on this machine)."""

from __future__ import annotations

import math

from . import Mutant


def _hvp_halved(orig):
    """Hessian-vector products scaled by :math:`1/2` (a dropped factor in the double backward)."""
    return lambda loss_fn, params, vec: [0.5 * h for h in orig(loss_fn, params, vec)]


def _edge_one_over_eta(orig):
    r"""The edge taken as :math:`1/\eta` instead of :math:`2/\eta`."""
    return lambda S, eta: orig(S, 2 * eta)


def _ot_as_softmax(orig):
    """OT-ViT's final layer replaced by plain softmax attention on the input's templates (M and the mixed-in
    templates ignored)."""

    def weights(logits, M, u, gamma, present=None):
        import torch

        return torch.softmax(logits.masked_fill(u.unsqueeze(-2) == 0, -math.inf), dim=-1)

    return weights


def _never_mixed(orig):
    """Template mixing never applied (the partner is drawn, the coin always says no)."""

    def partners(y, gen, torch):
        partner, mixed = orig(y, gen, torch)
        return partner, mixed & False

    return partners


def _prior_ignored(orig):
    """GOAT's learned prior dropped from the mask (only the causal mask left)."""
    return lambda slope, bumps, delta: 0 * delta + 0 * slope.sum() + 0 * bumps.sum()


def _mask_prescaled(orig):
    r"""The prior put into SDPA's mask multiplied by :math:`\sqrt{d}` (a pre-scaling bias added after the scaling)."""
    return lambda q, k, v, attn_mask: orig(q, k, v, attn_mask=attn_mask * math.sqrt(q.shape[-1]))


MUTANTS = [
    Mutant("EOS-SHARP/hvp-halved", "EOS", "Hessian-vector products off by a factor $1/2$",
           patch={"attnverify.training:hvp": _hvp_halved}),
    Mutant("EOS-SHARP/edge-one-over-eta", "EOS", r"the edge taken as $1/\eta$ instead of $2/\eta$",
           patch={"attnverify.checks.eos_training:at_edge": _edge_one_over_eta}),
    Mutant("FD-VIT/ot-as-softmax", "FD-OT", r"OT-ViT's final layer computed as softmax attention ($M$, $\gamma$ and the "
           "mixed-in templates ignored)", patch={"attnverify.checks.vit_reduced:ot_weights": _ot_as_softmax}),
    Mutant("FD-VIT/never-mixed", "FD-OT", "template mixing with a same-class image never applied",
           patch={"attnverify.checks.vit_reduced:mixing_partners": _never_mixed}),
    Mutant("GOAT-EXTRAP/prior-ignored", "GOAT", "GOAT's learned prior $f(i - j)$ left out of the mask",
           patch={"attnverify.checks.goat_extrap:goat_prior": _prior_ignored}),
    Mutant("GOAT-EXTRAP/mask-prescaled", "GOAT", r"SDPA attn_mask $= \sqrt{d}\,\log\pi$ instead of $\log\pi$",
           patch={"attnverify.checks.goat_extrap:sdpa": _mask_prescaled}),
]

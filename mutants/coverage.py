"""Mutants of the checks added by the errata pass and FD-VIT/tables (issue 16).

For every erratum (a :class:`derivations.hypotheses_004.Hypothesis`, in derivations.hypotheses_004 and
checks.errata_004) two mutants: the corrected form evaluated as the printed one (the mistake the paper
made: its check of the corrected form must fail), and the printed form evaluated as the corrected one (an
erratum that is not there: its "printed form is contradicted" check must fail).  For FD-VIT/tables, wrong
readings of the tables and a wrong test.
"""

from __future__ import annotations

import dataclasses

from . import Mutant

HYP_MODULES = {"attnverify.derivations.hypotheses_004": "FD", "attnverify.checks.errata_004": "FD"}
CLAIM_OF = {  # module attribute -> the claim whose function records it
    "KL_ONLY_IF": "FD-3", "KL_ORIENTATION": "FD-3", "SHIFT_DIRECTION": "FD-3", "BOUNDED_MOMENTS": "FD-11",
    "SEC8_INDEX": "FD-19", "IDX_43": "FD-22", "POLYTOPE": "FD-20", "VIT_COST": "FD-37", "BAHDANAU": "FD-16",
    "T5_SCALE": "FD-19", "T5_CROSS_U": "FD-19", "MASKED_WORDS": "FD-17",
    "LOG_LIKELIHOOD": "FD-B",
}
MODULE_OF = {"KL_ONLY_IF": "attnverify.derivations.hypotheses_004", "KL_ORIENTATION": "attnverify.derivations.hypotheses_004",
             "SHIFT_DIRECTION": "attnverify.derivations.hypotheses_004", "BOUNDED_MOMENTS": "attnverify.derivations.hypotheses_004",
             "SEC8_INDEX": "attnverify.derivations.hypotheses_004", "IDX_43": "attnverify.derivations.hypotheses_004",
             "POLYTOPE": "attnverify.checks.errata_004", "VIT_COST": "attnverify.checks.errata_004", "BAHDANAU": "attnverify.checks.errata_004",
             "T5_SCALE": "attnverify.checks.errata_004", "T5_CROSS_U": "attnverify.checks.errata_004", "MASKED_WORDS": "attnverify.checks.errata_004",
             "LOG_LIKELIHOOD": "attnverify.derivations.hypotheses_004"}


def _as(form):
    """make(orig): the hypothesis with every form evaluated as ``form``."""
    def make(orig):
        return dataclasses.replace(orig, violation=lambda _form, f=orig.violation: f(form))
    return make


def _hypothesis_mutants() -> list[Mutant]:
    out = []
    for attr, claim in CLAIM_OF.items():
        target = f"{MODULE_OF[attr]}:{attr}"
        slug = attr.lower().replace("_", "-")
        out.append(Mutant(f"{claim}/{slug}-corrected-is-printed", "FD" if claim not in ("FD-20", "FD-37", "FD-22")
                          else "FD-OT", f"{attr}: the corrected form replaced by the printed one", patch={target: _as("printed")}))
        out.append(Mutant(f"{claim}/{slug}-printed-is-corrected", "FD" if claim not in ("FD-20", "FD-37", "FD-22")
                          else "FD-OT", f"{attr}: the printed form read as the corrected one (an erratum that is not there)",
                          patch={target: _as("corrected")}))
    return out


# -- FD-VIT/tables -------------------------------------------------------------------------------------
def _parse_with(edit):
    def make(orig):
        def parse():
            t1, t2, counts = orig()
            edit(t1, t2, counts)
            return t1, t2, counts
        return parse
    return make


def _cifar100_from_3e5(t1, t2, counts):
    for m in ("ViT", "OT-ViT"):
        t2["CIFAR100"][m] = t1[m][3e-5]


def _best_lr_3e5(t1, t2, counts):
    t1["OT-ViT"][3e-5] = (0.50, 0.01)


def _rows_swapped(t1, t2, counts):
    for ds in t2:
        t2[ds]["ViT"], t2[ds]["OT-ViT"] = t2[ds]["OT-ViT"], t2[ds]["ViT"]


def _cell_one_each(t1, t2, counts):
    counts["CIFAR10"] = (1, 1)


def _fmnist_cell_doubled(t1, t2, counts):
    counts["Fashion-MNIST"] = (2, 1)


V = "attnverify.checks.vit_tables"
TABLE_MUTANTS = [
    Mutant("FD-VIT/cifar100-column-from-lr-3e-5", "FD-OT", "Table 2's CIFAR100 column read from Table 1 at LR 3e-5",
           patch={f"{V}:parse": _parse_with(_cifar100_from_3e5)}),
    Mutant("FD-VIT/best-lr-misread", "FD-OT", "Table 1's OT-ViT accuracy at 3e-5 misread as 0.50 (best LR 3e-5)",
           patch={f"{V}:parse": _parse_with(_best_lr_3e5)}),
    Mutant("FD-VIT/rows-swapped", "FD-OT", "Table 2's rows swapped (ViT read as OT-ViT)",
           patch={f"{V}:parse": _parse_with(_rows_swapped)}),
    Mutant("FD-VIT/cifar10-cell-one-entry-each", "FD-OT", "the CIFAR10 cell counted as one entry per row",
           patch={f"{V}:parse": _parse_with(_cell_one_each)}),
    Mutant("FD-VIT/fmnist-cell-doubled", "FD-OT", "the Fashion-MNIST ViT cell counted with two entries",
           patch={f"{V}:parse": _parse_with(_fmnist_cell_doubled)}),
    Mutant("FD-VIT/critical-value-one", "FD-OT", "the z-test with critical value 1 (about a 32% level) instead of 1.96",
           patch={f"{V}:CRIT": lambda orig: 1.0}),
]

MUTANTS = _hypothesis_mutants() + TABLE_MUTANTS

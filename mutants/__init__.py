"""The mutant catalogue of ``make mutate`` (run by :mod:`attnverify.mutate`).

A mutant is one wrong variant of a closed form or of a derivation step that the project checks
(a sign flipped, a factor dropped or doubled, alpha <-> 1/alpha, indices swapped, Sigma replaced
by I, a missing exp, a wrong normaliser, a transposed cost matrix, an off-by-one, ...).  It is
injected through the same registry the real claims use, in one of two ways:

* ``replace``: a ``"module:function"`` reference of the claim (claims.toml) is replaced by a
  mutated variant defined in this package, which calls the derivation's or check's internal
  function with a wrong ``candidate``/closed form (the claim is rebuilt with
  ``dataclasses.replace``);
* ``patch``: a module attribute that the claim's functions use (a closed form of
  :mod:`attnverify.dual`, a helper of a check, an internal step of a derivation) is replaced by
  ``make(original)`` for the duration of the run and restored afterwards.

Either way the claim is then run by :func:`attnverify.verify.run_claim` with its status rule,
and the mutant must not come out ``verified``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

FAMILIES = ("FD", "FD-OT", "EOT", "EOT-OMEGA", "GOAT", "EOS")


@dataclass
class Mutant:
    id: str  # "<claim>/<short name>"
    family: str  # one of FAMILIES
    what: str  # the mistake, in words
    replace: dict[str, str] = field(default_factory=dict)  # claim ref -> mutated ref
    patch: dict[str, Callable] = field(default_factory=dict)  # "module:attribute" -> make(original)

    @property
    def claim(self) -> str:
        return self.id.split("/")[0]

    @property
    def kind(self) -> str:
        return "ref" if self.replace else "patch"

    @property
    def injected(self) -> str:
        """Where the mutation enters, for the report."""
        if self.replace:
            return "; ".join(f"`{old}` -> `{new}`" for old, new in self.replace.items())
        return "; ".join(f"patch `{target}`" for target in self.patch)


def catalogue() -> list[Mutant]:
    """Every mutant, family by family."""
    from . import certified, coverage, eos, eot, fd, goat, invariance, omega, ot, training

    return (fd.MUTANTS + invariance.MUTANTS + ot.MUTANTS + eot.MUTANTS + omega.MUTANTS + goat.MUTANTS
            + eos.MUTANTS + training.MUTANTS + coverage.MUTANTS + certified.MUTANTS)

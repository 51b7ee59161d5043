"""Strength of evidence: the strongest kind of evidence behind each part of a claim (issue 22).

The kinds, strongest first: ``proof`` (symbolic, general n), ``certificate`` (ball arithmetic on
instances), ``float`` (floating point with an error argument), ``statistical`` (sampling).

What "behind" means depends on the verdict: a part that is refuted rests on its failing checks (the
strongest kind among them is what the refutation stands on); otherwise it rests on all its checks.
"""

from __future__ import annotations

from .evidence import EVIDENCE_KINDS

RANK = {k: i for i, k in enumerate(EVIDENCE_KINDS)}  # lower = stronger


def strongest(checks: list[dict]) -> str | None:
    """The strongest ``evidence`` kind among check dicts (None if none carries one); the failing checks
    alone decide when any check failed."""
    failing = [c for c in checks if not c.get("passed", True)]
    kinds = [c.get("evidence") for c in (failing or checks) if c.get("evidence") in RANK]
    return min(kinds, key=RANK.__getitem__) if kinds else None


def evidence_by_part(entry: dict) -> dict:
    """``{"CLAIM/part" or "CLAIM": kind}`` for one claim entry of results.json: every part (its ``checks``
    are check keys) and the claim as a whole. Parts or claims without checks carrying a kind are left out.

    >>> e = {"id": "X", "checks": [{"key": "a", "evidence": "float", "passed": True},
    ...                            {"key": "b", "evidence": "certificate", "passed": True}],
    ...      "parts": [{"id": "X/1", "checks": ["a"]}]}
    >>> evidence_by_part(e)
    {'X/1': 'float', 'X': 'certificate'}
    """
    checks = entry.get("checks", [])
    by_key = {c.get("key"): c for c in checks}
    out = {}
    for part in entry.get("parts", []) or []:
        kind = strongest([by_key[k] for k in part.get("checks", []) if k in by_key])
        if kind:
            out[part["id"]] = kind
    kind = strongest(checks)
    if kind:
        out[entry["id"]] = kind
    return out

"""`make mutate` (attnverify/mutate.py, catalogue mutants/): a fast smoke test of the runner on three real
mutants, and of the rules that keep it honest (a harmless or non-injected mutation is not a kill, patches
are restored, a stale catalogue entry is reported); the catalogue's coverage."""

import importlib

import pytest

from attnverify import mutants
from attnverify import context, mutate
from attnverify.registry import load_claims, resolve
from attnverify.mutants import FAMILIES, Mutant, catalogue


@pytest.fixture(autouse=True)
def _figures(tmp_path, monkeypatch):
    monkeypatch.setattr(context, "FIGURE_DIR", tmp_path)


def _by_id(i):
    return next(m for m in catalogue() if m.id == i)


def _run(*ms):
    return mutate.run(list(ms), log=lambda s: None)


def test_real_mutants_are_killed_by_failing_checks():
    res = _run(_by_id("EOT-UNIQ/power"), _by_id("GOAT-UNIFORM/temperature-halved"), _by_id("EOT-LSE/log-mean-exp"))
    for r in res:
        assert r["killed"] and r["status"] == "refuted" and r["how"].startswith("check failed: "), r


def test_a_harmless_mutation_is_not_a_kill():
    noop = Mutant("EOT-LSE/no-op", "EOT", "the identity", patch={"attnverify.checks.eot_numeric:logsumexp": lambda orig: orig})
    (r,) = _run(noop)
    assert not r["killed"] and r["status"] == "verified" and "still verified" in r["how"]


def test_a_patch_that_is_never_called_is_not_a_kill():
    # EOT-UNIQ never calls checks.eot_numeric.softmax: the mutation would not be injected
    m = Mutant("EOT-UNIQ/not-injected", "EOT", "x", patch={"attnverify.checks.eot_numeric:softmax": lambda orig: lambda x: -orig(x)})
    (r,) = _run(m)
    assert not r["killed"] and r["how"].startswith("not injected")


def test_patches_are_restored_and_a_stale_entry_is_reported():
    import attnverify.checks.eot_numeric as en

    before = en.logsumexp
    _run(_by_id("EOT-LSE/log-mean-exp"))
    assert en.logsumexp is before
    stale = Mutant("EOT-LSE/stale", "EOT", "x", replace={"attnverify.derivations.eot:no_such_function": "attnverify.mutants.eot:lse_sign"})
    (r,) = _run(stale)
    assert not r["killed"] and r["how"].startswith("could not inject")


def test_main_exits_non_zero_on_a_survivor(monkeypatch, capsys):
    noop = Mutant("EOT-LSE/no-op", "EOT", "the identity", patch={"attnverify.checks.eot_numeric:logsumexp": lambda orig: orig})
    monkeypatch.setattr(mutants, "catalogue", lambda: [noop])
    assert mutate.main(["--no-write"]) == 1
    assert "SURVIVED EOT-LSE/no-op" in capsys.readouterr().out


def test_the_catalogue_covers_every_family():
    ms = catalogue()
    claims = {c.id: c for c in load_claims()}
    assert len(ms) >= 30 and len({m.id for m in ms}) == len(ms)
    for fam in FAMILIES:
        assert sum(m.family == fam for m in ms) >= 3, fam
    for m in ms:
        assert m.claim in claims, m.id
        assert bool(m.replace) != bool(m.patch), m.id  # exactly one way of injecting
        for old, new in m.replace.items():
            assert old in claims[m.claim].functions and callable(resolve(new)), m.id
        for target in m.patch:
            mod, _, attr = target.partition(":")
            assert hasattr(importlib.import_module(mod), attr), m.id


# Private names that mutants may still reach: none (every mutant goes through a public name).
PRIVATE_ALLOWED: set[str] = set()


def test_no_mutant_reaches_a_private_name():
    """A mutant is a public function called with the formula under test as a keyword (or a patch of a
    public name): no attribute `x._name` of another module, no ref 'module:_name'."""
    import ast
    import re
    from pathlib import Path

    found = []
    for path in sorted((Path(__file__).resolve().parents[1] / "mutants").glob("*.py")):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.Attribute) and node.attr.startswith("_") and not node.attr.startswith("__"):
                found.append(f"{path.name}:{node.lineno}: .{node.attr}")
            if isinstance(node, ast.Constant) and isinstance(node.value, str):
                for name in re.findall(r"^[\w.{}]*:(_\w+)$", node.value):
                    found.append(f"{path.name}:{node.lineno}: :{name}")
            if isinstance(node, ast.JoinedStr):
                text = "".join(v.value for v in node.values if isinstance(v, ast.Constant))
                for name in re.findall(r":(_\w+)$", text):
                    found.append(f"{path.name}:{node.lineno}: :{name}")
    found = [f for f in found if f.split(":")[-1].lstrip(".") not in PRIVATE_ALLOWED]
    assert not found, found


def test_an_inconclusive_reference_judges_only_by_a_new_failing_check():
    """A reference left inconclusive by a judgement call that flips (all its checks ran) still judges a mutant,
    but only by a check that fails under the mutation alone; a crashed or empty reference judges nothing."""
    ref = {"status": "inconclusive", "reason": "judgement check flips", "crashed": False, "failed": ["edge"],
           "checks": ["edge", "hvp"]}
    hit = {"status": "refuted", "failed": ["edge", "hvp"], "crashed": False, "reason": ""}
    same = {"status": "inconclusive", "failed": ["edge"], "crashed": False, "reason": ""}
    assert mutate.judge(ref, hit)[0] and "hvp" in mutate.judge(ref, hit)[1]
    assert not mutate.judge(ref, same)[0]
    assert not mutate.judge(dict(ref, crashed=True), hit)[0]
    assert not mutate.judge(dict(ref, checks=[]), hit)[0]

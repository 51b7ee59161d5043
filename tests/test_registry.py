"""The registry resolves every ``module:function`` ref when it loads: a typo is a one-line error, exit 2."""

from __future__ import annotations

import pytest

from attnverify import cli, registry
from attnverify.registry import RegistryError, load_claims, ref_problem

ENTRY = '''
[[claim]]
id = "X-1"
title = "t"
seed = "s.txt"
equation = "(1)"
statement = "x"
derivations = ["attnverify.derivations.cumulant:quadratic_cumulant_solution"]
checks = [{ref}]
'''


def _toml(tmp_path, ref):
    p = tmp_path / "claims.toml"
    p.write_text(ENTRY.format(ref=f'"{ref}"'))
    return p


def test_every_registered_ref_resolves():
    for c in load_claims():
        for ref in c.functions:
            assert ref_problem(ref) is None, (c.id, ref)


@pytest.mark.parametrize("ref, problem", [
    ("attnverify.checks.closed_forms:order_13", "defines no order_13"),  # the old docstring example
    ("attnverify.checks.closed_form:order_of_13", "no module attnverify.checks.closed_form"),
    ("attnverify.checks.closed_forms.order_of_13", "not of the form"),
    ("nosuchpackage.mod:f", "nosuchpackage"),
])
def test_a_bad_ref_is_a_one_line_error_naming_claim_and_ref(tmp_path, ref, problem):
    with pytest.raises(RegistryError) as e:
        load_claims(_toml(tmp_path, ref))
    msg = str(e.value)
    assert "\n" not in msg and "claim X-1" in msg and repr(ref) in msg and problem in msg, msg


def test_a_good_ref_loads(tmp_path):
    (c,) = load_claims(_toml(tmp_path, "attnverify.checks.closed_forms:order_of_13"))
    assert c.functions == ["attnverify.derivations.cumulant:quadratic_cumulant_solution", "attnverify.checks.closed_forms:order_of_13"]


def test_cli_exits_2_on_a_bad_ref(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(registry, "REGISTRY", _toml(tmp_path, "attnverify.checks.closed_forms:order_13"))
    assert cli.main(["verify", "--no-cache", "--docs", str(tmp_path / "docs")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "order_13" in err and "Traceback" not in err, err

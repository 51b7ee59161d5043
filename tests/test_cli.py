"""Issue 20, item 5: command-line conventions (--version, python -m attnverify, list, unknown --only IDs,
case-insensitive -k, --strict naming the claims, -q/-v on every subcommand, plain-text help, solve --help)."""

import json
import re
import subprocess
import sys
from types import SimpleNamespace

import pytest

from attnverify import __version__, cli
from attnverify.registry import load_claims

PY = sys.executable


def run(*args, **kw):
    return subprocess.run([PY, "-m", "attnverify", *args], capture_output=True, text=True, timeout=120, **kw)


def test_version_and_python_dash_m():
    r = run("--version")
    assert r.returncode == 0 and r.stdout.strip() == f"attnverify {__version__}"
    assert __version__ and __version__ != "0+unknown"  # the installed distribution's version
    r = run("--help")
    assert r.returncode == 0 and "attnverify verify" in r.stdout


@pytest.mark.parametrize("sub", [[], ["verify"], ["regress"], ["solve"], ["sweep"], ["list"]])
def test_help_is_plain_text(sub, capsys):
    with pytest.raises(SystemExit) as e:
        cli.main([*sub, "--help"])
    out = capsys.readouterr().out
    assert e.value.code == 0 and out
    assert "``" not in out and ":func:" not in out and ":math:" not in out  # no reST


@pytest.mark.parametrize("sub", ["verify", "regress", "solve", "sweep", "list"])
def test_quiet_and_verbose_on_every_subcommand(sub):
    p = cli.parser()
    rest = {"solve": ["case.json"], "sweep": ["c.toml"]}.get(sub, [])
    for flag, level in (("-q", -1), ("--quiet", -1), ("-v", 1), ("--verbose", 1)):
        assert p.parse_args([sub, flag, *rest]).verbosity == level
    assert p.parse_args([sub, *rest]).verbosity == 0


def test_solve_help_states_the_problem_conventions_and_every_output_field(tmp_path, capsys):
    with pytest.raises(SystemExit):
        cli.main(["solve", "--help"])
    text = capsys.readouterr().out
    for needle in ("(3)", "(7)", "KL(p || u)", "u is optional (uniform if absent)", "one template per row",
                   "Exit status"):
        assert needle in text, needle
    f = tmp_path / "case.json"
    f.write_text(json.dumps({"templates": [[1, 0], [0, 1]], "z": [0.3, -0.2], "alpha": 0.5}))
    out = json.loads(run("solve", str(f)).stdout)
    assert list(out) == list(cli.SOLVE_FIELDS), "every printed field is documented in solve --help, in order"
    for field in out:
        assert re.search(rf"^\s+{field}\s", text, re.M), field


def _args(**kw):
    return SimpleNamespace(**{"only": None, "k": None, **kw})


def test_k_is_case_insensitive_on_id_and_title():
    claims = load_claims()
    sel = cli._selection(_args(k="fig"))
    assert "FD-FIG4" in [c.id for c in claims if sel(c)] and "FD-FIG3" in [c.id for c in claims if sel(c)]
    title_word = claims[0].title.split()[1].upper()
    assert claims[0] in [c for c in claims if cli._selection(_args(k=title_word))(c)]
    assert [c.id for c in claims if cli._selection(_args(only=["fd-7"]))(c)] == ["FD-7"]


def test_unknown_only_ids_are_named_and_exit_2(tmp_path):
    r = run("verify", "--only", "FD-99", "FD-7", "NOPE", "--docs", str(tmp_path))
    assert r.returncode == 2 and r.stdout == ""
    assert r.stderr.strip() == ("attnverify: error: --only: unknown claim IDs FD-99, NOPE "
                                "(attnverify list shows the IDs)")
    assert not (tmp_path / "results.json").exists()
    r = run("regress", "--only", "FD-99", "--baseline", str(tmp_path / "none.json"))
    assert r.returncode == 2


def test_strict_names_the_claims_that_caused_exit_1(tmp_path, monkeypatch, capsys):
    from attnverify.registry import Claim

    fake = [Claim(id="X-1", title="a", seed="s", equation="(1)", statement="x", status="not-checkable", reason="r"),
            Claim(id="X-2", title="b", seed="s", equation="(2)", statement="y")]  # no functions: inconclusive
    import importlib

    engine = importlib.import_module("attnverify.verify")
    monkeypatch.setattr(engine, "load_claims", lambda: fake)
    monkeypatch.setattr("attnverify.registry.load_claims", lambda: fake)
    rc = cli.main(["verify", "--strict", "--no-cache", "-q", "--docs", str(tmp_path)])
    out, err = capsys.readouterr()
    assert rc == 1
    assert err.strip() == "attnverify: --strict: 1 claim refuted or inconclusive: X-2 (inconclusive)"


def test_list_shows_ids_titles_last_status_and_parts(tmp_path):
    claims = load_claims()
    r = run("list", "--docs", str(tmp_path))
    assert r.returncode == 0 and "no " in r.stderr  # no results yet: said once, on stderr
    lines = r.stdout.splitlines()
    assert len(lines) == len(claims) and lines[0].split()[0] == claims[0].id and claims[0].title in lines[0]
    res = {"claims": [{"id": claims[0].id, "status": "refuted",
                       "parts": [{"id": f"{claims[0].id}/a", "title": "first part", "status": "verified"}]}]}
    (tmp_path / "results.json").write_text(json.dumps(res))
    r = run("list", "--docs", str(tmp_path))
    lines = r.stdout.splitlines()
    assert r.returncode == 0 and r.stderr == ""
    assert lines[0].split()[:2] == [claims[0].id, "refuted"]
    assert lines[1].split()[:3] == [f"{claims[0].id}/a:", "verified", "first"]
    assert run("list", "-q", "--docs", str(tmp_path)).stdout.split() == [c.id for c in claims]


def test_verify_quiet_prints_only_the_summary(tmp_path):
    r = run("verify", "--only", "GOAT-UNIFORM", "-q", "--no-cache", "--docs", str(tmp_path))
    assert r.returncode == 0 and r.stdout.count("\n") == 1 and r.stdout.startswith("wrote ")
    r = run("verify", "--only", "GOAT-UNIFORM", "-v", "--no-cache", "--docs", str(tmp_path))
    assert r.returncode == 0 and "GOAT-UNIFORM (" in r.stdout


def test_solve_quiet_and_verbose(tmp_path):
    f = tmp_path / "case.json"
    f.write_text(json.dumps({"templates": [[1, 0], [0, 1]], "z": [0.3, -0.2], "alpha": 0.5}))
    r = run("solve", "-q", str(f))
    assert r.returncode == 0 and r.stdout == ""
    r = run("solve", "-v", str(f))
    assert r.returncode == 0 and json.loads(r.stdout)["converged"] and "alpha ||grad D||" in r.stderr

"""The result cache: what its key covers, when a stored result is reused, and when it is not."""

from __future__ import annotations

import importlib
import json
import sys
import textwrap

import pytest

from attnverify import cache as C
from attnverify.registry import Claim

# the engine module (the package attribute attnverify.verify is the API function of that name)
verify = importlib.import_module("attnverify.verify")


@pytest.fixture
def project(tmp_path, monkeypatch):
    """A tiny project folder: package fakechk with a check module that imports a helper module."""
    pkg = tmp_path / "fakechk"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "helper.py").write_text("SCALE = 1.0\n")
    (pkg / "unrelated.py").write_text("X = 1\n")
    (pkg / "mod.py").write_text(textwrap.dedent("""
        from pathlib import Path

        from attnverify.evidence import Evidence, Figure
        from attnverify import context

        def log(what):  # every real run leaves a line, so the test can count them
            with open(Path(__file__).parents[1] / "calls.log", "a") as fh:
                fh.write(what + "\\n")

        def f():
            from .helper import SCALE  # a lazy import is followed too
            log("f")
            ev = Evidence()
            ev.check("c", "numeric", "m", 0.5 * SCALE, 1.0, True, "w", key="c")
            return ev

        def with_figure():
            import matplotlib
            matplotlib.use("Agg")
            import matplotlib.pyplot as plt
            log("fig")
            fig, ax = plt.subplots()
            ax.plot([0, 1])
            ev = Evidence()
            ev.figures.append(Figure(context.save_figure(fig, "fake"), "a line"))
            ev.check("c", "numeric", "m", 0.0, 1.0, True, "w", key="c")
            return ev

        def crashes():
            log("crash")
            raise RuntimeError("file half-written")
    """))
    # the project's own attnverify files are hashed from the real tree; fakechk from tmp_path
    monkeypatch.setattr(C, "_module_file", _finder(tmp_path))
    C._file_sha.cache_clear()
    monkeypatch.syspath_prepend(str(tmp_path))
    for m in [m for m in sys.modules if m.startswith("fakechk")]:
        monkeypatch.delitem(sys.modules, m)
    return tmp_path


def calls(project) -> list[str]:
    f = project / "calls.log"
    return f.read_text().split() if f.exists() else []


def _finder(tmp):
    real = C._module_file.__wrapped__

    def find(name):
        if name.startswith("fakechk"):
            base = tmp.joinpath(*name.split("."))
            for p in (base.with_suffix(".py"), base / "__init__.py"):
                if p.is_file():
                    return p
            return None
        return real(name)

    return find


def _claim(*funcs, **kw):
    return Claim(id="X-1", title="t", seed="s", equation="(1)", statement="x", checks=list(funcs), **kw)


def _edit(path, text):
    path.write_text(text)
    C._file_sha.cache_clear()
    C.data_files.cache_clear()


def test_key_follows_the_claims_code_and_nothing_else(project):
    c = _claim("fakechk.mod:f")
    k0 = C.key(c, 1)
    files = C.code_files(["fakechk.mod"])
    assert any(p.endswith("helper.py") for p in files) and any(p.endswith("evidence.py") for p in files)
    assert not any(p.endswith("unrelated.py") for p in files)
    _edit(project / "fakechk" / "unrelated.py", "X = 2\n")
    assert C.key(c, 1) == k0  # a module the claim does not import
    _edit(project / "fakechk" / "helper.py", "SCALE = 2.0\n")
    k1 = C.key(c, 1)
    assert k1 != k0  # imported lazily, inside the function
    assert C.key(c, 2) != k1  # the seed
    assert C.key(_claim("fakechk.mod:f", reason="other"), 1) != k1  # the registry entry


def test_key_follows_the_projects_data_files(project, monkeypatch):
    """A check may read a config such as sweeps/fig4.toml: data files are part of every key."""
    (project / "sweeps").mkdir()
    (project / "docs").mkdir()
    (project / "docs" / "results.json").write_text("{}")
    monkeypatch.setattr(C, "ROOT", project)
    _edit(project / "sweeps" / "run.toml", "n = 1\n")
    c = _claim("fakechk.mod:f")
    k0 = C.key(c, 1)
    assert "sweeps/run.toml" in C.data_files() and not any(p.startswith("docs") for p in C.data_files())
    _edit(project / "docs" / "results.json", "{1}")  # output, not input
    assert C.key(c, 1) == k0
    _edit(project / "sweeps" / "run.toml", "n = 2\n")
    assert C.key(c, 1) != k0
    C.data_files.cache_clear()


def test_key_follows_the_environment(project, monkeypatch):
    c = _claim("fakechk.mod:f")
    k = C.key(c, 1)
    env = dict(C.environment(), distributions=C.environment()["distributions"] + ["numpy==0.0"])
    monkeypatch.setattr(C, "environment", lambda: env)
    assert C.key(c, 1) != k


def _run(claim, tmp, monkeypatch, use_cache=True):
    from attnverify import context

    monkeypatch.setattr(verify, "load_claims", lambda: [claim])
    monkeypatch.setattr(context, "FIGURE_DIR", tmp / "docs" / "figures")
    store = C.Cache(tmp / "cache", docs=tmp / "docs") if use_cache else None
    return verify.run_all(log=lambda s: None, cache=store), store


def test_unchanged_claim_is_reused_changed_one_recomputed(project, monkeypatch):
    claim = _claim("fakechk.mod:f")
    first, _ = _run(claim, project, monkeypatch)
    second, store = _run(claim, project, monkeypatch)
    assert calls(project) == ["f"] and store.hits == ["X-1"]
    strip = lambda r: [dict(c, wall_time_s=0) for c in r["claims"]]
    assert strip(first) == strip(second) and second["run"]["cached"] == ["X-1"]
    _edit(project / "fakechk" / "helper.py", "SCALE = 1.5\n")
    del sys.modules["fakechk.helper"]  # a new process would import the edited file
    third, store = _run(claim, project, monkeypatch)
    assert calls(project) == ["f", "f"] and store.hits == []
    assert third["claims"][0]["checks"][0]["value"] == 0.75
    _run(claim, project, monkeypatch, use_cache=False)  # --no-cache: always runs
    assert calls(project) == ["f", "f", "f"]


def test_missing_or_changed_figure_forces_recomputation(project, monkeypatch):
    claim = _claim("fakechk.mod:with_figure")
    _run(claim, project, monkeypatch)
    _run(claim, project, monkeypatch)
    assert calls(project) == ["fig"]
    png = project / "docs" / "figures" / "fake.png"
    png.unlink()
    _run(claim, project, monkeypatch)
    assert calls(project) == ["fig", "fig"] and png.exists()  # redrawn
    png.write_bytes(b"not the figure")
    _run(claim, project, monkeypatch)
    assert calls(project) == ["fig", "fig", "fig"]


def test_a_crash_is_not_cached(project, monkeypatch):
    claim = _claim("fakechk.mod:crashes")
    r, _ = _run(claim, project, monkeypatch)
    assert r["claims"][0]["status"] == "inconclusive" and "_crashed" not in r["claims"][0]
    _run(claim, project, monkeypatch)
    assert calls(project) == ["crash", "crash"]
    assert not (project / "cache" / "X-1.json").exists()


def test_cache_entry_is_plain_json(project, monkeypatch):
    _run(_claim("fakechk.mod:f"), project, monkeypatch)
    entry = json.loads((project / "cache" / "X-1.json").read_text())
    assert set(entry) == {"key", "inputs", "figures", "result", "result_sha256"} and entry["result"]["id"] == "X-1"

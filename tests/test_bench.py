"""`make bench` end to end on tiny workloads: it runs, writes docs/bench.md, prints the ratio last."""

import re

import numpy as np

from attnverify import bench


def test_bench_writes_its_page_and_prints_the_ratio_last(tmp_path, monkeypatch, capsys):
    generic = bench.generic_workload

    def tiny(n, *args, **kwargs):  # every workload shrunk to 8 templates, 24 queries
        w = generic(8, 6, queries=24, seed=n)
        w.name = f"tiny n={n}"
        return w

    monkeypatch.setattr(bench, "real_model_workload", tiny)
    monkeypatch.setattr(bench, "generic_workload", lambda n, d, *a, **k: tiny(n + d))
    monkeypatch.setattr(bench, "PER_INSTANCE", {k: (f, 2) for k, (f, _) in bench.PER_INSTANCE.items()})
    assert bench.main(["--quick", "--docs", str(tmp_path)]) == 0
    out = capsys.readouterr().out.strip().splitlines()
    assert re.fullmatch(r"speedup_vs_scipy=\d+(\.\d+)?", out[-1])
    page = (tmp_path / "bench.md").read_text()
    assert (tmp_path / "figures" / "bench.png").stat().st_size > 0
    for name in ["batched (attnverify)", *bench.PER_INSTANCE]:
        assert page.count(f"| {name} |") == 6  # one row per workload
    # the printed ratio is the one in the n = 64 slot's table (second workload): L-BFGS-B time / batched time
    section = page.split("## tiny n=64")[1]
    t = {name: float(re.search(rf"\| {re.escape(name)} \| ([\d.]+) \|", section).group(1))
         for name in ("batched (attnverify)", "SciPy L-BFGS-B")}
    ratio = float(out[-1].split("=")[1])
    assert np.isclose(ratio, t["SciPy L-BFGS-B"] / t["batched (attnverify)"], rtol=0.05)

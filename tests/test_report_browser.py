"""docs/report.html as a reader sees it: opened in headless Chromium (Debian's ``chromium``,
installed by ``make browser``), it makes no request that leaves the machine, shows every claim
section and every figure, renders its mathematics (MathML laid out, no raw LaTeX in the visible
text), and a screenshot of a claim section is saved as docs/report.png.

Chromium is driven through the DevTools protocol over ``--remote-debugging-pipe`` (file
descriptors 3 and 4, NUL-separated JSON): no port, no websocket library. Requests are observed
with the protocol's ``Network.requestWillBeSent``, which the browser emits for every request the
page makes (document, images, styles, fonts, scripts, prefetches) with its URL; that is the
question asked ("does the page fetch anything?"), while a net-log (``--log-net-log``) also records
the browser's own housekeeping and would need a parser for its format. The page must request
nothing but ``file:`` and ``data:`` URLs; a test page with a remote image shows the check can fail.
"""

from __future__ import annotations

import base64
import fcntl
import json
import os
import re
import select
import shutil
import subprocess
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
CHROMIUM = shutil.which("chromium") or ("/usr/bin/chromium" if os.path.exists("/usr/bin/chromium") else None)
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-dev-shm-usage", "--remote-debugging-pipe"]
LOCAL = ("file:", "data:", "about:", "blob:")
RAW_LATEX = re.compile(r"\\[A-Za-z]+|\$\$")

pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed (`make browser` installs it)")


class Chromium:
    """Headless Chromium with a DevTools connection over a pipe."""

    def __init__(self, profile: Path):
        cmd_r, self._w = os.pipe()  # we write commands; Chromium reads them on fd 3
        self._r, out_w = os.pipe()  # Chromium writes replies and events on fd 4

        def fds():  # in the child: move the pipe ends to 3 and 4 (via high numbers: no clash)
            a, b = fcntl.fcntl(cmd_r, fcntl.F_DUPFD, 10), fcntl.fcntl(out_w, fcntl.F_DUPFD, 10)
            os.dup2(a, 3)
            os.dup2(b, 4)

        self.log = profile / "chromium.log"
        self.proc = subprocess.Popen([CHROMIUM, *FLAGS, f"--user-data-dir={profile}"], stdin=subprocess.DEVNULL,
                                     stdout=subprocess.DEVNULL, stderr=self.log.open("wb"),
                                     preexec_fn=fds, close_fds=False)
        os.close(cmd_r)
        os.close(out_w)
        self._buf, self._id, self.events = b"", 0, []

    def _message(self, deadline: float) -> dict:
        while b"\0" not in self._buf:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self._r], [], [], left)[0]:
                raise TimeoutError("no answer from Chromium; its log: " + self.log.read_text(errors="replace")[-2000:])
            chunk = os.read(self._r, 1 << 20)
            if not chunk:
                raise EOFError("Chromium closed the pipe; its log: " + self.log.read_text(errors="replace")[-2000:])
            self._buf += chunk
        msg, _, self._buf = self._buf.partition(b"\0")
        return json.loads(msg)

    def call(self, method: str, session: str | None = None, timeout: float = 60, **params):
        self._id += 1
        msg = {"id": self._id, "method": method, "params": params}
        if session:
            msg["sessionId"] = session
        data = json.dumps(msg).encode() + b"\0"
        while data:
            data = data[os.write(self._w, data):]
        deadline = time.monotonic() + timeout
        while True:
            m = self._message(deadline)
            if m.get("id") == self._id:
                if "error" in m:
                    raise RuntimeError(f"{method}: {m['error']}")
                return m["result"]
            self.events.append(m)

    def wait_event(self, method: str, session: str, timeout: float = 60) -> dict:
        deadline = time.monotonic() + timeout
        while True:
            for m in self.events:
                if m.get("method") == method and m.get("sessionId") == session:
                    return m
            self.events.append(self._message(deadline))

    def open(self, path: Path, width: int = 1200) -> tuple[str, list[str]]:
        """Load a file in a fresh tab; returns the tab's session and every URL the page requested."""
        target = self.call("Target.createTarget", url="about:blank")["targetId"]
        s = self.call("Target.attachToTarget", targetId=target, flatten=True)["sessionId"]
        self.call("Network.enable", s)
        self.call("Page.enable", s)
        self.call("Emulation.setDeviceMetricsOverride", s, width=width, height=900, deviceScaleFactor=1, mobile=False)
        self.events.clear()
        self.call("Page.navigate", s, url=path.resolve().as_uri())
        self.wait_event("Page.loadEventFired", s)
        self.call("Runtime.evaluate", s, expression="new Promise(r => setTimeout(r, 300))", awaitPromise=True)
        urls = [m["params"]["request"]["url"] for m in self.events
                if m.get("sessionId") == s and m.get("method") == "Network.requestWillBeSent"]
        urls += [m["params"]["url"] for m in self.events
                 if m.get("sessionId") == s and m.get("method") == "Network.webSocketCreated"]
        return s, urls

    def js(self, session: str, expression: str):
        r = self.call("Runtime.evaluate", session, expression=expression, returnByValue=True, awaitPromise=True)
        if "exceptionDetails" in r:
            raise RuntimeError(r["exceptionDetails"])
        return r["result"].get("value")

    def close(self):
        try:
            self.call("Browser.close", timeout=10)
        except (OSError, EOFError, TimeoutError, RuntimeError):
            pass
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        os.close(self._r)
        os.close(self._w)


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    b = Chromium(tmp_path_factory.mktemp("chromium-profile"))
    yield b
    b.close()


@pytest.fixture(scope="module")
def report(browser):
    if not (DOCS / "report.html").exists():
        pytest.skip("docs/report.html not generated yet (`make verify`)")
    results = json.loads((DOCS / "results.json").read_text())
    session, urls = browser.open(DOCS / "report.html")
    page = browser.js(session, PAGE_FACTS)
    return results, session, urls, page


def remote(urls: list[str]) -> list[str]:
    return [u for u in urls if not u.startswith(LOCAL)]


PAGE_FACTS = """(() => {
  const rect = e => e.getBoundingClientRect();
  const fractions = [...document.querySelectorAll('mfrac')].map(f => {
    const [num, den] = f.children, a = rect(num), b = rect(den);
    return a.height > 0 && b.height > 0 && a.bottom <= b.top + 1;  // numerator laid out above denominator
  });
  const sections = [...document.querySelectorAll('section[id]')].map(s => ({
    id: s.id, steps: s.querySelectorAll('ol.derivation > li').length,
    stepMath: s.querySelectorAll('ol.derivation > li math').length,
    checks: s.querySelectorAll('table.checks tr').length - (s.querySelector('table.checks') ? 1 : 0),
    figures: s.querySelectorAll('figure img').length,
    math: s.querySelectorAll('math').length }));
  const colour = e => getComputedStyle(e).backgroundColor;
  return {
    text: document.body.innerText,
    sections,
    images: [...document.images].map(i => ({ok: i.complete && i.naturalWidth > 0, w: i.naturalWidth})),
    math: document.querySelectorAll('math').length,
    mathHeight: Math.max(0, ...[...document.querySelectorAll('math')].slice(0, 200).map(m => rect(m).height)),
    fractions,
    fallback: document.querySelectorAll('code.latex').length,
    ids: [...document.querySelectorAll('[id]')].map(e => e.id),
    links: [...document.querySelectorAll('a[href^="#"]')].map(a => a.getAttribute('href').slice(1)),
    summary: [...document.querySelectorAll('#summary + table tr')].slice(1).map(tr => ({
      link: tr.querySelector('a') && tr.querySelector('a').getAttribute('href'),
      status: tr.querySelector('.status') && tr.querySelector('.status').textContent,
      colour: tr.querySelector('.status') && colour(tr.querySelector('.status')) })),
    errataRows: document.querySelectorAll('table.errata tr').length,
  };
})()"""


def test_no_request_leaves_the_machine(report):
    _, _, urls, _ = report
    assert any(u.startswith("file:") and u.endswith("report.html") for u in urls), urls  # the log works
    assert remote(urls) == [], f"the report fetched {remote(urls)}"


def test_remote_request_would_be_caught(browser, tmp_path):
    page = tmp_path / "remote.html"
    page.write_text("<!DOCTYPE html><html><body><p>x</p><img src='http://127.0.0.1:9/x.png'></body></html>")
    _, urls = browser.open(page)
    assert remote(urls) == ["http://127.0.0.1:9/x.png"]


def test_every_claim_section_and_figure_is_present(report):
    results, _, _, page = report
    ids = [c["id"].lower() for c in results["claims"]]
    assert [s["id"] for s in page["sections"]] == ids
    by_id = {s["id"]: s for s in page["sections"]}
    for c in results["claims"]:
        s = by_id[c["id"].lower()]
        assert s["steps"] == len(c["derivation"]), c["id"]
        assert s["stepMath"] >= sum(bool(x["latex"]) for x in c["derivation"]), c["id"]
        assert s["checks"] == len(c["checks"]), c["id"]
        assert s["figures"] == len(c["figures"]), c["id"]
        assert s["math"] >= 1, f"{c['id']}: the statement is not rendered"
    n_fig = sum(len(c["figures"]) for c in results["claims"])
    assert len(page["images"]) == n_fig
    assert all(i["ok"] for i in page["images"]), "an embedded figure did not decode"


def test_summary_contents_errata_and_run_metadata(report):
    from attnverify.report import STATUS_COLOUR

    results, _, _, page = report
    assert {"contents", "summary", "errata", "run"} <= set(page["ids"])
    assert set(page["links"]) <= set(page["ids"]), "a link points to no anchor"
    assert [r["link"] for r in page["summary"]] == ["#" + c["id"].lower() for c in results["claims"]]
    for row, c in zip(page["summary"], results["claims"]):
        assert row["status"] == c["status"]
        want = tuple(int(STATUS_COLOUR[c["status"]][i:i + 2], 16) for i in (1, 3, 5))
        assert row["colour"] == "rgb({}, {}, {})".format(*want), (c["id"], row["colour"])
    assert page["errataRows"] == len(results["errata"]) + 1 if results["errata"] else True
    assert f"seed\t{results['run']['seed']}" in page["text"]
    assert "versions" in page["text"]


def test_mathematics_is_rendered(report):
    _, _, _, page = report
    assert page["fallback"] == 0, "latex2mathml could not convert some LaTeX"
    assert page["math"] > 50 and page["mathHeight"] > 10
    assert page["fractions"] and all(page["fractions"]), "MathML fractions are not laid out"
    raw = [page["text"][max(0, m.start() - 40):m.end() + 40] for m in RAW_LATEX.finditer(page["text"])]
    assert raw == [], f"raw LaTeX in the visible text: {raw[:5]}"


def test_raw_latex_would_be_caught(browser, tmp_path):
    page = tmp_path / "raw.html"
    page.write_text(r"<!DOCTYPE html><html><body><p>$$\frac{1}{2}$$</p></body></html>")
    s, _ = browser.open(page)
    assert RAW_LATEX.search(browser.js(s, "document.body.innerText"))


def test_screenshot(report, browser):
    """docs/report.png: the first claim section with a derivation (statement, steps, checks)."""
    results, session, _, _ = report
    browser.call("Page.bringToFront", session)  # a background tab is not painted
    clip = browser.js(session, """(() => {
      const s = [...document.querySelectorAll('section')].find(s => s.querySelector('ol.derivation math'));
      const r = (s || document.body).getBoundingClientRect();
      return {x: 0, y: r.top + window.scrollY - 8, width: 1200, height: Math.min(r.height + 16, 1800), scale: 1};
    })()""")
    shot = browser.call("Page.captureScreenshot", session, format="png", clip=clip, captureBeyondViewport=True)
    png = base64.b64decode(shot["data"])
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 20_000
    (DOCS / "report.png").write_bytes(png)

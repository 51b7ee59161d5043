"""The HTML report as a reader sees it: the site (docs/report.html, the index; docs/claims/*.html,
one page per claim; docs/guide.html) opened in headless Chromium (Debian's ``chromium``, installed
by ``make browser``) at 1300 px and at 420 px wide. No page makes a request that leaves the
machine; every claim page shows its statement, derivation steps, check rows and figures; the
mathematics is laid out (MathML, no raw LaTeX in the visible text); every link lands on a page
and an anchor that exist; no page is wider than the screen (tables scroll in their own box), no
number breaks across lines, the contents list does not overlap itself, and the Errata's printed
and corrected forms get room. Screenshots of the index and of a claim page at both widths are
saved under docs/ (``ATTNVERIFY_DOCS`` points the test at another folder, e.g. a report
generated into /tmp).

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
DOCS = Path(os.environ.get("ATTNVERIFY_DOCS") or ROOT / "docs")
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
        self._buf, self._id, self.events, self.targets = b"", 0, [], {}

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
        self.targets[s] = target
        self.call("Network.enable", s)
        self.call("Page.enable", s)
        self.call("Emulation.setDeviceMetricsOverride", s, width=width, height=900, deviceScaleFactor=1, mobile=False)
        self.events.clear()
        self.call("Page.navigate", s, url=path.resolve().as_uri())
        self.wait_event("Page.loadEventFired", s)
        # fonts loaded and one frame laid out (a fixed wait per page would add up over the site)
        self.call("Runtime.evaluate", s, expression="document.fonts.ready.then(() => new Promise("
                  "r => requestAnimationFrame(() => requestAnimationFrame(r))))", awaitPromise=True)
        urls = [m["params"]["request"]["url"] for m in self.events
                if m.get("sessionId") == s and m.get("method") == "Network.requestWillBeSent"]
        urls += [m["params"]["url"] for m in self.events
                 if m.get("sessionId") == s and m.get("method") == "Network.webSocketCreated"]
        return s, urls

    def close_tab(self, session: str) -> None:
        self.call("Target.closeTarget", targetId=self.targets.pop(session))

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


PAGE_FACTS = """(() => {
  const rect = e => e.getBoundingClientRect();
  const fractions = [...document.querySelectorAll('mfrac')].slice(0, 100).map(f => {
    const [num, den] = f.children, a = rect(num), b = rect(den);
    return a.height > 0 && b.height > 0 && a.bottom <= b.top + 1;  // numerator laid out above denominator
  });
  const s = document.querySelector('main section[id]');
  const section = s && {
    id: s.id, steps: s.querySelectorAll('ol.derivation > li').length,
    stepMath: s.querySelectorAll('ol.derivation > li math').length,
    checks: s.querySelectorAll('table.checks tbody tr').length,
    figures: s.querySelectorAll('figure img').length,
    math: s.querySelectorAll('math').length };
  const colour = e => getComputedStyle(e).backgroundColor;
  const lines = el => {  // distinct line boxes of an element's text
    const r = document.createRange(); r.selectNodeContents(el);
    return new Set([...r.getClientRects()].filter(x => x.width > 0).map(x => Math.round(x.top))).size;
  };
  const numeric = /^[\\u2212+-]?(\\d[\\d.,]*)(e[+-]?\\d+)?$/i;
  const broken = [...document.querySelectorAll('td')].filter(td => numeric.test(td.textContent.trim()))
    .filter(td => lines(td) > 1).map(td => td.textContent.trim());
  const items = [...document.querySelectorAll('nav.sidebar li')].map(rect).filter(r => r.width > 0);
  let overlaps = 0;
  for (let i = 0; i < items.length; i++) for (let j = i + 1; j < items.length; j++) {
    const a = items[i], b = items[j];
    if (Math.min(a.right, b.right) - Math.max(a.left, b.left) > 1 &&
        Math.min(a.bottom, b.bottom) - Math.max(a.top, b.top) > 1) overlaps++;
  }
  return {
    text: document.querySelector('main').innerText,
    section,
    images: [...document.images].map(i => ({ok: i.complete && i.naturalWidth > 0, w: i.naturalWidth})),
    math: document.querySelectorAll('math').length,
    mathHeight: Math.max(0, ...[...document.querySelectorAll('math')].slice(0, 200).map(m => rect(m).height)),
    fractions,
    fallback: document.querySelectorAll('code.latex').length,
    ids: [...document.querySelectorAll('[id]')].map(e => e.id),
    links: [...document.querySelectorAll('a[href]')].map(a => a.getAttribute('href')),
    summary: [...document.querySelectorAll('table.summary tbody tr')].map(tr => ({
      part: tr.classList.contains('part'),
      link: tr.querySelector('a') && tr.querySelector('a').getAttribute('href'),
      status: tr.querySelector('.status') && tr.querySelector('.status').textContent,
      colour: tr.querySelector('.status') && colour(tr.querySelector('.status')),
      indent: parseFloat(getComputedStyle(tr.children[0]).paddingLeft) })),
    errata: [...document.querySelectorAll('table.errata tbody tr')].map(tr => [rect(tr.children[1]).width,
                                                                               rect(tr.children[2]).width]),
    overflow: document.documentElement.scrollWidth - window.innerWidth,
    broken, overlaps, sidebar: items.length,
    permalinks: document.querySelectorAll('a.permalink').length,
    top: document.querySelectorAll('a[href="#top"]').length,
    prev: !!document.querySelector('a[rel=prev]'), next: !!document.querySelector('a[rel=next]'),
  };
})()"""


def _pages(results: dict) -> list[str]:
    return ["report.html", *[f"claims/{c['id']}.html" for c in results["claims"]], "guide.html"]


def _facts(browser, rel, width: int, narrow: int | None = None):
    """The page's facts at ``width`` (and, relaid in the same tab, at ``narrow``) and its requests."""
    session, urls = browser.open(DOCS / rel, width=width)
    try:
        wide = browser.js(session, PAGE_FACTS)
        if narrow is None:
            return wide, urls
        browser.call("Emulation.setDeviceMetricsOverride", session, width=narrow, height=900,
                     deviceScaleFactor=1, mobile=False)
        browser.js(session, "new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r)))")
        return wide, browser.js(session, PAGE_FACTS), urls
    finally:
        browser.close_tab(session)


@pytest.fixture(scope="module")
def site(browser):
    if not (DOCS / "report.html").exists():
        pytest.skip(f"{DOCS}/report.html not generated yet (`make verify`)")
    results = json.loads((DOCS / "results.json").read_text())
    wide, narrow = {}, {}
    for rel in _pages(results):
        w, n, urls = _facts(browser, rel, 1300, 420)
        wide[rel], narrow[rel] = (w, urls), (n, urls)
    return results, wide, narrow


def remote(urls: list[str]) -> list[str]:
    return [u for u in urls if not u.startswith(LOCAL)]


def test_no_request_leaves_the_machine(site):
    results, wide, _ = site
    for rel, (_, urls) in wide.items():
        assert any(u.startswith("file:") and u.endswith(rel.split("/")[-1]) for u in urls), urls  # the log works
        assert remote(urls) == [], f"{rel} fetched {remote(urls)}"


def test_remote_request_would_be_caught(browser, tmp_path):
    page = tmp_path / "remote.html"
    page.write_text("<!DOCTYPE html><html><body><p>x</p><img src='http://127.0.0.1:9/x.png'></body></html>")
    _, urls = browser.open(page)
    assert remote(urls) == ["http://127.0.0.1:9/x.png"]


def test_every_claim_page_and_figure_is_present(site):
    results, wide, _ = site
    for c in results["claims"]:
        page, _ = wide[f"claims/{c['id']}.html"]
        s = page["section"]
        assert s and s["id"] == c["id"].lower(), c["id"]
        assert s["steps"] == len(c["derivation"]), c["id"]
        assert s["stepMath"] >= sum(bool(x["latex"]) for x in c["derivation"]), c["id"]
        assert s["checks"] == len(c["checks"]), c["id"]
        assert s["figures"] == len(c["figures"]), c["id"]
        assert s["math"] >= 1, f"{c['id']}: the statement is not rendered"
        assert len(page["images"]) == len(c["figures"])
        assert all(i["ok"] for i in page["images"]), f"{c['id']}: a figure did not load"


def test_summary_lists_claims_and_their_parts(site):
    from attnverify.report import STATUS_COLOUR

    results, wide, _ = site
    page, _ = wide["report.html"]
    assert {"summary", "errata", "papers", "run", "top"} <= set(page["ids"])
    claims = [r for r in page["summary"] if not r["part"]]
    parts = [r for r in page["summary"] if r["part"]]
    assert [r["link"] for r in claims] == [f"claims/{c['id']}.html" for c in results["claims"]]
    assert len(parts) == sum(len(c.get("parts") or []) for c in results["claims"])
    assert all(p["indent"] > claims[0]["indent"] for p in parts), "parts are not indented under their claim"
    for row, c in zip(claims, results["claims"]):
        assert row["status"] == c["status"]
        want = tuple(int(STATUS_COLOUR[c["status"]][i:i + 2], 16) for i in (1, 3, 5))
        assert row["colour"] == "rgb({}, {}, {})".format(*want), (c["id"], row["colour"])
    assert len(page["errata"]) == len(results["errata"])
    assert f"seed\t{results['run']['seed']}" in page["text"]
    assert "versions" in page["text"]


def test_every_link_lands(site):
    """Every link to a page of the site names a file that exists and an anchor on it."""
    _, wide, _ = site
    ids = {rel: set(p["ids"]) for rel, (p, _) in wide.items()}
    dup = {rel: sorted({i for i in p["ids"] if p["ids"].count(i) > 1}) for rel, (p, _) in wide.items()}
    assert {k: v for k, v in dup.items() if v} == {}, "an id is used twice on a page"
    bad = []
    for rel, (page, _) in wide.items():
        for href in page["links"]:
            path, _, frag = href.partition("#")
            if path.endswith(".md") or "://" in path:  # the other docs pages, written by other tools
                continue
            target = os.path.normpath(os.path.join(os.path.dirname(rel), path)) if path else rel
            if target not in ids and not target.endswith(".html") and (DOCS / target).exists():
                continue  # a file beside the report (results.json, a figure)
            if target not in ids:
                bad.append(f"{rel}: {href} (no page {target})")
            elif frag and frag not in ids[target]:
                bad.append(f"{rel}: {href} (no #{frag} on {target})")
    assert bad == [], bad[:10]


def test_navigation(site):
    results, wide, _ = site
    rels = [f"claims/{c['id']}.html" for c in results["claims"]]
    for i, rel in enumerate(rels):
        page, _ = wide[rel]
        assert page["sidebar"] >= len(rels), f"{rel}: no sidebar"
        assert page["prev"] == (i > 0) and page["next"] == (i < len(rels) - 1), rel
        assert page["top"] >= 1 and page["permalinks"] >= 1, rel
    index, _ = wide["report.html"]
    assert index["permalinks"] >= 4 and index["top"] >= 4


def test_mathematics_is_rendered(site):
    _, wide, _ = site
    total = 0
    for rel, (page, _) in wide.items():
        assert page["fallback"] == 0, f"{rel}: latex2mathml could not convert some LaTeX"
        assert all(page["fractions"]), f"{rel}: MathML fractions are not laid out"
        raw = [page["text"][max(0, m.start() - 40):m.end() + 40] for m in RAW_LATEX.finditer(page["text"])]
        assert raw == [], f"{rel}: raw LaTeX in the visible text: {raw[:5]}"
        total += page["math"]
    assert total > 50


def test_raw_latex_would_be_caught(browser, tmp_path):
    page = tmp_path / "raw.html"
    page.write_text(r"<!DOCTYPE html><html><body><main><p>$$\frac{1}{2}$$</p></main></body></html>")
    s, _ = browser.open(page)
    assert RAW_LATEX.search(browser.js(s, "document.body.innerText"))


@pytest.mark.parametrize("width", [1300, 420])
def test_layout(site, width):
    """No page wider than the screen, no number broken across lines, no overlap in the contents."""
    _, wide, narrow = site
    for rel, (page, _) in (wide if width == 1300 else narrow).items():
        assert page["overflow"] <= 1, f"{rel} at {width} px is {page['overflow']} px wider than the screen"
        assert page["broken"] == [], f"{rel} at {width} px: numbers broken across lines: {page['broken'][:5]}"
        assert page["overlaps"] == 0, f"{rel} at {width} px: the contents list overlaps itself"
    for printed, corrected in (wide if width == 1300 else narrow)["report.html"][0]["errata"]:
        assert min(printed, corrected) >= 300, f"the Errata squeeze the formulas at {width} px"


def test_layout_checks_would_fail(browser, tmp_path):
    """A page wider than the screen, a number broken in two and overlapping items are caught."""
    page = tmp_path / "bad.html"
    page.write_text("<!DOCTYPE html><html><body><main><table><tr><td style='width:3ch;overflow-wrap:anywhere'>"
                    "0.123456789</td></tr></table><div style='width:900px'>wide</div></main>"
                    "<nav class='sidebar'><ul><li style='position:absolute;top:0'>a</li>"
                    "<li style='position:absolute;top:2px'>b</li></ul></nav></body></html>")
    facts, _ = _facts(browser, page, 420)
    assert facts["overflow"] > 1 and facts["broken"] == ["0.123456789"] and facts["overlaps"] == 1


SHOTS = {"report-index.png": ("report.html", 1300), "report-index-narrow.png": ("report.html", 420),
         "report.png": (None, 1300), "report-narrow.png": (None, 420)}


@pytest.mark.parametrize("name", SHOTS)
def test_screenshot(site, browser, name):
    """Screenshots under docs/: the index and a claim page (the first with parts, else the first
    with a derivation), each at 1300 and 420 px, the top 1800 px of the page."""
    results, _, _ = site
    rel, width = SHOTS[name]
    if rel is None:
        c = next((c for c in results["claims"] if c.get("parts")), None) or \
            next(c for c in results["claims"] if c["derivation"])
        rel = f"claims/{c['id']}.html"
    session, _ = browser.open(DOCS / rel, width=width)
    try:
        browser.call("Page.bringToFront", session)  # a background tab is not painted
        h = browser.js(session, "document.documentElement.scrollHeight")
        clip = {"x": 0, "y": 0, "width": width, "height": min(h, 1800), "scale": 1}
        shot = browser.call("Page.captureScreenshot", session, format="png", clip=clip, captureBeyondViewport=True)
    finally:
        browser.close_tab(session)
    png = base64.b64decode(shot["data"])
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 20_000
    (DOCS / name).write_bytes(png)

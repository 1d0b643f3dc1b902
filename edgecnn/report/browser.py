"""Open a report in headless Chromium and say what a reader's browser saw: console errors, network requests,
dialogs, image sizes, sections, load time and a screenshot.

Chromium is driven through the DevTools protocol over ``--remote-debugging-pipe`` (NUL-separated JSON on file
descriptors 3 and 4): no TCP port to race for and no websocket package to install. The tests and
``benchmarks/report_render.py`` use it; it needs Debian's ``chromium`` (or any Chromium / Chrome binary).
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import json
import os
import select
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edgecnn.errors import EdgeCNNError, MissingDependencyError

BROWSERS = ("chromium", "chromium-browser", "google-chrome", "chrome")

# What the page reports about itself once loaded: every <img> and <svg> with its rendered size, the sections.
_PROBE = """(() => {
  const imgs = [...document.images].map(i => ({tag: 'img', alt: i.alt, w: i.naturalWidth, h: i.naturalHeight,
                                               complete: i.complete}));
  const svgs = [...document.querySelectorAll('svg')].filter(s => !s.parentElement.closest('svg')).map(s => {
    const r = s.getBoundingClientRect();
    return {tag: 'svg', alt: s.getAttribute('aria-label') || '', w: r.width, h: r.height, complete: true};
  });
  const paint = performance.getEntriesByType('paint').map(p => [p.name, p.startTime]);
  const nav = performance.getEntriesByType('navigation')[0];
  return JSON.stringify({
    title: document.title,
    sections: [...document.querySelectorAll('section[id]')].map(s => s.id),
    headings: [...document.querySelectorAll('h1, h2')].map(h => h.textContent.trim()),
    images: imgs.concat(svgs),
    text: document.body.innerText,
    paint: Object.fromEntries(paint),
    load_event_ms: nav ? nav.loadEventEnd : null,
    dom_content_loaded_ms: nav ? nav.domContentLoadedEventEnd : null,
    page_height: document.documentElement.scrollHeight,
    scripted: document.documentElement.classList.contains('js'),
  });
})()"""


class BrowserError(EdgeCNNError):
    """Chromium did not start, answered an error, or went quiet."""


def find_browser() -> str | None:
    """The first Chromium-family binary on PATH (``EDGECNN_CHROMIUM`` overrides)."""
    env = os.environ.get("EDGECNN_CHROMIUM")
    if env:
        return shutil.which(env) or (env if Path(env).is_file() else None)
    return next((p for p in map(shutil.which, BROWSERS) if p), None)


@dataclass(kw_only=True)
class PageReport:
    """What one load of a page showed."""

    url: str
    title: str = ""
    sections: list[str] = field(default_factory=list)
    headings: list[str] = field(default_factory=list)
    images: list[dict[str, Any]] = field(default_factory=list)
    text: str = ""
    console_errors: list[str] = field(default_factory=list)
    requests: list[str] = field(default_factory=list)
    dialogs: list[str] = field(default_factory=list)
    load_ms: float = 0.0  # Page.navigate → load event, wall clock seen from here
    paint: dict[str, float] = field(default_factory=dict)
    load_event_ms: float | None = None
    page_height: int = 0
    scripted: bool = False  # the page's own script ran (it marks <html class="js">)
    screenshot: Path | None = None
    evaluated: Any = None  # what ``open(..., evaluate=JS)`` returned

    @property
    def other_requests(self) -> list[str]:
        """Requests for anything but the page itself and its inline ``data:`` URIs."""
        return [u for u in self.requests if u != self.url and not u.startswith("data:")]


class Chromium:
    """One headless Chromium process (use as a context manager); :meth:`open` loads a file and reports."""

    def __init__(self, binary: str | None = None, *, width: int = 1280, height: int = 900, timeout: float = 60) -> None:
        self.binary = binary or find_browser()
        if not self.binary:
            raise MissingDependencyError(
                "no Chromium binary found", hint="apt-get install chromium (or set EDGECNN_CHROMIUM)"
            )
        self.width, self.height, self.timeout = width, height, timeout
        self._next_id = 0
        self._buf = b""
        self._events: list[dict[str, Any]] = []
        self._dialogs: list[tuple[str | None, str]] = []
        self.version = "?"  # Browser.getVersion's product, once started

    def __enter__(self) -> Chromium:
        self._profile = tempfile.mkdtemp(prefix="edgecnn-chromium-")
        to_child_r, self._to_child = os.pipe()
        self._from_child, from_child_w = os.pipe()
        # Copies above fd 9, so that moving them onto 3 and 4 in the child cannot overwrite one with the other. Once
        # both pipes exist, fds 3 and 4 are open here (pipes take the lowest free numbers), as pass_fds requires.
        high = [fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 10) for fd in (to_child_r, from_child_w)]
        os.close(to_child_r)
        os.close(from_child_w)

        def _fds() -> None:  # in the child: the protocol reads fd 3 and writes fd 4
            os.dup2(high[0], 3)
            os.dup2(high[1], 4)

        args = [
            self.binary,
            "--headless=new",
            "--no-sandbox",  # CI runs as root, where Chromium's sandbox refuses to start
            "--remote-debugging-pipe",
            f"--user-data-dir={self._profile}",
            "--disable-gpu",
            "--no-first-run",
            "--no-default-browser-check",
            "--disable-extensions",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-dev-shm-usage",
            "--hide-scrollbars",
            "--mute-audio",
            f"--window-size={self.width},{self.height}",
            "about:blank",
        ]
        self._proc = subprocess.Popen(
            args, preexec_fn=_fds, pass_fds=(3, 4), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )
        for fd in high:
            os.close(fd)
        try:
            self.version = self.call("Browser.getVersion").get("product", "?")
        except BrowserError:
            self.__exit__(None, None, None)
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        try:
            if self._proc.poll() is None:
                try:
                    self._send("Browser.close", {}, None)
                    self._proc.wait(timeout=10)
                except (OSError, subprocess.TimeoutExpired, BrowserError):
                    self._proc.kill()
                    self._proc.wait(timeout=10)
        finally:
            for fd in (self._to_child, self._from_child):
                with contextlib.suppress(OSError):
                    os.close(fd)
            if self._proc.stderr:
                self._proc.stderr.close()
            shutil.rmtree(self._profile, ignore_errors=True)

    # -- protocol ------------------------------------------------------------------------------------------------

    def _send(self, method: str, params: dict[str, Any], session: str | None) -> int:
        self._next_id += 1
        msg: dict[str, Any] = {"id": self._next_id, "method": method, "params": params}
        if session:
            msg["sessionId"] = session
        os.write(self._to_child, json.dumps(msg).encode() + b"\0")
        return self._next_id

    def _read(self, deadline: float) -> dict[str, Any]:
        while b"\0" not in self._buf:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self._from_child], [], [], left)[0]:
                raise BrowserError(f"Chromium did not answer within {self.timeout:.0f} s")
            chunk = os.read(self._from_child, 1 << 20)
            if not chunk:
                err = self._proc.stderr.read().decode(errors="replace")[-500:] if self._proc.stderr else ""
                raise BrowserError(f"Chromium exited: {err.strip() or 'no message'}")
            self._buf += chunk
        raw, self._buf = self._buf.split(b"\0", 1)
        return json.loads(raw)

    def call(self, method: str, params: dict[str, Any] | None = None, session: str | None = None) -> dict[str, Any]:
        """Send one command and wait for its answer; events that arrive meanwhile are kept for :meth:`wait_for`."""
        msg_id = self._send(method, params or {}, session)
        deadline = time.monotonic() + self.timeout
        while True:
            msg = self._read(deadline)
            if msg.get("id") == msg_id:
                if "error" in msg:
                    raise BrowserError(f"{method}: {msg['error'].get('message')}")
                return msg.get("result", {})
            self._incoming(msg)

    def wait_for(self, method: str, session: str | None = None) -> dict[str, Any]:
        """The next event named ``method`` (earlier events stay queued)."""
        deadline = time.monotonic() + self.timeout
        while True:
            for i, ev in enumerate(self._events):
                if ev.get("method") == method and (session is None or ev.get("sessionId") == session):
                    return self._events.pop(i)
            self._incoming(self._read(deadline))

    def _incoming(self, msg: dict[str, Any]) -> None:
        """Queue an event; a dialog (alert, confirm) is answered at once, or it would block the page's load."""
        if msg.get("method") == "Page.javascriptDialogOpening":
            p = msg.get("params", {})
            self._dialogs.append((msg.get("sessionId"), f"{p.get('type')}: {p.get('message')}"))
            self._send("Page.handleJavaScriptDialog", {"accept": True}, msg.get("sessionId"))
        elif "method" in msg:
            self._events.append(msg)

    # -- pages ---------------------------------------------------------------------------------------------------

    def open(
        self, path: Path, *, screenshot: Path | None = None, evaluate: str | None = None, settle_s: float = 0.2
    ) -> PageReport:
        """Load ``path`` in a fresh tab; collect what it logged and requested, probe its images, optionally run the
        JavaScript expression ``evaluate`` in the page (its JSON-able value lands in ``evaluated``) and save a
        full-page PNG screenshot."""
        url = Path(path).resolve().as_uri()
        target = self.call("Target.createTarget", {"url": "about:blank"})["targetId"]
        sid = self.call("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
        for domain in ("Page", "Runtime", "Log", "Network"):
            self.call(f"{domain}.enable", {}, sid)
        self.call(
            "Emulation.setDeviceMetricsOverride",
            {"width": self.width, "height": self.height, "deviceScaleFactor": 1, "mobile": False},
            sid,
        )
        self._events.clear()
        t0 = time.perf_counter()
        self.call("Page.navigate", {"url": url}, sid)
        self.wait_for("Page.loadEventFired", sid)
        load_ms = (time.perf_counter() - t0) * 1e3
        time.sleep(settle_s)  # late console messages (a script error after load) still count
        probe = json.loads(
            self.call("Runtime.evaluate", {"expression": _PROBE, "returnByValue": True}, sid)["result"]["value"]
        )
        report = PageReport(
            url=url,
            title=probe["title"],
            sections=probe["sections"],
            headings=probe["headings"],
            images=probe["images"],
            text=probe["text"],
            load_ms=load_ms,
            paint=probe["paint"],
            load_event_ms=probe["load_event_ms"],
            page_height=int(probe["page_height"]),
            scripted=bool(probe["scripted"]),
        )
        if evaluate is not None:
            res = self.call("Runtime.evaluate", {"expression": evaluate, "returnByValue": True}, sid)
            if "exceptionDetails" in res:
                raise BrowserError(f"evaluate: {res['exceptionDetails'].get('text', 'exception')}")
            report.evaluated = res["result"].get("value")
        if screenshot is not None:
            height = max(self.height, min(report.page_height, 16000))
            self.call(
                "Emulation.setDeviceMetricsOverride",
                {"width": self.width, "height": height, "deviceScaleFactor": 1, "mobile": False},
                sid,
            )
            shot = self.call("Page.captureScreenshot", {"format": "png", "captureBeyondViewport": True}, sid)
            screenshot.parent.mkdir(parents=True, exist_ok=True)
            screenshot.write_bytes(base64.b64decode(shot["data"]))
            report.screenshot = screenshot
        self._drain(report, sid)
        self.call("Target.closeTarget", {"targetId": target})
        return report

    def _drain(self, report: PageReport, sid: str) -> None:
        """Sort the queued events of this tab into the report (answering any dialog so the page is not stuck)."""
        events, self._events = self._events, []
        for ev in events:
            if ev.get("sessionId") != sid:
                continue
            method, p = ev.get("method"), ev.get("params", {})
            if method == "Network.requestWillBeSent":
                report.requests.append(p["request"]["url"])
            elif method == "Runtime.consoleAPICalled" and p.get("type") in ("error", "assert"):
                report.console_errors.append(" ".join(str(a.get("value", a.get("description", ""))) for a in p["args"]))
            elif method == "Runtime.exceptionThrown":
                d = p["exceptionDetails"]
                report.console_errors.append(d.get("exception", {}).get("description") or d.get("text", "exception"))
            elif method == "Log.entryAdded" and p["entry"].get("level") == "error":
                report.console_errors.append(p["entry"].get("text", ""))
        report.dialogs += [text for s, text in self._dialogs if s == sid]
        self._dialogs = [(s, text) for s, text in self._dialogs if s != sid]


def render_report(path: Path, *, screenshot: Path | None = None, loads: int = 1) -> list[PageReport]:
    """Load ``path`` ``loads`` times in one headless Chromium (a fresh tab each time); screenshot the first load."""
    out = []
    with Chromium() as browser:
        for i in range(loads):
            out.append(browser.open(path, screenshot=screenshot if i == 0 else None))
    return out

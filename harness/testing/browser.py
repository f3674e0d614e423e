"""Drive a headless Chromium over the DevTools protocol: load a report, check it, screenshot it.

Used by the report's browser test (tests/test_report_browser.py) and by
benchmarks/report_demo.py, which makes the README's screenshot.

Why the DevTools protocol and not Selenium or Playwright: it needs only the
``chromium`` binary and the small pure-Python ``websocket-client`` (a dev
dependency, imported at first use), it reports exactly what the test asserts
on (uncaught exceptions, console errors, failed loads), and nothing in it can
ever try to download a browser.

Part of the test kit (``harness.report.browser`` is kept for compatibility).
"""

from __future__ import annotations

import base64
import json
import shutil
import subprocess
import time
import urllib.request
from pathlib import Path

#: Flags for a headless browser on a closed network: no sandbox (we run as root), no GPU, and
#: none of the background connections (updates, sync, field trials) that would fail here.
FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--disable-default-apps", "--disable-extensions", "--hide-scrollbars", "--mute-audio",
]


def find_chromium() -> str | None:
    """The path of a Chromium or Chrome binary on PATH, or None."""
    return next((p for p in map(shutil.which, ("chromium", "chromium-browser", "google-chrome")) if p), None)


class Browser:
    """One headless Chromium with a fresh profile, and a DevTools session on its first page.

    Close it with `close` (or use it as a context manager): it owns a browser process.
    """

    def __init__(self, profile: Path, width: int = 1360, height: int = 1000, chromium: str | None = None):
        try:
            import websocket
        except ImportError:
            raise RuntimeError("driving chromium needs websocket-client (pip install -e '.[dev]')") from None
        binary = chromium or find_chromium()
        if binary is None:
            raise RuntimeError("no chromium on PATH (on Debian: apt-get install chromium)")
        self.profile = Path(profile)
        self.width = width
        self.process = subprocess.Popen(
            [binary, *FLAGS, f"--user-data-dir={self.profile}", "--remote-debugging-port=0",
             f"--window-size={width},{height}", "about:blank"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        self.events: list[dict] = []
        self._next_id = 0
        self.socket = None
        try:
            port = self._wait_for_port()
            self.socket = websocket.create_connection(self._page_url(port), timeout=30, suppress_origin=True)
        except BaseException:
            self.close()
            raise

    def __enter__(self) -> Browser:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    def _wait_for_port(self, timeout_s: float = 30.0) -> int:
        """Chromium writes the port it picked to DevToolsActivePort in the profile."""
        marker = self.profile / "DevToolsActivePort"
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"chromium exited with code {self.process.returncode} before listening")
            if marker.is_file() and marker.read_text().strip():
                return int(marker.read_text().split()[0])
            time.sleep(0.05)
        raise TimeoutError(f"chromium did not open its DevTools port within {timeout_s} s")

    @staticmethod
    def _page_url(port: int) -> str:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=10) as response:
            targets = json.load(response)
        return next(t["webSocketDebuggerUrl"] for t in targets if t["type"] == "page")

    def send(self, method: str, **params) -> dict:
        """Call a DevTools method and return its result; events arriving meanwhile are kept."""
        self._next_id += 1
        call_id = self._next_id
        self.socket.send(json.dumps({"id": call_id, "method": method, "params": params}))
        while True:
            message = json.loads(self.socket.recv())
            if message.get("id") == call_id:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                return message.get("result", {})
            self.events.append(message)

    def wait_for(self, event: str, timeout_s: float = 30.0) -> dict:
        """The first ``event`` seen so far, or the next one to arrive within ``timeout_s``."""
        deadline = time.monotonic() + timeout_s
        for seen in self.events:
            if seen.get("method") == event:
                return seen
        while time.monotonic() < deadline:
            self.socket.settimeout(max(0.1, deadline - time.monotonic()))
            message = json.loads(self.socket.recv())
            self.events.append(message)
            if message.get("method") == event:
                return message
        raise TimeoutError(f"no {event} within {timeout_s} s")

    def load(self, page: Path) -> None:
        """Open a local file with events on (so `problems` sees everything) and wait for its load event."""
        for domain in ("Page", "Runtime", "Log"):
            self.send(f"{domain}.enable")
        self.send("Page.navigate", url=Path(page).resolve().as_uri())
        self.wait_for("Page.loadEventFired")

    def evaluate(self, expression: str):
        """The value of a JavaScript expression in the page (promises awaited)."""
        result = self.send("Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True)
        if "exceptionDetails" in result:
            raise RuntimeError(f"page script failed: {result['exceptionDetails']}")
        return result["result"].get("value")

    def screenshot(self, top: float = 0, height: float | None = None, max_height: int = 2400) -> bytes:
        """A PNG of the page's band from ``top`` (CSS px), the window's width wide.

        ``height`` defaults to the rest of the page; either way at most ``max_height``.
        """
        metrics = self.send("Page.getLayoutMetrics")
        rest = int(metrics["cssContentSize"]["height"] - top)
        band = min(rest if height is None else min(int(height), rest), max_height)
        shot = self.send("Page.captureScreenshot", format="png", captureBeyondViewport=True,
                         clip={"x": 0, "y": top, "width": self.width, "height": band, "scale": 1})
        return base64.b64decode(shot["data"])

    def problems(self) -> list[str]:
        """Uncaught exceptions, console errors and warnings, and browser log errors (failed loads, CSP)."""
        found = []
        for event in self.events:
            method, params = event.get("method"), event.get("params", {})
            if method == "Runtime.exceptionThrown":
                found.append(f"exception: {params['exceptionDetails'].get('text')}")
            elif method == "Runtime.consoleAPICalled" and params.get("type") in ("error", "warning", "assert"):
                found.append(f"console.{params['type']}: {[a.get('value') for a in params.get('args', [])]}")
            elif method == "Log.entryAdded" and params["entry"].get("level") in ("error", "warning"):
                found.append(f"log {params['entry']['level']}: {params['entry'].get('text')} {params['entry'].get('url', '')}")
        return found

    def close(self) -> None:
        """Close the DevTools session and end the browser process."""
        if self.socket is not None:
            self.socket.close()
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

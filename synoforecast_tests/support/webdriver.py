"""A minimal W3C WebDriver client (httpx) for Debian's chromium-driver: enough to open a page
of the Dagster UI, click what a user clicks and read what the page shows. No selenium
(one more dependency for five HTTP calls)."""

from __future__ import annotations

import base64
import shutil
import socket
import subprocess
import time
from pathlib import Path

import httpx

from synoforecast_tests.support.processes import stop

CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--window-size=1600,1200",
]


def available() -> tuple[str, str] | None:
    """(chromedriver, chromium) when both are installed."""
    driver = shutil.which("chromedriver")
    browser = next((found for name in ("chromium", "chromium-browser") if (found := shutil.which(name))), None)
    return (driver, browser) if driver and browser else None


class Browser:
    def __init__(self, driver: str, browser: str, profile: Path):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        self._proc = subprocess.Popen([driver, f"--port={port}"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self._base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"{self._base}/status", timeout=2).json()["value"]["ready"]:
                    break
            except (httpx.HTTPError, KeyError, ValueError):
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("chromedriver did not start")
            time.sleep(0.2)
        caps = {
            "capabilities": {
                "alwaysMatch": {
                    "browserName": "chrome",
                    "goog:chromeOptions": {"binary": browser, "args": [*CHROMIUM_ARGS, f"--user-data-dir={profile}"]},
                }
            }
        }
        session = httpx.post(f"{self._base}/session", json=caps, timeout=120).json()["value"]
        self._session = f"{self._base}/session/{session['sessionId']}"

    def _call(self, method: str, path: str, body: dict | None = None):
        answer = httpx.request(method, self._session + path, json=body, timeout=120).json()
        value = answer.get("value")
        if isinstance(value, dict) and "error" in value:
            raise RuntimeError(f"webdriver {path}: {value['error']}: {value.get('message', '')[:300]}")
        return value

    def open(self, url: str) -> None:
        self._call("POST", "/url", {"url": url})

    def script(self, source: str, *args):
        return self._call("POST", "/execute/sync", {"script": source, "args": list(args)})

    def text(self) -> str:
        return self.script("return document.body.innerText")

    def wait_for_text(self, wanted: str, timeout_s: float = 60) -> str:
        deadline = time.monotonic() + timeout_s
        while True:
            text = self.text()
            if wanted in text or time.monotonic() > deadline:
                return text
            time.sleep(0.5)

    def click_text(self, text: str, selector: str = "*") -> bool:
        """Click the last element matching ``selector`` whose own text is exactly ``text``."""
        return self.script(
            "const [sel, want] = arguments;"
            "const els = [...document.querySelectorAll(sel)].filter(e => e.innerText && e.innerText.trim() === want"
            " && (sel !== '*' || e.children.length === 0));"
            "if (!els.length) return false; els[els.length - 1].click(); return true;",
            selector,
            text,
        )

    def screenshot(self, path: Path) -> None:
        path.write_bytes(base64.b64decode(self._call("GET", "/screenshot")))

    def close(self) -> None:
        try:
            httpx.delete(self._session, timeout=30)
        finally:
            stop(self._proc)

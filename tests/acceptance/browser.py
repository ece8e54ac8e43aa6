"""Headless Chromium (Debian's ``chromium``) driven over the DevTools protocol: a few commands
on one WebSocket, no driver binary and no browser download.

Chromium picks a free debugging port itself (``--remote-debugging-port=0``) and writes it to
``DevToolsActivePort`` in its profile directory; one page is attached in flat mode, so every
command travels on the browser's socket with the page's ``sessionId``.
"""

from __future__ import annotations

import base64
import itertools
import json
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Callable
from contextlib import suppress
from pathlib import Path
from typing import Any

from websockets.sync.client import ClientConnection, connect

FLAGS = [
    "--headless", "--no-sandbox",  # root, in a container: no user-namespace sandbox
    "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run", "--no-default-browser-check",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--disable-extensions", "--disable-default-apps", "--mute-audio", "--password-store=basic",
    "--window-size=1600,1000", "--remote-debugging-port=0", "--remote-allow-origins=*",
]


def chromium_path() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


class BrowserError(AssertionError):
    pass


class Chromium:
    """One headless Chromium in its own process group with one page."""

    def __init__(self, profile: Path, log: Path, executable: str) -> None:
        self.profile = profile
        self.log = log
        self.executable = executable
        self.process: subprocess.Popen[bytes] | None = None
        self.socket: ClientConnection | None = None
        self.session: str | None = None
        self._ids = itertools.count(1)

    # ------------------------------------------------------------------ lifecycle

    def start(self, timeout: float = 30) -> Chromium:
        try:
            return self._start(timeout)
        except BaseException:
            self.stop()  # never leave a browser behind
            raise

    def _start(self, timeout: float) -> Chromium:
        self.profile.mkdir(parents=True, exist_ok=True)
        port_file = self.profile / "DevToolsActivePort"
        port_file.unlink(missing_ok=True)  # a previous browser's, on a reused profile
        # Its crash database and caches go beside the profile, not in the user's home.
        env = {**os.environ, "XDG_CONFIG_HOME": str(self.profile / "config"),
               "XDG_CACHE_HOME": str(self.profile / "cache")}
        with self.log.open("ab") as out:
            self.process = subprocess.Popen(
                [self.executable, *FLAGS, f"--user-data-dir={self.profile}", "about:blank"],
                stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                env=env, start_new_session=True)
        deadline = time.monotonic() + timeout
        lines: list[str] = []
        while len(lines) < 2:
            if self.process.poll() is not None:
                raise BrowserError(f"chromium exited ({self.process.returncode}):\n"
                                   f"{self._log_tail()}")
            if time.monotonic() > deadline:
                raise BrowserError(f"chromium wrote no DevToolsActivePort in {timeout}s:\n"
                                   f"{self._log_tail()}")
            time.sleep(0.05)
            if port_file.exists():
                lines = port_file.read_text().split()
        port, path = lines[0], lines[1]
        self.socket = connect(f"ws://127.0.0.1:{port}{path}", max_size=None,
                              open_timeout=timeout)
        target = self.call("Target.createTarget", url="about:blank")["targetId"]
        self.session = self.call("Target.attachToTarget", targetId=target,
                                 flatten=True)["sessionId"]
        self.call("Page.enable", session=True)
        self.call("Emulation.setDeviceMetricsOverride", session=True, width=1600, height=1000,
                  deviceScaleFactor=1, mobile=False)
        return self

    def stop(self, timeout: float = 10) -> None:
        """Close the socket, end the browser's process group, and wait until none of its
        processes is left: also its crash handlers, which leave the group (found by the
        profile path on their command line)."""
        if self.socket is not None:
            with suppress(Exception):
                self.socket.close()
            self.socket = None
        if self.process is None:
            return
        with suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            with suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=timeout)
        deadline = time.monotonic() + timeout
        while (left := self._leftovers()) and time.monotonic() < deadline:
            time.sleep(0.1)  # they exit once the browser is gone
        for pid in left:
            with suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)

    def _leftovers(self) -> list[int]:
        assert self.process is not None
        mark = str(self.profile).encode()
        pids = []
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                in_group = os.getpgid(int(entry.name)) == self.process.pid
                cmdline = (entry / "cmdline").read_bytes()
            except (OSError, ProcessLookupError):
                continue
            if cmdline and (in_group or mark in cmdline):
                pids.append(int(entry.name))
        return pids

    def __enter__(self) -> Chromium:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _log_tail(self) -> str:
        return self.log.read_text(errors="replace")[-3000:] if self.log.exists() else ""

    # ------------------------------------------------------------------ protocol

    def call(self, method: str, *, session: bool = False, timeout: float = 30,
             **params: Any) -> dict[str, Any]:
        assert self.socket is not None, "chromium is not started"
        message_id = next(self._ids)
        message: dict[str, Any] = {"id": message_id, "method": method, "params": params}
        if session:
            message["sessionId"] = self.session
        self.socket.send(json.dumps(message))
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise BrowserError(f"no answer to {method} within {timeout}s")
            answer = json.loads(self.socket.recv(timeout=remaining))
            if answer.get("id") != message_id:
                continue  # an event, or the answer to nothing we wait for
            if "error" in answer:
                raise BrowserError(f"{method}: {answer['error']}")
            return answer.get("result", {})

    # ------------------------------------------------------------------ the page

    def open(self, url: str) -> None:
        result = self.call("Page.navigate", session=True, url=url)
        if result.get("errorText"):
            raise BrowserError(f"cannot open {url}: {result['errorText']}")

    def evaluate(self, expression: str) -> Any:
        result = self.call("Runtime.evaluate", session=True, expression=expression,
                           returnByValue=True, awaitPromise=True)
        if "exceptionDetails" in result:
            raise BrowserError(f"{expression}: {result['exceptionDetails']}")
        return result["result"].get("value")

    def text(self) -> str:
        """What the page shows, as a user reads it (``innerText``: rendered, visible text)."""
        return self.evaluate("document.body ? document.body.innerText : ''") or ""

    def url(self) -> str:
        return self.evaluate("location.href") or ""

    def click(self, label: str, *, timeout: float = 60) -> None:
        """Click, with the mouse at its centre, the button or link whose text is ``label``
        (waiting until one is on the page)."""
        find = f"""(() => {{
            const label = {json.dumps(label)};
            const hit = [...document.querySelectorAll('button, a, [role="button"], [role="tab"]')]
                .find(el => el.innerText.trim() === label && el.getClientRects().length);
            if (!hit) return null;
            hit.scrollIntoView({{block: 'center'}});
            const r = hit.getBoundingClientRect();
            return [r.x + r.width / 2, r.y + r.height / 2];
        }})()"""
        deadline = time.monotonic() + timeout
        while (point := self.evaluate(find)) is None:
            if time.monotonic() > deadline:
                raise BrowserError(f"no button or link {label!r} on {self.url()} within "
                                   f"{timeout}s; the page showed:\n{self.text()[:4000]}")
            time.sleep(0.2)
        x, y = point
        for kind in ("mouseMoved", "mousePressed", "mouseReleased"):
            self.call("Input.dispatchMouseEvent", session=True, type=kind, x=x, y=y,
                      button="left" if kind != "mouseMoved" else "none", clickCount=1)

    def screenshot(self, path: Path) -> Path:
        data = self.call("Page.captureScreenshot", session=True, format="png")["data"]
        path.write_bytes(base64.b64decode(data))
        return path

    def wait_for_text(self, check: Callable[[str], bool], what: str, *, timeout: float = 60,
                      screenshot: Path | None = None) -> str:
        """Poll the page's text until ``check`` holds; on timeout, fail with what it showed
        (and a screenshot, when a path is given)."""
        deadline = time.monotonic() + timeout
        text = ""
        while time.monotonic() < deadline:
            text = self.text()
            if check(text):
                return text
            time.sleep(0.2)
        if screenshot is not None:
            self.screenshot(screenshot)
        raise BrowserError(f"page {self.url()} did not show {what} within {timeout}s; it "
                           f"showed:\n{text[:4000]}")

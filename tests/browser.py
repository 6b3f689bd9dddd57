"""Headless Debian chromium for the page tests: the DOM after scripts ran, and the console's lines."""
import shutil
import subprocess
from html.parser import HTMLParser

import pytest

FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--enable-logging=stderr", "--v=0"]


def chromium():
    exe = shutil.which("chromium")
    if exe is None:
        pytest.skip("Debian's chromium is not installed (scripts/ensure-chromium installs it when run as "
                    "root with apt; `make test` calls it)")
    return exe


def load(path, tmp_path, extra=()):
    """(DOM after load, console lines) of the page at `path`, opened as a file:// URL."""
    profile = tmp_path / "chromium-profile"
    r = subprocess.run([chromium(), *FLAGS, f"--user-data-dir={profile}", *extra, "--dump-dom",
                        path.resolve().as_uri()], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr[-2000:]
    console = [l for l in r.stderr.splitlines() if ":CONSOLE" in l]
    return r.stdout, console


def screenshot(path, tmp_path, out, size="1400,1000"):
    profile = tmp_path / "chromium-shot"
    subprocess.run([chromium(), *FLAGS, f"--user-data-dir={profile}", f"--window-size={size}",
                    f"--screenshot={out}", path.resolve().as_uri()], capture_output=True, timeout=120)
    return out


class Elements(HTMLParser):
    """Collects, for every element carrying `attr`, its attributes and its visible text (with
    descendants', leaving out <title> tooltips)."""

    def __init__(self, tag, attr):
        super().__init__(convert_charrefs=True)
        self.tag, self.attr = tag, attr
        self.found, self._open, self._depth, self._title = [], [], 0, False

    def handle_starttag(self, tag, attrs):
        if tag == "title":
            self._title = True
        if tag != self.tag:
            return
        self._depth += 1
        a = dict(attrs)
        if self.attr in a:
            self._open.append((self._depth, {"attrs": a, "text": ""}))

    def handle_endtag(self, tag):
        if tag == "title":
            self._title = False
        if tag != self.tag:
            return
        if self._open and self._open[-1][0] == self._depth:
            self.found.append(self._open.pop()[1])
        self._depth -= 1

    def handle_data(self, data):
        if self._title:
            return
        for _, el in self._open:
            el["text"] += data


def elements(html, tag, attr):
    p = Elements(tag, attr)
    p.feed(html)
    return p.found

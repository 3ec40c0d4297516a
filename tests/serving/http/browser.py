"""Debian's Chromium, headless, driven by Playwright: the browser a person opens the
prediction page in. Playwright never downloads a browser here; it runs the system's."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

CHROMIUM = "/usr/bin/chromium"
# Headless, and no calls of the browser's own to the internet, which this network refuses.
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@dataclass
class Visit:
    """A page opened in a fresh browser context, and every URL the page asked for."""

    page: object
    requested: list[str] = field(default_factory=list)
    dialogs: list[str] = field(default_factory=list)


class Browser:
    def __init__(self, browser) -> None:
        self._browser = browser

    @contextmanager
    def open(self, url: str) -> Iterator[Visit]:
        context = self._browser.new_context()
        try:
            page = context.new_page()
            visit = Visit(page)
            page.on("request", lambda request: visit.requested.append(request.url))
            page.on("dialog", lambda dialog: (visit.dialogs.append(dialog.message), dialog.dismiss()))
            page.goto(url)
            page.wait_for_load_state("load")
            yield visit
        finally:
            context.close()


@contextmanager
def chromium() -> Iterator[Browser]:
    from playwright.sync_api import sync_playwright

    executable = shutil.which("chromium") or CHROMIUM
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_FLAGS)
        try:
            yield Browser(browser)
        finally:
            browser.close()

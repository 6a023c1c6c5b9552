"""A headless Chromium for the stack tests that watch the dashboard (playwright)."""

import shutil
from contextlib import contextmanager

from playwright.sync_api import expect, sync_playwright

CHROMIUM = shutil.which("chromium")
# How long expect() waits for the page (a wait, not a limit on the lab): on a loaded machine a
# producer's container alone took over 5 s (playwright's default) to start.
expect.set_options(timeout=20_000)
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]  # fmt: skip


@contextmanager
def chromium():
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


ON_TOP = """selector => {
  const element = document.querySelector(selector);
  element.scrollIntoView({ block: "center" });
  const box = element.getBoundingClientRect();
  return document.elementFromPoint(box.x + box.width / 2, box.y + box.height / 2) === element;
}"""


def on_top(page, selector):
    """Whether the page paints the element (the first that matches) at its middle: nothing drawn
    over it. In one step: the board redraws some elements every frame."""
    return page.evaluate(ON_TOP, selector)

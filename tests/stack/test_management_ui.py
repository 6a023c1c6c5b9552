"""The management UI in a real headless browser, as a student sees it."""

import os
import re
import shutil

import pytest
from playwright.sync_api import expect, sync_playwright

from stacklab import CONSUMERS, ROOT

CHROMIUM = shutil.which("chromium")
ARTIFACTS = ROOT / "artifacts"
# Chromium as these machines run it (no sandbox as root, no background traffic).
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]  # fmt: skip


@pytest.fixture
def ui_figures(lab):
    """The broker as students run it (MANAGEMENT_METRICS=true: the UI's figures), for one test;
    every `up` of it says so, or Compose would re-create the broker as the tests run it."""
    students = {"MANAGEMENT_METRICS": "true"}
    lab.compose("up", "--detach", "--wait", "--scale", f"consumer={CONSUMERS}", env=students)
    lab.wait_for(lambda: lab.queue()[1] == CONSUMERS, f"{CONSUMERS} workers consuming")
    yield lab
    lab.compose("up", "--detach", "--wait", "--scale", f"consumer={CONSUMERS}")  # the tests' broker again


@pytest.mark.skipif(
    not CHROMIUM and os.environ.get("CI") != "true", reason="needs Chromium: apt-get install chromium"
)  # in CI a missing browser fails the test instead
def test_queues_page_shows_task_queue_with_its_consumers(ui_figures):
    lab = ui_figures
    base = f"http://127.0.0.1:{lab.management_port}"
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.goto(base + "/")
            page.fill("input[name=username]", lab.user)
            page.fill("input[name=password]", lab.password)
            page.click("input[type=submit]")
            expect(page.locator("#logout")).to_be_visible()

            page.goto(base + "/#/queues")
            row = page.locator("table.list tbody tr", has_text="task_queue")
            expect(row).to_be_visible()
            expect(row).to_contain_text("quorum")
            ready = row.locator("td").nth(5)  # the page fills in the figures on its next refresh
            expect(ready).to_have_text(re.compile(r"^\d+$"), timeout=20_000)
            ARTIFACTS.mkdir(exist_ok=True)
            page.screenshot(path=ARTIFACTS / "management-ui-queues.png", full_page=True)

            row.get_by_role("link", name="task_queue").click()
            page.get_by_text(f"Consumers ({CONSUMERS})").click()
            consumers = page.locator("#main")
            workers = lab.worker_names()
            assert len(workers) == CONSUMERS, workers
            for worker in workers:  # consumers are listed by worker name
                expect(consumers).to_contain_text(worker)
            page.screenshot(path=ARTIFACTS / "management-ui-task_queue.png", full_page=True)
        finally:
            browser.close()

"""The management UI in a real headless browser, as a student sees it."""

import os
import re
import shutil
from contextlib import contextmanager

import pytest
from playwright.sync_api import expect, sync_playwright

from stacklab import CONSUMERS, ROOT

CHROMIUM = shutil.which("chromium")
# In CI a missing browser fails the tests instead.
NEEDS_CHROMIUM = pytest.mark.skipif(
    not CHROMIUM and os.environ.get("CI") != "true", reason="needs Chromium: apt-get install chromium"
)
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


@contextmanager
def queues_page(lab):
    """The management UI's Queues and Streams page in Chromium, logged in as the lab's user."""
    # The page asks /api/version as it loads (and reloads itself once to remember it); a broker
    # just re-created may take connections before its API answers.
    lab.wait_for(lambda: lab.management("version")[0] == 200, "the management API answers", timeout=60)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            said = []
            page.on("pageerror", lambda error: said.append(f"error: {error}"))
            page.on("console", lambda message: said.append(f"console: {message.text}"))
            page.on("requestfailed", lambda request: said.append(f"failed: {request.url}"))
            login = page.locator("input[name=username]")
            # Once in a few loaded runs the UI's page stayed blank, with no error: a second load,
            # as a student would reload it, showed the form. Two loads, then the test fails.
            for attempt in (1, 2):
                page.goto(f"http://127.0.0.1:{lab.management_port}/", wait_until="networkidle")
                try:
                    expect(login).to_be_visible(timeout=20_000)
                    break
                except AssertionError:
                    ARTIFACTS.mkdir(exist_ok=True)
                    page.screenshot(path=ARTIFACTS / f"management-ui-no-login-form-{attempt}.png", full_page=True)
                    print(f"load {attempt}: no login form on the management UI; the page said: {said}")
            else:
                pytest.fail(f"no login form on the management UI after two loads; the page said: {said}")
            page.fill("input[name=username]", lab.user)
            page.fill("input[name=password]", lab.password)
            page.click("input[type=submit]")
            expect(page.locator("#logout")).to_be_visible()
            page.goto(f"http://127.0.0.1:{lab.management_port}/#/queues")
            yield page
        finally:
            browser.close()


@NEEDS_CHROMIUM
def test_queues_page_shows_task_queue_with_its_consumers(ui_figures):
    lab = ui_figures
    with queues_page(lab) as page:
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


@pytest.fixture
def three_held_one(lab):
    """A quorum queue of the test's own holding 3 messages, 1 of them delivered and not yet
    acknowledged (its channel open), deleted at the end."""
    with lab.connect() as connection:
        channel = connection.channel()
        channel.queue_declare("ui_totals", durable=True, arguments={"x-queue-type": "quorum"})
        channel.confirm_delivery()
        for body in (b"one", b"two", b"three"):
            channel.basic_publish("", "ui_totals", body)
        assert channel.basic_get("ui_totals")[0] is not None  # held, unacknowledged
        try:
            yield "ui_totals"
        finally:
            channel.queue_delete("ui_totals")


@NEEDS_CHROMIUM
def test_without_metrics_the_ui_still_shows_each_queues_message_counts(lab, three_held_one):
    # The tests' broker runs with MANAGEMENT_METRICS=false (the management-only mode).
    assert lab.env["MANAGEMENT_METRICS"] == "false"

    def totals():
        _status, queue = lab.management(f"queues/%2F/{three_held_one}")
        return queue and (queue.get("messages"), queue.get("messages_ready"), queue.get("messages_unacknowledged"))

    lab.wait_for(lambda: totals() == (3, 2, 1), "ui_totals read 3 / 2 / 1 in /api/queues", timeout=30)
    assert lab.management("consumers")[0] == 400  # still absent in this mode, as docs/dashboard.md says
    with queues_page(lab) as page:
        row = page.locator("table.list tbody tr", has_text=three_held_one)
        expect(row).to_contain_text("quorum")
        cells = row.locator("td")  # vhost, name, type, features, state, ready, unacked, total
        expect(cells.nth(5)).to_have_text("2", timeout=20_000)
        expect(cells.nth(6)).to_have_text("1")
        expect(cells.nth(7)).to_have_text("3")
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=ARTIFACTS / "management-ui-queues-without-metrics.png", full_page=True)

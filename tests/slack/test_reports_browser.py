"""The reports page in a real headless browser: Chromium from the system packages, driven by Playwright.

No browser is ever downloaded: Playwright launches /usr/bin/chromium (`apt-get install chromium`; `.ci/run` installs
it). In CI (CI set) a missing Chromium fails the test; on a developer's machine without it the test is skipped,
and the skip's reason (shown by `pytest -ra`, the default here) says what to install.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from tests.slack.conftest import HarnessFactory
from tests.slack.test_reports_page import command, link_of, local, reporting_harness, traffic

CHROMIUM = Path(os.environ.get("INBOX_TEST_CHROMIUM", "/usr/bin/chromium"))


@pytest.fixture
async def browser() -> AsyncIterator[Any]:
    if not CHROMIUM.exists():
        pytest.fail(f"Chromium is not installed at {CHROMIUM}: apt-get install -y chromium (the browser test needs it)")
    from playwright.async_api import async_playwright

    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(executable_path=str(CHROMIUM), timeout=60_000)
        try:
            yield launched
        finally:
            await launched.close()


async def test_the_page_renders_with_its_charts_and_a_breach_count_opens_its_list(
    harness_factory: HarnessFactory, browser: Any, tmp_path: Path
):
    harness = await reporting_harness(harness_factory)
    threads = await traffic(harness)
    link = local(harness, link_of(await command(harness, "report 7d")))
    page = await browser.new_page()
    errors: list[str] = []
    page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
    response = await page.goto(link)
    assert response is not None and response.status == 200
    assert await page.title() == "SLA report"
    # The three charts are drawn, as SVG, with their data (the attainment line, the bars, the staffing lines).
    charts = page.locator("figure.chart svg")
    assert await charts.count() == 3
    assert await page.locator("figure.chart svg .series").count() >= 6
    assert await page.locator("table.heat a").count() >= 1
    assert await page.locator("table.groups").count() == 2
    await page.screenshot(path=str(tmp_path / "report.png"), full_page=True)
    # A breach count in the headline opens the list of those conversations.
    await page.locator(".card a").click()
    await page.wait_for_load_state()
    assert await page.title() == "Breached conversations"
    listed = await page.locator("table.breaches tr td:first-child").all_inner_texts()
    assert sorted(int(x) for x in listed) == sorted([threads["3"], threads["4"], threads["5"]])
    # The customer's handle shows as text: nothing of it became markup.
    assert await page.locator("table.breaches script, table.breaches b").count() == 0
    assert "<script>alert(1)</script>" in await page.locator("table.breaches").inner_text()
    assert await page.locator("table.breaches a", has_text="open in Slack").count() == 3
    assert not errors, errors


async def test_an_unsigned_or_expired_link_is_refused_in_the_browser(harness_factory: HarnessFactory, browser: Any):
    harness = await reporting_harness(harness_factory)
    link = local(harness, link_of(await command(harness, "report 7d")))
    page = await browser.new_page()
    response = await page.goto(f"{harness.url}/reports?since=7d")
    assert response is not None and response.status == 403
    assert "not signed" in await page.locator("body").inner_text()
    harness.clock.advance(hours=24, seconds=1)
    response = await page.goto(link)
    assert response is not None and response.status == 403
    assert "expired" in await page.locator("body").inner_text()
    assert await page.locator("svg").count() == 0

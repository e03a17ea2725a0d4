"""The dashboard on the local host: served without a key, its data only with one, and live in a real browser.

The browser test drives Debian's headless Chromium through its chromedriver (both named explicitly, so nothing
is ever downloaded); it is skipped, saying how to install them, on a machine without them. A screenshot of the
page is saved to `$AOS_TEST_ARTIFACTS` or `test-artifacts/`.
"""

from __future__ import annotations

import os
import re
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

ROOT = Path(__file__).resolve().parents[2]
# Read at import: the suite's autouse fixture clears every AOS_* variable before a test runs.
ARTIFACTS = Path(os.environ.get("AOS_TEST_ARTIFACTS") or ROOT / "test-artifacts")
CHROMIUM, CHROMEDRIVER = Path("/usr/bin/chromium"), Path("/usr/bin/chromedriver")
CONFIG = {"agents": {"instances": [{"type": "tally", "id": "tally", "config": {"subscribe": ["*"]}}]}}
# Every request the page makes, as it makes them.
PAGE_CALLS = ["/api/agents", "/api/agents/tally/context", "/api/audit?action=event.accepted&after=0&limit=1000",
              "/api/audit?action=decision.taken&after=0&limit=1000", "/api/events/e-1", "/api/decisions/d-1",
              "/api/risks?status=open&limit=1000", "/api/audit/verify", "/api/deadletters?limit=100",
              "/api/agents/tally/turns/e-1"]


def test_the_page_is_public_and_self_contained_but_its_data_needs_a_key(make_host: Any) -> None:
    host = make_host({}, CONFIG)
    host.start()
    with httpx.Client(base_url=host.base, timeout=30) as http:
        page = http.get("/api/dashboard")
        assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
        assert page.headers["cache-control"] == "no-cache"
        csp = page.headers["content-security-policy"]
        assert "default-src 'none'" in csp and "connect-src 'self'" in csp and "unsafe-inline" not in csp
        assert not re.search(r"""(src|href|action)=["']?(https?:)?//""", page.text)  # works on a closed network
        assert http.get("/").headers["location"] == "/api/dashboard"
        for path in PAGE_CALLS:
            assert http.get(path).status_code == 401, path
    assert f"Dashboard: {host.base}/api/dashboard#key=" in host.log.read_text()


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[Any]:
    if not (CHROMIUM.is_file() and CHROMEDRIVER.is_file()):
        pytest.skip("headless Chromium not found: install Debian's chromium and chromium-driver "
                    "(apt-get install chromium chromium-driver)")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--disable-dev-shm-usage", "--no-proxy-server", "--window-size=1400,1100",
                 f"--user-data-dir={tmp_path / 'chromium-profile'}"):
        options.add_argument(flag)
    service = Service(executable_path=str(CHROMEDRIVER), log_output=str(tmp_path / "chromedriver.log"))
    driver = webdriver.Chrome(options=options, service=service)
    try:
        yield driver
    finally:
        driver.quit()


def save_screenshot(driver: Any, name: str) -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    driver.save_screenshot(str(path))
    print(f"dashboard screenshot: {path}")
    return path


def test_an_event_posted_over_http_shows_on_the_open_page_within_seconds(make_host: Any, browser: Any) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as shown
    from selenium.webdriver.support.ui import WebDriverWait

    host = make_host({}, CONFIG)
    host.start()
    key = host.env["AOS_DEVHOST__FUNCTION_KEY"]
    event_id = f"dash-{uuid.uuid4().hex[:12]}"
    row = (By.CSS_SELECTOR, f'tr[data-event-id="{event_id}"]')
    try:
        browser.get(f"{host.base}/#key={key}")  # `/` redirects to the dashboard; the fragment comes along
        WebDriverWait(browser, 20).until(shown.presence_of_element_located(
            (By.CSS_SELECTOR, 'tr[data-agent-id="tally"]')))
        assert browser.current_url == f"{host.base}/api/dashboard"  # the key left the address bar

        with httpx.Client(base_url=host.base, headers={"x-functions-key": key}, timeout=30) as http:
            posted = http.post("/api/events", json={"id": event_id, "source": "browser-test",
                                                    "type": f"dashboard.check.{event_id}", "data": {"n": 1}})
        assert posted.status_code in (200, 202), posted.text
        event_row = WebDriverWait(browser, 5).until(shown.visibility_of_element_located(row))
        assert f"dashboard.check.{event_id}" in event_row.text and "browser-test → tally" in event_row.text
        WebDriverWait(browser, 10).until(shown.text_to_be_present_in_element(row, "completed"))
        WebDriverWait(browser, 15).until(shown.text_to_be_present_in_element(
            (By.ID, "audit-status"), "chain intact"))
        assert browser.find_element(By.ID, "status").text == ""  # no error on the page
    finally:
        save_screenshot(browser, "dashboard")


def test_the_page_says_when_its_key_is_refused_and_when_the_host_is_gone(make_host: Any, browser: Any) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as shown
    from selenium.webdriver.support.ui import WebDriverWait

    host = make_host({}, CONFIG)
    host.start()
    status = (By.ID, "status")
    browser.get(f"{host.base}/api/dashboard#key=not-the-key")
    WebDriverWait(browser, 10).until(shown.text_to_be_present_in_element(status, "401"))
    assert browser.find_element(By.ID, "key-form").is_displayed()

    key_input = browser.find_element(By.ID, "key-input")
    key_input.send_keys(host.env["AOS_DEVHOST__FUNCTION_KEY"])
    key_input.submit()
    WebDriverWait(browser, 10).until(shown.presence_of_element_located((By.CSS_SELECTOR, 'tr[data-agent-id="tally"]')))
    assert not browser.find_element(By.ID, "key-form").is_displayed()

    host.stop()
    WebDriverWait(browser, 10).until(shown.text_to_be_present_in_element(status, "Cannot reach AOS"))
    save_screenshot(browser, "dashboard-host-gone")


def test_goals_show_from_the_start_honestly_and_terminated_agents_are_apart(make_host: Any, browser: Any) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as shown
    from selenium.webdriver.support.ui import WebDriverWait

    host = make_host({}, {"agents": {"instances": [{"type": "cfo", "id": "cfo"}, {"type": "tally", "id": "old"}]}})
    host.start()
    key = host.env["AOS_DEVHOST__FUNCTION_KEY"]
    with httpx.Client(base_url=host.base, headers={"x-functions-key": key}, timeout=30) as http:
        assert http.delete("/api/agents/old").status_code in (200, 202, 204)
    try:
        browser.get(f"{host.base}/#key={key}")
        # No event has reached the CFO: its goals are there anyway, and "no overruns" is not met for free.
        overruns = (By.CSS_SELECTOR, '.agent-goals[data-agent-id="cfo"] [data-goal-id="no-overruns"]')
        WebDriverWait(browser, 20).until(shown.presence_of_element_located(overruns))
        assert "nothing to measure yet" in browser.find_element(*overruns).get_attribute("textContent")
        overall = browser.find_element(By.CSS_SELECTOR, '.agent-goals[data-agent-id="cfo"] .goal.overall')
        assert overall.get_attribute("textContent").endswith("0%")
        assert browser.find_elements(By.CSS_SELECTOR, '#agents-body tr[data-agent-id="old"]') == []
        gone = browser.find_element(By.CSS_SELECTOR, '#terminated-body tr[data-agent-id="old"]')
        assert "tally" in gone.get_attribute("textContent")
        assert browser.find_element(By.ID, "terminated-count").get_attribute("textContent") == "1"
        assert browser.find_element(By.ID, "status").text == ""
    finally:
        save_screenshot(browser, "dashboard-goals")


def test_an_agents_model_and_tools_loop_reads_as_a_conversation_with_its_tokens(make_host: Any,
                                                                                browser: Any) -> None:
    """The rule-based model (tool rules in config, no model service) calls a tool, then answers."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as shown
    from selenium.webdriver.support.ui import WebDriverWait

    config = {"agents": {"types": {"thinker": "tests.support.agents:Thinker"},
                         "instances": [{"type": "thinker", "id": "thinker", "config": {"subscribe": ["question"]}}]},
              "ml": {"tool_rules": [{"pattern": "my notes", "tool": "aos_read_context"}]}}
    host = make_host({}, config)
    host.start()
    key = host.env["AOS_DEVHOST__FUNCTION_KEY"]
    loop = (By.CSS_SELECTOR, 'div.loop[data-event-id="q-dash"]')
    try:
        browser.get(f"{host.base}/api/dashboard#key={key}")
        WebDriverWait(browser, 20).until(shown.presence_of_element_located(
            (By.CSS_SELECTOR, 'tr[data-agent-id="thinker"]')))
        with httpx.Client(base_url=host.base, headers={"x-functions-key": key}, timeout=30) as http:
            posted = http.post("/api/events?wait=10", json={"id": "q-dash", "source": "browser-test",
                                                            "type": "question", "data": {"task": "read my notes"}})
        assert posted.status_code == 200 and posted.json()["status"] == "completed", posted.text
        shown_loop = WebDriverWait(browser, 15).until(shown.visibility_of_element_located(loop))
        steps = [li.text for li in shown_loop.find_elements(By.TAG_NAME, "li")]
        assert steps[0] == "task: read my notes"
        assert steps[1] == "model (rule-based): calls aos_read_context({})"
        assert steps[2].startswith("aos_read_context [ok]: {")
        assert steps[3].startswith("model (rule-based): [base] recommendation:") and "consulted" in steps[3]
        assert "answered" in shown_loop.text
        tokens = browser.find_element(By.CSS_SELECTOR, 'tr[data-agent-id="thinker"][data-model="rule-based"]')
        cells = [td.text for td in tokens.find_elements(By.TAG_NAME, "td")]
        assert cells[0] == "thinker" and int(cells[2]) > 0 and int(cells[3]) > 0 and cells[4] == "2"
        assert browser.find_element(By.ID, "status").text == ""
    finally:
        save_screenshot(browser, "dashboard-reasoning")

"""Headless Chromium (Debian's chromium + chromium-driver, driven by Selenium) for tests of web pages served on
127.0.0.1, and reading a Superset dashboard's figures as the browser shows them."""

from __future__ import annotations

import contextlib
import tempfile
from collections.abc import Iterator
from pathlib import Path

CHROMIUM, CHROMEDRIVER = Path("/usr/bin/chromium"), Path("/usr/bin/chromedriver")
# no calls to Google's hosts (refused on a closed network), no sandbox as root
FLAGS = ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync", "--window-size=1600,1300")


@contextlib.contextmanager
def chromium() -> Iterator:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    with tempfile.TemporaryDirectory(prefix="chromium-") as profile:
        options = webdriver.ChromeOptions()
        options.binary_location = str(CHROMIUM)
        for flag in (*FLAGS, f"--user-data-dir={profile}"):
            options.add_argument(flag)
        driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
        try:
            yield driver
        finally:
            driver.quit()


def _text(element) -> str:
    """An element's text, also when it is scrolled out of its container (`.text` gives only what is visible)."""
    return (element.get_attribute("textContent") or "").strip()


def superset_login(driver, base_url: str, user: str, password: str, attempts: int = 3, timeout: float = 40) -> None:
    """Log in through Superset's login page. The page is a React form: keys typed before its handlers are bound
    submit nothing, so each attempt waits for the submit button and, when the page stays on /login, starts over."""
    from selenium.common.exceptions import TimeoutException
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    for attempt in range(1, attempts + 1):
        driver.get(f"{base_url}/login/")
        wait = WebDriverWait(driver, timeout)
        wait.until(lambda d: d.find_elements(By.ID, "username") and d.find_elements(By.ID, "password"))
        submit = (By.CSS_SELECTOR, "button[type=submit], button.ant-btn-primary")
        button = wait.until(ec.element_to_be_clickable(submit))
        driver.find_element(By.ID, "username").send_keys(user)
        driver.find_element(By.ID, "password").send_keys(password)
        button.click()
        try:
            wait.until(lambda d: "/login" not in d.current_url)
            return
        except TimeoutException:
            if attempt == attempts:
                raise


def dashboard_charts(driver, url: str, names: list[str], timeout: float = 180) -> dict[str, object]:
    """Open the dashboard at `url` and wait until every chart in `names` has drawn; per chart, a table's rows
    (header first, cell texts) or a big number's text."""
    from selenium.common.exceptions import StaleElementReferenceException
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    def drawn(name: str) -> object | None:
        found = driver.find_elements(By.CSS_SELECTOR, f'[data-test-chart-name="{name}"]')
        if not found:
            return None
        numbers = found[0].find_elements(By.CSS_SELECTOR, ".header-line")
        if numbers and _text(numbers[0]):
            return _text(numbers[0])
        rows = found[0].find_elements(By.CSS_SELECTOR, "table tr")
        cells = [[_text(c) for c in r.find_elements(By.CSS_SELECTOR, "th, td")] for r in rows]
        return cells if len(cells) > 1 and all(any(c) for c in cells[1:]) else None

    def all_drawn(_driver) -> dict[str, object] | None:
        shown = {name: drawn(name) for name in names}
        return shown if all(v is not None for v in shown.values()) else None

    driver.get(url)  # charts re-render while they load: a stale element means "not yet"
    return WebDriverWait(driver, timeout, ignored_exceptions=(StaleElementReferenceException,)).until(all_drawn)

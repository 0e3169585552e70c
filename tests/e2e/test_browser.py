"""The Airflow UI in a real browser: headless Chromium (Debian's ``chromium`` and
``chromium-driver``, installed by ``make setup``) driven by Selenium against the stack that
``make up`` starts. It signs in, sees every DAG without import errors, opens a DAG's runs and
follows a task's *Report* link to the Great Expectations report served from Azurite.

Each step leaves a screenshot in ``test-artifacts/browser/`` (git-ignored), next to
``chromedriver.log``; a failed test also leaves ``failure-<test>.png`` and ``.html`` (the
rendered DOM of its last page) there.

The selectors are the ones Airflow's React UI renders for its own tests (``data-testid``), form
field names and tab titles, read from the rendered DOM (``driver.page_source``).
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from urllib.parse import quote, urlsplit

import pytest

from tests.support.e2e import BACKFILL_DAYS, STACK_TEST_DAG_IDS

pytestmark = [pytest.mark.e2e, pytest.mark.spark, pytest.mark.airflow, pytest.mark.timeout(1800)]

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts" / "browser"
CHROMIUM, CHROMEDRIVER = Path("/usr/bin/chromium"), Path("/usr/bin/chromedriver")
# Without these, Chromium waits on network services (updates, sync, QUIC probes) that a
# closed network never answers.
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--window-size=1400,1000",
)
ALL_DAGS = (
    "data_quality_validation",
    "drift_detection",
    "model_performance",
    "model_serving",
    "model_training",
    "offline_feature_table",
    "online_feature_table",
    "pipeline_monitoring",
    "table_maintenance",
)
DAG_ID = "data_quality_validation"
REPORT_TASK = "upload_bronze_events_report"
DAY = BACKFILL_DAYS[-1]  # the shared backfill's last date: no test clears or reruns it
WAIT = 60  # seconds for a page or an element: the UI polls a busy SQLite-backed API


@pytest.fixture(scope="module")
def report_run(daily_backfill) -> dict:
    """The shared backfill's ``data_quality_validation`` run of DAY (the report of that day is
    in Azurite once ``upload_bronze_events_report`` has succeeded)."""
    [run] = [
        r
        for r in daily_backfill[DAG_ID]
        if r["run_type"] == "backfill" and r["logical_date"].startswith(DAY)
    ]
    assert run["state"] == "success", run
    return run


@pytest.fixture(scope="module")
def browser(request):
    """A headless Chromium with a fresh profile, for the tests of this file."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    missing = [str(p) for p in (CHROMIUM, CHROMEDRIVER) if not p.exists()]
    if missing:
        pytest.fail(
            f"{', '.join(missing)} missing: `make setup` installs chromium and chromium-driver"
        )
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    for old in ARTIFACTS.glob("*.*"):  # the previous run's
        old.unlink()
    profile = tempfile.mkdtemp(prefix="ecom-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in (*CHROMIUM_FLAGS, f"--user-data-dir={profile}"):
        options.add_argument(flag)
    # An explicit driver path: Selenium Manager never looks for (or downloads) a browser.
    service = Service(str(CHROMEDRIVER), log_output=str(ARTIFACTS / "chromedriver.log"))
    driver = webdriver.Chrome(service=service, options=options)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)
        # Printed past pytest's output capture, so it shows with -q too.
        capture = request.config.pluginmanager.getplugin("capturemanager")
        with capture.global_and_fixture_disabled():
            print(f"\nbrowser screenshots: {ARTIFACTS}", flush=True)


@pytest.fixture(autouse=True)
def _keep_the_page_of_a_failure(request, browser):
    """After a failed test: its last page as ``failure-<test>.png`` and ``.html``."""
    failed_before = request.session.testsfailed
    yield
    if request.session.testsfailed > failed_before:
        name = f"failure-{request.node.name}"
        _shoot(browser, name)
        (ARTIFACTS / f"{name}.html").write_text(browser.page_source)


@pytest.fixture(scope="module")
def signed_in(browser, stack):
    """The browser signed in to the Airflow UI with the simple auth manager's form (the user
    and password of `make up`'s stack.env)."""
    from selenium.webdriver.support import expected_conditions as ec

    env = stack.client_env()
    browser.get(f"{stack.airflow_url}/")
    _wait(browser).until(ec.url_contains("/auth/login"))
    _wait(browser).until(ec.visibility_of_element_located(_css("input[name=username]")))
    browser.find_element(*_css("input[name=username]")).send_keys(env["AIRFLOW_USERNAME"])
    browser.find_element(*_css("input[name=password]")).send_keys(env["AIRFLOW_PASSWORD"])
    _shoot(browser, "01-login")
    _click(browser, _css("button[type=submit]"))
    _wait(browser).until(ec.visibility_of_element_located(_css("[data-testid=nav-sidebar]")))
    assert "/auth/login" not in browser.current_url
    return browser


def _shoot(driver, name: str) -> Path:
    path = ARTIFACTS / f"{name}.png"
    assert driver.save_screenshot(str(path)), f"no screenshot {path}"
    return path


def _wait(driver, timeout: float = WAIT):
    """An explicit wait that retries while React re-renders (stale or covered elements)."""
    from selenium.common.exceptions import (
        ElementClickInterceptedException,
        NoSuchElementException,
        StaleElementReferenceException,
    )
    from selenium.webdriver.support.ui import WebDriverWait

    ignored = (
        NoSuchElementException,
        StaleElementReferenceException,
        ElementClickInterceptedException,
    )
    return WebDriverWait(driver, timeout, ignored_exceptions=ignored)


def _css(selector: str) -> tuple[str, str]:
    from selenium.webdriver.common.by import By

    return (By.CSS_SELECTOR, selector)


def _click(driver, locator: tuple[str, str]) -> None:
    """Click the element once it is displayed and enabled, finding it again on a re-render."""

    def click(d) -> bool:
        element = d.find_element(*locator)
        if not (element.is_displayed() and element.is_enabled()):
            return False
        element.click()
        return True

    _wait(driver).until(click, f"nothing to click at {locator}")


def _text(driver, locator: tuple[str, str]) -> str:
    return _wait(driver).until(lambda d: d.find_element(*locator).text)


def test_every_dag_is_listed_without_import_errors(signed_in, stack, airflow):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec

    browser = signed_in
    airflow.wait_for_dags(ALL_DAGS)  # all parsed; raises on any import error
    assert airflow.request("GET", "/importErrors")["total_entries"] == 0
    browser.get(f"{stack.airflow_url}/")

    # Home: once the dashboard's health badges have loaded (its other queries have too), the
    # "Dag Import Errors" button it shows when the dag-processor reported any is absent.
    _wait(browser).until(ec.text_to_be_present_in_element((By.TAG_NAME, "body"), "Dag Processor"))
    assert "Import Error" not in _text(browser, (By.TAG_NAME, "body"))
    _shoot(browser, "02-home")

    # The DAG list: one card per DAG (the project's, and the test stack's own test DAGs).
    _click(browser, _css("[data-testid=nav-dags-link]"))
    dag_ids = _css("[data-testid=dag-id]")
    expected = {*ALL_DAGS, *STACK_TEST_DAG_IDS}
    _wait(browser).until(lambda d: len(d.find_elements(*dag_ids)) >= len(expected))
    listed = _wait(browser).until(lambda d: {e.text.strip() for e in d.find_elements(*dag_ids)})
    assert listed == expected
    assert "Import Error" not in _text(browser, (By.TAG_NAME, "body"))
    _shoot(browser, "03-dags")


def test_a_dags_runs_and_its_report_from_azurite(signed_in, stack, report_run):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec

    browser = signed_in
    run_id = report_run["dag_run_id"]
    run_path = f"/dags/{DAG_ID}/runs/{run_id}"

    # The DAG's page from its card in the list, then its Runs tab: the backfill run succeeded.
    browser.get(f"{stack.airflow_url}/dags")
    _click(browser, _css(f'[data-testid=dag-id][href$="/dags/{DAG_ID}"]'))
    _click(browser, _css('a[title="Runs"]'))
    run_link = _css(f'[data-testid=table-list] a[href$="{run_path}"]')
    row = (By.XPATH, f'//*[@data-testid="table-list"]//tr[.//a[@href="{run_path}"]]')
    _wait(browser).until(lambda d: "Success" in d.find_element(*row).text)
    assert "Backfill" in _text(browser, row)
    _shoot(browser, "04-runs")

    # The run, its report task in the grid, the task's Details tab with the extra links.
    _click(browser, run_link)
    _click(browser, _css(f'a[data-testid="grid-{run_id}-{REPORT_TASK}"]'))
    _click(browser, _css('a[title="Details"]'))
    report = (By.LINK_TEXT, "Report")
    href = _wait(browser).until(lambda d: d.find_element(*report).get_attribute("href"))
    _shoot(browser, "05-task-extra-links")

    # The link is the read-only SAS URL of the report's blob in Azurite.
    link = urlsplit(href)
    assert link.netloc == f"127.0.0.1:{stack.azurite_port}", href
    assert link.path == quote(f"/devstoreaccount1/reports/{DAG_ID}/{DAY}/bronze_events.html")
    assert "sp=r" in link.query and "sig=" in link.query, href

    # Clicking it opens the report in a new tab.
    airflow_tab = browser.current_window_handle
    _click(browser, report)
    _wait(browser).until(ec.number_of_windows_to_be(2))
    browser.switch_to.window(next(h for h in browser.window_handles if h != airflow_tab))
    _wait(browser).until(ec.title_contains(DAY))
    assert urlsplit(browser.current_url).path == link.path
    assert _text(browser, (By.TAG_NAME, "h1")) == f"Data quality validation: {DAY}"
    page = _text(browser, (By.TAG_NAME, "body"))
    assert "Suites: bronze_events" in page
    assert "expect_column_values_to_not_be_null" in page
    _shoot(browser, "06-report")
    browser.close()
    browser.switch_to.window(airflow_tab)

"""Each role's working day in headless Chromium, in English and in Simplified Chinese: the provider, the
consumer, the operator and the auditor walk their pages on a demo-scale marketplace; axe-core checks every page
they open (WCAG 2 A and AA) and a journey fails on any serious or critical violation, on a script error, on a
page that answers an error and on a page that scrolls sideways on a phone (375 px). The journeys write the
README's screenshots to docs/screenshots/ (<role>-<en|zh>-<step>.jpg, and <role>-zh-phone.jpg).

The language comes from the browser (its locale sets Accept-Language), and once from the header's switcher,
which must be remembered across pages and, through the member's profile, in another browser.

Speed: the marketplace is seeded once for the module (journeys.demo_seed: Celery eager, each organisation's
node in this process) and served by a live server thread of this process, so that work the pages start
(a quote, an order's job) runs inline. pytest-django's `live_server` fixture is not used because it flushes
the database after every test; this module flushes it once, when its last journey is done."""
from __future__ import annotations

import json
import os
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings
from django.core.management import call_command
from django.db import connection
from django.urls import reverse

from marketplace.models import FundsRequest
from marketplace.services.demo import demo_csv
from tests.frontend.journeys import PASSWORD, DemoState, demo_seed

os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")  # Playwright's sync API runs an event loop here

playwright_api = pytest.importorskip("playwright.sync_api")
expect = playwright_api.expect

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
AXE = Path(settings.BASE_DIR) / "node_modules" / "axe-core" / "axe.min.js"
SCREENSHOTS = Path(settings.BASE_DIR) / "docs" / "screenshots"
SCREENSHOT_QUALITY = 70  # JPEG: the README's pictures at a fifth of PNG's size
DESKTOP = {"width": 1280, "height": 800}
PHONE = {"width": 375, "height": 800}
TIMEOUT_MS = 30_000
# Browser locale → the language Django serves (Accept-Language zh-CN falls back to zh-hans).
LANGUAGES = {"en": ("en-US", "en"), "zh": ("zh-CN", "zh-hans")}
SCALE = 0.2  # the demo's shape with a fifth of its rows: the quote and order the consumer makes run inline
BLOCKING_IMPACTS = {"serious", "critical"}
CJK = re.compile(r"[\u4e00-\u9fff]")

pytestmark = [
    pytest.mark.browser,
    pytest.mark.chain,
    # Has the test database set up; a test itself only reads (in a transaction of its own) what `demo`
    # committed and what the pages' server thread writes.
    pytest.mark.django_db,
    pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="Chromium is not installed (make chromium)"),
    pytest.mark.skipif(not AXE.exists(), reason="axe-core is not installed (npm install)"),
]


def _catalogue_compiled() -> bool:
    """Whether the Chinese catalogue is built: before it is, a zh-hans page shows the English msgids."""
    return any(Path(path, "zh_Hans", "LC_MESSAGES", "django.mo").exists() for path in settings.LOCALE_PATHS)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with playwright_api.sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture(scope="module")
def demo(browser, django_db_setup, django_db_blocker, ganache_url) -> Iterator[DemoState]:
    """The demo's marketplace, committed for the module's journeys, then flushed as a transactional test is.

    Seeded once Playwright runs: its sync API gives the code after it another context, where Django opens
    another connection; the tests use that one too, and it is closed here, so the test database can be
    dropped at the end of the session."""
    with django_db_blocker.unblock():
        try:
            yield demo_seed(prefix="jy", scale=SCALE)
        finally:
            # As TransactionTestCase flushes: ids go on from where they were (the chain remembers batch ids).
            call_command("flush", verbosity=0, interactive=False, reset_sequences=False)
            connection.close()


@pytest.fixture(scope="module")
def server(demo) -> Iterator[str]:
    from pytest_django.live_server_helper import LiveServer

    live = LiveServer("localhost")
    live._live_server_modified_settings.enable()
    try:
        yield live.url
    finally:
        live._live_server_modified_settings.disable()
        live.stop()


def _node_summary(node: dict[str, Any]) -> str:
    """An axe node as a selector, with the colours and ratio found where it is a contrast check."""
    target = " ".join(str(part) for part in node["target"]) if isinstance(node["target"], list) else node["target"]
    for check in node.get("any") or []:
        data = check.get("data") or {}
        if isinstance(data, dict) and data.get("fgColor") and data.get("contrastRatio"):
            return (f"{target} [{data.get('fgColor')} on {data.get('bgColor')}: {data['contrastRatio']}:1, "
                    f"needs {data.get('expectedContrastRatio')}]")
    return str(target)


# htmx reports a poll cut short by leaving the page as an error: not the page's fault.
NAVIGATION_NOISE = {"htmx:sendAbort", "htmx:afterRequest"}
# The page's elements that reach past the viewport's right edge (what makes a phone scroll sideways).
OVERFLOWING = """(width) => [...document.querySelectorAll('body *')]
  .filter((el) => el.getBoundingClientRect().right > width + 1 && el.getClientRects().length)
  .filter((el) => !el.parentElement || el.parentElement.getBoundingClientRect().right <= width + 1)
  .slice(0, 4)
  .map((el) => el.tagName.toLowerCase() + (el.id ? '#' + el.id : '')
       + [...el.classList].map((name) => '.' + name).join('')
       + ' (' + Math.round(el.getBoundingClientRect().right) + ' px)')"""


class Journey:
    """One member's session in one language: opens pages, checks each with axe-core, keeps what went wrong
    (violations, script errors, error answers) for `finish`, and writes the screenshots."""

    def __init__(self, browser: Any, base: str, *, role: str, lang: str) -> None:
        self.base, self.role, self.lang = base, role, lang
        self.locale, self.served = LANGUAGES[lang]
        self.context = browser.new_context(locale=self.locale, viewport=DESKTOP)
        self.page = self.context.new_page()
        self.page.set_default_timeout(TIMEOUT_MS)
        self.closed = False
        self.started = time.perf_counter()
        self.axe_seconds = 0.0
        self.steps: list[str] = []
        self.violations: dict[str, dict[str, str]] = {}  # path → rule → what axe found
        self.errors: list[str] = []
        self.page.on("pageerror", lambda error: self.errors.append(f"{self._path()}: script error: {error}"))
        self.page.on("console", self._console)
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)

    def _path(self) -> str:
        return self.page.url.removeprefix(self.base).split("#")[0]

    def _console(self, message: Any) -> None:
        if message.type == "error" and message.text not in NAVIGATION_NOISE:
            self.errors.append(f"{self._path()}: console error: {message.text}")

    def sign_in(self, username: str) -> None:
        page = self.page
        page.goto(f"{self.base}{reverse('login')}")
        page.fill("input[name=username]", username)
        page.fill("input[name=password]", PASSWORD)
        page.locator("main form button[type=submit]").click()
        expect(page.locator("header .account-user")).to_contain_text(username)
        self.checked(axe=False)

    def open(self, path: str, *, axe: bool = True) -> Any:
        """Go to a page, check that it answered and is in this journey's language, and run axe on it."""
        response = self.page.goto(f"{self.base}{path}")
        assert response is not None and response.ok, f"{path} answered {response and response.status}"
        self.checked(axe=axe)
        return self.page

    def checked(self, *, axe: bool = True) -> None:
        """The page now shown: served in the journey's language, with a heading; axe-core's verdict kept."""
        page = self.page
        page.wait_for_load_state("load")
        expect(page.locator("html")).to_have_attribute("lang", self.served)
        expect(page.locator("main h1").first).to_be_visible()
        if self.lang == "zh" and _catalogue_compiled():
            assert CJK.search(page.locator("header nav").inner_text()), f"{self._path()}: the menu is not translated"
        if axe:
            self.axe()
        self.steps.append(f"{time.perf_counter() - self.started:6.1f}s {self._path()}")

    def axe(self) -> None:
        """axe-core's WCAG 2 A and AA rules on the page as it is now; serious and critical findings kept."""
        page = self.page
        if not page.evaluate("typeof window.axe !== 'undefined'"):
            page.add_script_tag(path=str(AXE))
        started = time.perf_counter()
        results = page.evaluate("axe.run(document, {runOnly: {type: 'tag', values: ['wcag2a', 'wcag2aa']}})")
        self.axe_seconds += time.perf_counter() - started
        found = self.violations.setdefault(self._path(), {})
        for violation in results["violations"]:
            if violation.get("impact") in BLOCKING_IMPACTS and violation["id"] not in found:
                examples = [_node_summary(node) for node in violation["nodes"][:3]]
                found[violation["id"]] = (f"[{violation['impact']}] {violation['id']}: {violation['help']} "
                                          f"({len(violation['nodes'])} nodes, e.g. {'; '.join(examples)})")
        if not found:
            del self.violations[self._path()]

    def shot(self, step: str) -> None:
        self.page.screenshot(path=str(SCREENSHOTS / f"{self.role}-{self.lang}-{step}.jpg"), full_page=True,
                             type="jpeg", quality=SCREENSHOT_QUALITY)

    def phone_shot(self, path: str) -> None:
        """The role's first page at a phone's width, checked there too: axe, and no sideways scrolling."""
        self.page.set_viewport_size(PHONE)
        self.open(path)
        self.page.screenshot(path=str(SCREENSHOTS / f"{self.role}-{self.lang}-phone.jpg"), full_page=True,
                             type="jpeg", quality=SCREENSHOT_QUALITY)
        width = self.page.evaluate("document.documentElement.scrollWidth")
        if width > PHONE["width"] + 1:
            wide = self.page.evaluate(OVERFLOWING, PHONE["width"])
            self.errors.append(f"{path}: at {PHONE['width']} px the page is {width} px wide (scrolls sideways): "
                               f"{', '.join(wide)}")
        self.page.set_viewport_size(DESKTOP)

    def message(self, kind: str = "success") -> Any:
        return self.page.locator(f"main .message-{kind}")

    def expect_charts(self, selector: str) -> None:
        """The page's charts (canvases matching `selector`) are there and Chart.js has drawn each of them."""
        expect(self.page.locator(selector).first).to_be_visible()
        self.page.wait_for_function(
            "(sel) => [...document.querySelectorAll(sel)].every((c) => window.Chart && Chart.getChart(c))",
            arg=selector)

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self.context.close()

    def problems(self) -> list[str]:
        """What axe found and what went wrong on the journey's pages, printed as a JSON report too."""
        report = {"role": self.role, "lang": self.lang, "axe_seconds": round(self.axe_seconds, 1),
                  "steps": self.steps, "violations": self.violations, "errors": self.errors}
        print(json.dumps(report, ensure_ascii=False, indent=1))
        found = [f"{path}:\n  " + "\n  ".join(rules.values()) for path, rules in self.violations.items()]
        return [f"{self.role} ({self.lang}) {item}" for item in found + self.errors]

    def finish(self, *others: Journey) -> None:
        """Close the browsers and fail on whatever axe found or went wrong on any page of the journeys."""
        problems = []
        for walk in (self, *others):
            walk.close()
            problems += walk.problems()
        assert not problems, "\n".join(problems)


@pytest.fixture
def journey(browser, server) -> Iterator[Any]:
    started: list[Journey] = []

    def start(*, role: str, lang: str, username: str, served: str = "") -> Journey:
        """A signed-in member's journey; `served`: the language the pages must come in, where not the
        browser's own."""
        walk = Journey(browser, server, role=role, lang=lang)
        walk.served = served or walk.served
        walk.sign_in(username)
        started.append(walk)
        return walk

    yield start
    for walk in started:
        walk.close()


LANGS = pytest.mark.parametrize("lang", ["en", "zh"])


@LANGS
def test_the_provider_imports_lists_and_follows_its_sales(demo, journey, lang):
    walk = journey(role="provider", lang=lang, username=demo.provider)
    page = walk.open(reverse("console"))
    expect(page.locator("main")).to_contain_text("Retail customer match")
    walk.shot("console")

    # An import: the file sealed in the browser to the node's key, imported by the node, its progress shown.
    name = f"Branch visitors ({lang})"
    page.fill("#import-name", name)
    page.fill("#import-id_column", "customer_id")
    rows = demo_csv(ids=[f"V{n:06d}" for n in range(400)], seed=4, kind="retail")
    page.set_input_files("#import-file", files=[{"name": "visitors.csv", "mimeType": "text/csv", "buffer": rows}])
    expect(page.locator("#import-submit")).to_be_enabled()
    page.click("#import-submit")
    expect(walk.message()).to_contain_text(name)
    walk.checked()

    # The dataset's page: its columns' published profile, quality and a synthetic preview.
    page.locator(f"main a[href='{reverse('dataset-detail', args=[demo.datasets['Retail customers 2026']])}']"
                 ).first.click()
    walk.checked()
    expect(page.locator("#dataset-columns")).to_be_visible()
    expect(page.locator("#synthetic-preview tbody tr").first).to_be_visible()
    walk.shot("dataset")

    # The product editor: its terms and an example quote previewed as the form is filled in.
    page = walk.open(reverse("console"), axe=False)
    form = page.locator(f"form[action='{reverse('product-create')}']")
    form.locator("input[name=title]").fill(f"Retail loyalty segments ({lang})")
    form.locator("[name=description]").fill("Loyalty segments of retail shoppers among your customers.")
    form.locator("input[name=datasets]").first.check()
    form.locator("input[name=purposes][value=marketing]").check()
    form.locator("input[name=base_price]").fill("18.00")
    form.locator("input[name=price_per_match]").fill("0.04")
    expect(page.locator("#terms-preview .terms-preview")).to_have_attribute("data-state", "priced")
    expect(page.locator("#terms-preview-total")).to_be_visible()
    walk.axe()
    form.scroll_into_view_if_needed()
    walk.shot("product-editor")
    form.locator("button[type=submit]").last.click()
    walk.checked()
    expect(page.locator("main h1")).to_have_text(f"Retail loyalty segments ({lang})")

    # Sales and revenue over time, buyers' quotes and the use of each grant, as charts with their tables.
    page = walk.open(reverse("provider-sales"))
    expect(page.locator("#sales-table")).to_contain_text("1")
    walk.expect_charts("#sales canvas, #grant-usage canvas")
    walk.shot("sales")

    # What was sold: the order as the seller sees it (counts and its grant, never the buyer's ids).
    page = walk.open(reverse("order-detail", args=[demo.order]))
    expect(page.locator("main h1")).to_have_text("Retail customer match")
    if lang == "zh":
        walk.phone_shot(reverse("console"))
    walk.finish()


@LANGS
def test_the_consumer_searches_compares_quotes_buys_and_adds_funds(demo, journey, lang):
    walk = journey(role="consumer", lang=lang, username=demo.consumer)
    page = walk.open(reverse("catalog"))
    search = page.locator("main form[role=search]")
    search.locator("input[name=q]").fill("retail")
    search.locator("select[name=category]").select_option("retail")
    search.locator("button[type=submit]").click()
    walk.checked()
    expect(page.locator(f"main a[href='{reverse('product-detail', args=[demo.products['Retail income bands']])}']"
                        ).first).to_be_visible()
    expect(page.locator("main")).not_to_contain_text("Telecom subscriber match")
    walk.shot("catalog")

    # The two retail products found, side by side.
    for title in ("Retail customer match", "Retail income bands"):
        page.locator(f"input[name=id][value='{demo.products[title]}']").check()
    page.locator("#compare-form button[type=submit]").click()
    walk.checked()
    expect(page.locator("main")).to_contain_text("Retail income bands")
    walk.shot("compare")

    telecom = demo.products["Telecom subscriber match"]
    page = walk.open(reverse("product-detail", args=[telecom]))
    expect(page.locator("main h1")).to_have_text("Telecom subscriber match")
    walk.expect_charts("canvas[data-chart=quality]")
    quote_form = page.locator(f"form[action='{reverse('quote-create', args=[telecom])}']")
    quote_form.locator("select[name=dataset]").select_option(demo.datasets["Loan applicants Q4"])
    quote_form.locator("select[name=purpose]").select_option("risk_control")
    quote_form.locator("button[type=submit]").click()
    walk.checked()
    expect(page.locator("#quote-status")).to_have_attribute("data-status", "ready")
    walk.expect_charts("canvas[data-chart^=quote-]")
    walk.axe()  # again, with the priced partial and its charts in
    walk.shot("quote")

    # Bought: the job ran (its progress complete), the result opens in this browser as a paged table.
    page.locator("main form[action$='/buy/'] button[type=submit]").click()
    walk.checked()
    expect(page.locator("main h1")).to_have_text("Telecom subscriber match")
    expect(page.locator("#order-live")).to_have_attribute("data-status", "fulfilled")
    expect(page.locator("#order-live progress").first).to_be_visible()
    page.locator("#result-open").click()
    expect(page.locator("#order-result")).to_have_attribute("data-state", "open")
    expect(page.locator("#result-table tbody tr").first).to_be_visible()
    walk.axe()
    walk.shot("order")

    page = walk.open(reverse("orders"))
    expect(page.locator("#order-list")).to_contain_text("Retail customer match")
    expect(page.locator("#order-list")).to_contain_text("Telecom subscriber match")
    walk.expect_charts("canvas[data-chart=order-spend]")
    walk.shot("orders")

    # Add funds: the bank asks, the operator approves it on the top-ups page, the statement shows it.
    page = walk.open(reverse("statement"))
    balance_before = page.locator("#balance-balance").inner_text()
    funds = page.locator(f"form[action='{reverse('funds-request-create')}']")
    funds.locator("input[name=amount]").fill("1500.00")
    funds.locator("[name=note]").fill(f"Second half of the data budget ({lang})")
    funds.locator("button[type=submit]").click()
    walk.checked()
    expect(walk.message()).to_be_visible()
    expect(page.locator("main")).to_contain_text(f"Second half of the data budget ({lang})")
    asked = FundsRequest.objects.get(organisation__slug=demo.consumer_organisation,
                                     status=FundsRequest.Status.PENDING)
    assert asked.amount == 150_000
    operator = journey(role="operator", lang=lang, username=demo.operator)
    operator.open(reverse("operator-top-ups"), axe=False)  # the operator's journey checks this page
    operator.page.locator(f"form[action='{reverse('operator-funds-approve', args=[asked.pk])}'] "
                          "button[type=submit]").click()
    operator.checked(axe=False)
    expect(operator.message()).to_be_visible()
    page = walk.open(reverse("statement"))
    expect(page.locator("#balance-balance")).not_to_have_text(balance_before)
    walk.shot("statement")

    walk.open(reverse("notifications"))
    if lang == "zh":
        walk.phone_shot(reverse("catalog"))
    walk.finish(operator)


@LANGS
def test_the_operator_reads_the_dashboard_and_approves_a_funds_request(demo, journey, lang):
    walk = journey(role="operator", lang=lang, username=demo.operator)
    walk.open(reverse("operator-dashboard"))
    walk.expect_charts("canvas[data-chart^=operator-]")
    walk.shot("dashboard")

    buyer = {"en": "Harbour Insurance", "zh": "City Credit Union"}[lang]
    approve = f"form[action='{reverse('operator-funds-approve', args=[demo.funds_requests[buyer]])}']"
    page = walk.open(reverse("operator-top-ups"))
    expect(page.locator(approve)).to_be_visible()
    walk.shot("top-ups")
    page.locator(f"{approve} button[type=submit]").click()
    walk.checked()
    expect(walk.message()).to_be_visible()
    expect(page.locator(approve)).to_have_count(0)
    assert FundsRequest.objects.get(pk=demo.funds_requests[buyer]).status == FundsRequest.Status.APPROVED

    page = walk.open(reverse("notifications"))
    expect(page.locator("main")).to_contain_text(buyer)
    walk.shot("notifications")
    walk.open(reverse("statement"))
    if lang == "zh":
        walk.phone_shot(reverse("operator-dashboard"))
    walk.finish()


@LANGS
def test_the_auditor_explores_the_log_the_batches_and_a_grant_timeline(demo, journey, lang):
    walk = journey(role="auditor", lang=lang, username=demo.auditor)
    page = walk.open(reverse("audit") + f"?subject=order:{demo.order}")
    expect(page.locator("main table tbody tr").first).to_be_visible()
    walk.shot("explorer")

    page = walk.open(reverse("audit-batches"))
    expect(page.locator(f"main tr[data-batch='{demo.batch}']")).to_be_visible()
    walk.shot("batches")

    walk.open(reverse("audit-grant-timeline", args=[demo.order]))
    walk.shot("grant-timeline")
    if lang == "zh":
        walk.phone_shot(reverse("audit"))
    walk.finish()


def test_the_language_chosen_in_the_header_is_kept_across_pages_and_browsers(demo, journey):
    """Switched to Chinese in an English browser: the next pages stay Chinese, and so does a new browser
    (no cookie) once the member signs in; switching back to English is kept the same way."""
    walk = journey(role="switcher", lang="en", username=demo.switcher)
    with walk.page.expect_navigation():
        walk.page.locator("header select[name=language]").select_option("zh-hans")
    walk.served = "zh-hans"
    walk.checked(axe=False)
    for path in (reverse("orders"), reverse("statement"), reverse("catalog")):
        walk.open(path, axe=False)  # the journeys check these pages; here only their language

    # Another browser, English by its locale, without the language cookie: the member's choice wins.
    elsewhere = journey(role="switcher", lang="en", username=demo.switcher, served="zh-hans")
    elsewhere.open(reverse("orders"), axe=False)
    with elsewhere.page.expect_navigation():
        elsewhere.page.locator("header select[name=language]").select_option("en")
    elsewhere.served = "en"
    elsewhere.checked(axe=False)
    elsewhere.open(reverse("statement"), axe=False)
    walk.finish(elsewhere)

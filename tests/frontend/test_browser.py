"""The whole purchase path in headless Chromium against the live server, with a real Celery worker and
real node processes: provider imports (sealed in the browser to its node's key) and lists, consumer
imports, quotes, buys, watches the job, opens the result sealed to a key made in its browser, and verifies
an audit entry against the root anchored on chain."""
from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from audit.chain.outbox import outbox_process
from audit.models import ChainOutbox
from audit.services import audit_batch_seal, audit_record
from compute.models import TableImport
from marketplace.models import Dataset, Order
from tests.audit.test_verify import batch_ids_past_other_tests
from tests.conftest import wait_for
from tests.marketplace.data import consumer_csv, overlapping_ids, provider_csv

# Playwright's sync API runs an event loop in this thread; the test also reads the database directly.
os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")

playwright_api = pytest.importorskip("playwright.sync_api")
expect = playwright_api.expect

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
PASSWORD = "pw-12345-long"
LIVE_TIMEOUT_MS = 90_000

pytestmark = [
    pytest.mark.browser,
    pytest.mark.e2e,
    pytest.mark.chain,
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="Chromium is not installed (make chromium)"),
]


@pytest.fixture
def browser() -> Iterator[object]:
    with playwright_api.sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture
def screenshot_dir(tmp_path: Path) -> Path:
    """Where the layout screenshots go: $BROWSER_SCREENSHOT_DIR if set, else the test's tmp dir."""
    directory = Path(os.environ.get("BROWSER_SCREENSHOT_DIR") or tmp_path)
    directory.mkdir(parents=True, exist_ok=True)
    return directory


def sign_in(browser, base_url: str, username: str):
    page = browser.new_context(viewport={"width": 1280, "height": 900}).new_page()
    page.set_default_timeout(LIVE_TIMEOUT_MS)
    page.goto(f"{base_url}/login/")
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]:has-text('Sign in')")
    expect(page.locator(".account-user")).to_contain_text(username)
    return page


def submit_import(page, base_url: str, name: str, data: bytes, *, id_column: str = "customer_id") -> None:
    """Fill the console's import form and send it: the page seals the file to the node's key and posts it."""
    page.goto(f"{base_url}/provider/")
    page.fill("#import-name", name)
    page.fill("#import-id_column", id_column)
    upload = {"name": f"{name}.csv", "mimeType": "text/csv", "buffer": data}
    page.set_input_files("#import-file", files=[upload])
    expect(page.locator("#import-submit")).to_be_enabled()  # once libsodium is ready
    page.click("#import-submit")


def import_dataset(page, base_url: str, name: str, data: bytes) -> None:
    """Import through the page and wait until the node has imported it and the console reloaded."""
    submit_import(page, base_url, name, data)
    expect(page.locator(".message-success")).to_contain_text(
        re.compile(rf"Imported {re.escape(name)}: [\d,]+ rows into your node's vault\."), timeout=LIVE_TIMEOUT_MS
    )


def open_result(page) -> list[str]:
    """Open the order's result in this browser (a key pair made here, the result sealed to it by the
    buyer's node) and return the ids of its rows."""
    expect(page.locator("#result-open")).to_be_enabled()
    page.click("#result-open")
    expect(page.locator("#order-result")).to_have_attribute("data-state", "open", timeout=LIVE_TIMEOUT_MS)
    expect(page.locator("#result-error")).to_be_hidden()
    ids = page.locator("#result-table tbody tr td:first-child").all_inner_texts()
    expect(page.locator("#result-summary")).to_have_text(f"Result: {len(ids):,} row{'' if len(ids) == 1 else 's'}")
    return ids


def test_it_sells_the_use_of_data_in_the_browser_and_verifies_the_audit_trail(
    browser, live_server, make_party, celery_worker_process, screenshot_dir
):
    provider = make_party("web-b-prov", provider=True)
    consumer = make_party("web-b-cons", provider=False, balance=500_000)
    celery_worker_process([provider.organisation.node.queue, consumer.organisation.node.queue])
    provider_ids, consumer_ids = overlapping_ids(provider=300, consumer=80, overlap=37)
    overlap = sorted(set(provider_ids) & set(consumer_ids))
    base = live_server.url

    # The provider imports its table and lists a product over it.
    as_provider = sign_in(browser, base, provider.user.username)
    import_dataset(as_provider, base, "Retail customers", provider_csv(provider_ids))
    as_provider.check("input[name=datasets]")
    as_provider.fill("#product-title", "Retail customer match")
    as_provider.fill("#product-description", "Match your customer ids against 300 retail customers.")
    as_provider.check("input[name=purposes][value=risk_control]")
    as_provider.check("input[name=purposes][value=marketing]")
    as_provider.fill("#product-base_price", "25.00")
    as_provider.fill("#product-price_per_match", "0.10")
    expect(as_provider.locator("#product-publish")).to_be_checked()  # publish now is the default
    as_provider.click("button:has-text('List product')")
    expect(as_provider.locator("h1")).to_have_text("Retail customer match")

    # The consumer imports its ids, finds the product and asks for a quote.
    as_consumer = sign_in(browser, base, consumer.user.username)
    import_dataset(as_consumer, base, "My applicants", consumer_csv(consumer_ids))
    as_consumer.screenshot(path=str(screenshot_dir / "web-console.png"), full_page=True)
    as_consumer.goto(f"{base}/products/?q=retail")
    as_consumer.screenshot(path=str(screenshot_dir / "web-catalog.png"), full_page=True)
    as_consumer.click("text=Retail customer match")
    expect(as_consumer.locator("#quality-chart")).to_be_visible()
    as_consumer.screenshot(path=str(screenshot_dir / "web-product.png"), full_page=True)
    as_consumer.select_option("#id_dataset", index=1)
    as_consumer.select_option("#id_purpose", "risk_control")
    as_consumer.click("button:has-text('Measure coverage and quote')")

    # The status block polls itself (htmx) until the private coverage measurement is done.
    status = as_consumer.locator("#quote-status")
    expect(status).to_have_attribute("data-status", "ready", timeout=LIVE_TIMEOUT_MS)
    expect(as_consumer.locator("#quote-coverage")).to_have_text(str(len(overlap)))
    total = as_consumer.locator("#quote-total").inner_text()
    as_consumer.screenshot(path=str(screenshot_dir / "web-quote.png"), full_page=True)
    as_consumer.click("button:has-text('Buy for')")

    # The order page polls its job block until the order is fulfilled.
    expect(as_consumer.locator("h1")).to_have_text("Retail customer match")
    live = as_consumer.locator("#order-live")
    expect(live).to_have_attribute("data-status", "fulfilled", timeout=LIVE_TIMEOUT_MS)
    shown = open_result(as_consumer)
    assert sorted(shown) == overlap
    assert total in as_consumer.locator("aside").inner_text()
    as_consumer.screenshot(path=str(screenshot_dir / "web-order.png"), full_page=True)

    order = Order.objects.get(buyer=consumer.organisation)
    assert order.status == Order.Status.FULFILLED

    # The provider sees the order, the count and its revoke button, not the ids.
    as_provider.goto(f"{base}/orders/{order.id}/")
    expect(as_provider.locator("#order-status")).to_have_text("Fulfilled")
    provider_text = as_provider.locator("#order-live").inner_text()
    assert f"{len(overlap)} matched records" in provider_text
    assert not set(overlap) & set(re.findall(r"P\d{5}", provider_text))
    expect(as_provider.locator("button:has-text('Revoke grant')")).to_be_visible()

    # Seal the audit log into a batch and anchor its root on chain, then verify an entry in the browser.
    batch = audit_batch_seal()
    assert batch is not None and batch.outbox_id is not None
    anchored = ChainOutbox.Status.CONFIRMED
    wait_for(lambda: outbox_process(outbox_id=batch.outbox_id).status == anchored, timeout=60)
    as_consumer.goto(f"{base}/audit/?subject=order:{order.id}&action=order.placed")
    rows = as_consumer.locator(".audit-table tbody tr")
    expect(rows).to_have_count(1)
    rows.first.locator("button:has-text('Verify')").click()
    verification = rows.first.locator(".verification")
    expect(verification).to_have_attribute("data-status", "verified")
    expect(verification).to_contain_text(batch.root[:8])
    as_consumer.screenshot(path=str(screenshot_dir / "web-audit.png"), full_page=True)


def test_it_builds_and_sells_a_joint_product_of_two_providers_in_the_browser(
    browser, live_server, make_party, celery_worker_process, screenshot_dir
):
    lead = make_party("web-j-lead", provider=True)
    partner = make_party("web-j-part", provider=True)
    consumer = make_party("web-j-cons", provider=False, balance=500_000)
    celery_worker_process([party.organisation.node.queue for party in (lead, partner, consumer)])
    lead_ids = [f"A{n:05d}" for n in range(200)]
    partner_ids = [f"B{n:05d}" for n in range(120)]
    consumer_ids = lead_ids[:30] + partner_ids[:18] + [f"X{n:05d}" for n in range(12)]
    base = live_server.url

    # The lead drafts a product (publish unticked); the partner contributes its dataset from its console.
    as_lead = sign_in(browser, base, lead.user.username)
    import_dataset(as_lead, base, "Shop A customers", provider_csv(lead_ids))
    as_lead.check("input[name=datasets]")
    as_lead.fill("#product-title", "Two-shop customer match")
    as_lead.fill("#product-description", "Customers of two retailers, matched privately against your ids.")
    as_lead.select_option("#product-category", "retail")
    as_lead.fill("#product-tags", "retail, customers, loyalty")
    as_lead.check("input[name=purposes][value=marketing]")
    # The price policy's own fields show only for the policy that uses them.
    expect(as_lead.locator("#product-price_tiers")).to_be_hidden()
    as_lead.select_option("#product-price_policy", "tiered")
    expect(as_lead.locator("#product-price_tiers")).to_be_visible()
    expect(as_lead.locator("#product-price_epsilon_rate")).to_be_hidden()
    as_lead.select_option("#product-price_policy", "contribution")
    as_lead.uncheck("#product-publish")
    as_lead.click("button:has-text('List product')")
    expect(as_lead.locator("#product-status")).to_have_text("Draft")

    as_partner = sign_in(browser, base, partner.user.username)
    import_dataset(as_partner, base, "Shop B customers", provider_csv(partner_ids))
    draft = as_partner.locator("#open-drafts .draft", has_text="Two-shop customer match")
    as_partner.screenshot(path=str(screenshot_dir / "webui-console-partner.png"), full_page=True)
    draft.locator("select").select_option(label="Shop B customers (120 rows)")
    draft.locator("button:has-text('Contribute')").click()
    expect(as_partner.locator(".message-success")).to_contain_text("is proposed for Two-shop customer match")

    as_lead.goto(f"{base}/provider/")
    row = as_lead.locator("#my-products tr", has_text="Two-shop customer match")
    expect(row).to_contain_text("Shop B customers")
    row.locator("button:has-text('Accept')").click()
    expect(as_lead.locator(".message-success")).to_contain_text("Contribution accepted")
    row.locator("button:has-text('Publish')").click()
    expect(as_lead.locator(".message-success")).to_contain_text("is published")
    expect(row.locator("button:has-text('Suspend')")).to_be_visible()
    as_lead.screenshot(path=str(screenshot_dir / "webui-console.png"), full_page=True)

    # The consumer quotes and buys; each provider's coverage and share is shown before it pays.
    as_consumer = sign_in(browser, base, consumer.user.username)
    import_dataset(as_consumer, base, "My shoppers", consumer_csv(consumer_ids))
    as_consumer.goto(f"{base}/products/?q=two-shop")
    as_consumer.click("text=Two-shop customer match")
    expect(as_consumer.locator("#contributions tbody tr")).to_have_count(2)
    expect(as_consumer.locator("#sample-preview")).to_contain_text("synthetic preview — no real record")
    as_consumer.screenshot(path=str(screenshot_dir / "webui-product.png"), full_page=True)
    as_consumer.select_option("#id_dataset", index=1)
    page_errors: list[str] = []
    as_consumer.on("pageerror", lambda error: page_errors.append(str(error)))
    as_consumer.click("button:has-text('Measure coverage and quote')")
    expect(as_consumer.locator("#quote-status")).to_have_attribute("data-status", "ready", timeout=LIVE_TIMEOUT_MS)
    expect(as_consumer.locator("#quote-coverage")).to_have_text("48")
    expect(as_consumer.locator("#quote-shares tbody tr")).to_have_count(2)
    # The contribution index and its charts, drawn once the priced partial is swapped in.
    expect(as_consumer.locator("#quote-index .index-class")).to_have_count(4)
    for chart in ("quote-price", "quote-overlap", "quote-split"):
        expect(as_consumer.locator(f'canvas[data-chart="{chart}"]')).to_have_attribute("data-drawn", "1")
    assert not page_errors, page_errors
    as_consumer.screenshot(path=str(screenshot_dir / "webui-quote.png"), full_page=True)
    as_consumer.click("button:has-text('Buy for')")
    live = as_consumer.locator("#order-live")
    expect(live).to_have_attribute("data-status", "fulfilled", timeout=LIVE_TIMEOUT_MS)
    shown = open_result(as_consumer)
    assert sorted(shown) == sorted(lead_ids[:30] + partner_ids[:18])
    expect(live.locator(".run .job")).to_have_count(2)

    # Each provider sees the split with its own share marked, and its own grant's use on chain.
    order = Order.objects.get(buyer=consumer.organisation)
    as_partner.goto(f"{base}/orders/{order.id}/")
    expect(as_partner.locator("#order-shares .row-mine")).to_contain_text(partner.organisation.name)
    expect(as_partner.locator("#order-grants .row-mine .grant-remaining")).to_have_text("4")
    as_partner.screenshot(path=str(screenshot_dir / "webui-order.png"), full_page=True)


def test_it_shows_why_a_csv_is_refused_in_the_browser_and_imports_nothing(
    browser, live_server, make_party, celery_worker_process
):
    provider = make_party("web-r-prov", provider=True)
    celery_worker_process([provider.organisation.node.queue])
    base = live_server.url
    page = sign_in(browser, base, provider.user.username)

    # A header without the id column is refused in the browser, before anything is sealed or sent.
    submit_import(page, base, "No id column", b"client,region\nC1,north\n")
    error = page.locator("#import-id_column-error")
    expect(error).to_be_visible()
    expect(error).to_contain_text("The id column 'customer_id' is not in the header (client, region)")
    expect(page.locator("#import-status")).to_have_attribute("data-status", "failed")
    expect(page.locator("#import-submit")).to_be_enabled()
    node = provider.organisation.node
    assert not TableImport.objects.filter(node=node).exists()

    # A file only the node can judge is sealed and sent; the node refuses it and says why, next to the file.
    submit_import(page, base, "Short row", b"customer_id,region\nP00001,north\nP00002\n")
    error = page.locator("#import-file-error")
    expect(error).to_contain_text("Line 3 has 1 fields", timeout=LIVE_TIMEOUT_MS)
    expect(page.locator("#import-status")).to_have_attribute("data-status", "failed")
    expect(page.locator("#import-id_column-error")).to_be_hidden()
    expect(page.locator("#import-submit")).to_be_enabled()
    refused = TableImport.objects.get(node=node)
    assert refused.status == TableImport.Status.FAILED
    assert "Line 3 has 1 fields" in refused.error
    assert not Dataset.objects.filter(organisation=provider.organisation).exists()
    assert not Dataset.objects.filter(id=refused.id).exists()


def test_it_verifies_an_audit_entry_in_the_browser_itself_against_the_root_on_chain(
    browser, live_server, make_party, screenshot_dir
):
    batch_ids_past_other_tests()
    party = make_party("web-b-check", provider=False)
    audit_record(actor=f"user:{party.user.username}", action="test.checked", subject="test:browser-check",
                 parties=[party.organisation.slug], payload={"note": "checked in the browser"})
    batch = audit_batch_seal()
    anchored = ChainOutbox.Status.CONFIRMED
    wait_for(lambda: outbox_process(outbox_id=batch.outbox_id).status == anchored, timeout=60)
    base = live_server.url

    # The entry: re-hashed with WebCrypto in the page, its path followed to the root that this browser reads
    # from the chain itself (eth_call of rootOf); the server's verdict beside it.
    page = sign_in(browser, base, party.user.username)
    page.goto(f"{base}/audit/?subject=test:browser-check")
    row = page.locator(".audit-table tbody tr")
    expect(row).to_have_count(1)
    row.locator("button:has-text('Check in this browser')").click()
    checked = row.locator(".browser-verification")
    expect(checked).to_have_attribute("data-browser-status", "verified")
    expect(checked).to_contain_text("Verified in this browser against the root on chain")
    row.locator("button:has-text('Verify')").click()
    expect(row.locator(".verification")).to_have_attribute("data-status", "verified")
    row.locator("details.proof summary").click()
    expect(row.locator("[data-proof=root]")).to_have_text(batch.root)
    page.screenshot(path=str(screenshot_dir / "web-audit-browser-check.png"), full_page=True)

    # Anyone, signed in or not, reads a batch's root on chain from the public batches page.
    public = browser.new_context().new_page()
    public.set_default_timeout(LIVE_TIMEOUT_MS)
    public.goto(f"{base}/audit/batches/")
    batch_row = public.locator(f"tr[data-batch='{batch.id}']")
    batch_row.locator("button:has-text('Read root on chain')").click()
    expect(batch_row.locator(".browser-verification")).to_have_attribute("data-browser-status", "verified")

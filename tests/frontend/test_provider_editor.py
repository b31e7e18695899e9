"""The provider's product editor and console: the live preview prices an example purchase with pricing's own
functions (the same price a real quote with that coverage gets), shows the form's and the service's errors in
the preview, the message after listing matches the product's real status, and empty consoles say what to do
next."""
from __future__ import annotations

import re

import pytest

from marketplace.formatting import money
from marketplace.models import Product, Quote
from tests.frontend.test_pages import own_dataset, signed_in
from tests.frontend.test_products_ui import draft_through_page
from tests.marketplace.data import consumer_csv, provider_csv

PREVIEW = "/provider/products/preview/"
TERMS = {"base_price": "5.00", "price_per_match": "0.10", "price_policy": "contribution", "compute_types": ["psi"]}


def preview_of(client, **params) -> str:
    response = client.get(PREVIEW, params, HTTP_HX_REQUEST="true")
    assert response.status_code == 200
    return response.content.decode()


def total_of(preview: str) -> str:
    match = re.search(r'id="terms-preview-total"><strong>(.*?)</strong>', preview)
    assert match, preview
    return match.group(1)


@pytest.mark.django_db
@pytest.mark.parametrize("policy", [
    {"price_policy": "contribution"},
    {"price_policy": "tiered", "price_tiers": "10: 0.20, *: 0.05"},
    {"price_policy": "posted"},
])
def test_the_preview_prices_an_example_as_a_real_quote_with_that_coverage_is_priced(
    make_party, policy, django_capture_on_commit_callbacks
):
    provider = make_party("web-ed-p", provider=True)
    consumer = make_party("web-ed-c", provider=False)
    provider_ids = [f"P{n:05d}" for n in range(120)]
    dataset = own_dataset(provider, "Customers", provider_csv(provider_ids))
    mine = own_dataset(consumer, "Mine", consumer_csv(provider_ids[:24] + [f"X{n}" for n in range(6)]))
    seller = signed_in(provider)
    terms = {**TERMS, **policy, "datasets": [str(dataset.id)]}

    preview = preview_of(seller, **terms, example_ids="30", example_matched="24")

    assert 'data-state="priced"' in preview and 'id="terms-preview-terms"' in preview
    listed = draft_through_page(seller, [str(dataset.id)], title="Priced", publish=True, **terms)
    assert listed.status_code == 302, listed.content.decode()[:2000]
    product = Product.objects.get(title="Priced")
    with django_capture_on_commit_callbacks(execute=True):  # the coverage job runs after the quote's commit
        asked = signed_in(consumer).post(f"/products/{product.id}/quote/", {"dataset": str(mine.id),
                                                                            "purpose": "research"})
    assert asked.status_code == 302
    quote = Quote.objects.get(product=product)
    assert quote.status == Quote.Status.READY and quote.coverage == 24
    assert total_of(preview) == money(quote.price)
    if policy["price_policy"] == "tiered":
        assert money(quote.price) == money(500 + 10 * 20 + 14 * 5)  # quality 1.0: 10 ids at 20¢, 14 at 5¢


@pytest.mark.django_db
@pytest.mark.parametrize(("change", "message"), [
    ({"base_price": "-1"}, "Ensure this value is greater than or equal to 0."),
    ({"price_per_match": "lots"}, "Enter a number."),
    ({"price_policy": "tiered", "price_tiers": "many"}, "Not a band &#x27;up to ids: rate&#x27;"),
    ({"price_policy": "tiered", "price_tiers": "10: 0.01, *: 0.05"}, "a later tier&#x27;s rate cannot exceed"),
    ({"price_policy": "noisy", "price_epsilon_rate": "2"}, "Price policy: "),
    ({"price_policy": "utility", "price_floor": "5"}, "Give the floor and the ceiling of a price by utility."),
    ({"example_ids": "10", "example_matched": "11"}, "At most the buyer&#x27;s 10 ids can match."),
])
def test_the_preview_shows_why_the_terms_cannot_be_priced(make_party, change, message):
    provider = make_party("web-ed-bad", provider=True)
    dataset = own_dataset(provider, "Customers", provider_csv([f"P{n}" for n in range(20)]))

    preview = preview_of(signed_in(provider), **{**TERMS, "datasets": [str(dataset.id)], **change})

    assert 'data-state="invalid"' in preview and message in preview
    assert "terms-preview-total" not in preview
    assert not Product.objects.exists()


@pytest.mark.django_db
def test_the_console_shows_the_editor_with_its_first_preview_and_a_hint_until_datasets_are_chosen(make_party):
    provider = make_party("web-ed-first", provider=True)
    dataset = own_dataset(provider, "Customers", provider_csv([f"P{n}" for n in range(20)]))
    client = signed_in(provider)

    page = client.get("/provider/").content.decode()

    editor = page[page.index('id="product-form"'):]
    editor = editor[:editor.index("</form>")]
    assert 'id="terms-preview" aria-live="polite"' in editor
    assert f'hx-get="{PREVIEW}" hx-include="#product-form"' in editor
    assert 'name="example_ids"' in editor and 'name="example_matched"' in editor
    assert 'id="terms-preview-terms"' in editor and 'id="terms-preview-hint"' in editor  # no dataset ticked yet
    assert "$10.00 base" in editor  # the form's initial base price, in words
    chosen = preview_of(client, **{**TERMS, "datasets": [str(dataset.id)], "base_price": "10.00"})
    assert total_of(chosen) == money(1000 + 2500 * 10)  # 2,500 matched × 10¢ × a quality factor of 1.0
    assert client.get(PREVIEW, {"base_price": "1"}).status_code == 200  # a partial form is a preview, not a 4xx
    assert client.post(PREVIEW, TERMS).status_code == 405


@pytest.mark.django_db
@pytest.mark.parametrize("publish", [True, False])
def test_the_message_after_listing_matches_the_products_real_status(make_party, publish):
    provider = make_party("web-ed-msg", provider=True)
    dataset = own_dataset(provider, "Customers", provider_csv([f"P{n}" for n in range(20)]))
    client = signed_in(provider)

    listed = draft_through_page(client, [str(dataset.id)], title="Either way", publish=publish)
    page = client.get(listed["Location"]).content.decode()

    product = Product.objects.get(title="Either way")
    messages = " ".join(re.findall(r'<li class="message message-success">(.*?)</li>', page, re.S))
    if publish:
        assert product.status == Product.Status.PUBLISHED
        assert "Published Either way: it is on sale" in messages and "Drafted" not in messages
    else:
        assert product.status == Product.Status.DRAFT
        assert "Drafted Either way." in messages and "publish it from My data" in messages
        assert "Published" not in messages
    console = client.get("/provider/").content.decode()
    row = console[console.index(f'data-product="{product.id}"'):]
    badge = "Published" if publish else "Draft"
    assert f'<span class="badge badge-{product.status}">{badge}</span>' in row[:row.index("</tr>")]


@pytest.mark.django_db
def test_empty_consoles_say_what_to_do_next(make_party):
    provider = make_party("web-ed-empty", provider=True)
    consumer = make_party("web-ed-empty-c", provider=False)
    client = signed_in(provider)

    page = client.get("/provider/").content.decode()
    assert 'id="datasets-empty"' in page and 'href="#import-dataset"' in page
    products = page[page.index('id="products-empty"'):]
    assert "Import a dataset first; then list a product over it." in products[:600]

    own_dataset(provider, "Customers", provider_csv([f"P{n}" for n in range(20)]))
    page = client.get("/provider/").content.decode()
    assert 'id="datasets-empty"' not in page
    products = page[page.index('id="products-empty"'):]
    assert 'href="#list-product"' in products[:800]

    buyer_page = signed_in(consumer).get("/provider/").content.decode()
    assert 'id="datasets-empty"' in buyer_page and "the list of ids you want to match" in buyer_page
    assert 'id="my-products"' not in buyer_page


@pytest.mark.django_db
def test_the_provider_pages_render_in_chinese(make_party):
    provider = make_party("web-ed-zh", provider=True)
    dataset = own_dataset(provider, "Customers", provider_csv([f"P{n}" for n in range(40)]))
    client = signed_in(provider)
    for path in ("/provider/", f"/provider/datasets/{dataset.id}/", "/provider/sales/",
                 f"{PREVIEW}?base_price=1&price_per_match=0.1&datasets={dataset.id}"):
        response = client.get(path, HTTP_ACCEPT_LANGUAGE="zh-hans")
        assert response.status_code == 200, path
        assert response.headers["Content-Language"] == "zh-hans", path
    console = client.get("/provider/", HTTP_ACCEPT_LANGUAGE="zh-hans").content.decode()
    assert '<html lang="zh-hans"' in console and 'id="terms-preview"' in console

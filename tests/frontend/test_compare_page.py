"""Products side by side: the selector that gathers them (providers, coverage, quality, price terms and an
example price, protocols, category, the buyer's privacy budget), the catalog's checkboxes that choose them
without any script, the compare page, and a clear message for a choice that cannot be compared."""
from __future__ import annotations

import math
import re
import uuid
from decimal import ROUND_FLOOR, Decimal
from typing import Any

import pytest
from django.test import Client

from marketplace.models import PrivacyBudget, Quote
from marketplace.selectors_catalog import EXAMPLE_MATCHED, CompareRefused, product_compare
from marketplace.services.quotes import quote_request
from pricing.policy import quality_factor
from tests.frontend.test_pages import own_dataset, signed_in
from tests.marketplace.data import consumer_csv
from tests.marketplace.test_catalog import listed, provider_dataset

pytestmark = pytest.mark.django_db


@pytest.fixture
def shop(make_party) -> dict[str, Any]:
    acme = make_party("acme-cmp", provider=True)
    beta = make_party("beta-cmp", provider=True)
    buyer = make_party("buyer-cmp", provider=False)
    acme_data, beta_data = provider_dataset(acme), provider_dataset(beta)
    return {
        "acme": acme, "beta": beta, "buyer": buyer,
        "footfall": listed(acme, acme_data, "Retail footfall", category="retail", base_price=500, price_per_match=4),
        "posted": listed(beta, beta_data, "Posted subscribers", category="telecom",
                         price_policy={"kind": "posted", "amount": 7700}),
        "stats": listed(beta, beta_data, "Noisy stats", compute_types=["cross_stats"], privacy_epsilon=Decimal(4)),
        "draft": listed(acme, acme_data, "Still a draft", publish=False),
        "mine": own_dataset(buyer, "My ids", consumer_csv(["acme-cmp-1", "acme-cmp-2", "acme-cmp-3", "X1"])),
    }


def ids(*products: Any) -> list[str]:
    return [str(product.id) for product in products]


def expected_example(product: Any) -> int:
    table = product.contributions.get().dataset.table
    factor = quality_factor(**{name: table.quality[name] for name in ("completeness", "uniqueness", "validity",
                                                                     "consistency")},
                            freshness=table.quality.get("freshness"))
    factor = Decimal(str(factor)).quantize(Decimal("0.001"), rounding=ROUND_FLOOR)
    return product.base_price + math.ceil(product.price_per_match * EXAMPLE_MATCHED * factor)


def test_the_selector_gathers_each_product_in_the_order_asked(shop):
    footfall, posted, stats = shop["footfall"], shop["posted"], shop["stats"]

    columns = product_compare(product_ids=ids(stats, footfall, posted, footfall), buyer=shop["buyer"].organisation)

    assert [column["product"] for column in columns] == [stats, footfall, posted]  # each once, as asked
    first, second, third = columns
    assert second["providers"] == [shop["acme"].organisation] and third["providers"] == [shop["beta"].organisation]
    assert second["category"] == "Retail" and third["category"] == "Telecom"
    assert second["protocols"] == ["Private set intersection"] and first["protocols"] == ["Cross-table statistics"]
    assert second["records"] == 12 and second["datasets"] == 1
    table = footfall.contributions.get().dataset.table
    assert second["quality"]["completeness"] == table.quality["completeness"]
    assert second["example"]["cents"] == expected_example(footfall)
    assert third["example"] == {"cents": 7700, "matched": EXAMPLE_MATCHED, "epsilon": None, "kind": "posted"}
    assert second["coverage"] is None  # no quote yet
    # The buyer has spent nothing: each budget is what its first charge would open.
    assert [(b.kind, b.opened, b.epsilon_spent) for b in second["budgets"]] == [("quote", False, 0)]
    assert [(b.kind, b.epsilon_total) for b in first["budgets"]] == [("quote", Decimal("100000")),
                                                                     ("stats", Decimal(4))]


def test_the_selector_shows_no_budget_to_a_visitor(shop):
    columns = product_compare(product_ids=ids(shop["footfall"], shop["posted"]), buyer=None)
    assert [column["budgets"] for column in columns] == [[], []]


@pytest.mark.parametrize(
    ("choose", "message"),
    [
        (lambda s: ids(s["footfall"]), "Choose at least 2 products to compare; you chose 1."),
        (lambda s: ids(s["footfall"], s["footfall"]), "you chose 1."),
        (lambda s: [], "you chose 0."),
        (lambda s: ids(s["footfall"], s["posted"], s["stats"]) + [str(uuid.uuid4()), str(uuid.uuid4())],
         "Compare at most 4 products at a time; you chose 5."),
        (lambda s: ids(s["footfall"]) + ["not-an-id"], "“not-an-id” is not a product id"),
        (lambda s: ids(s["footfall"], s["draft"]), "Not in the catalog (unknown, or no longer on sale)"),
    ],
)
def test_the_selector_refuses_what_cannot_be_compared(shop, choose, message):
    with pytest.raises(CompareRefused) as refused:
        product_compare(product_ids=choose(shop), buyer=shop["buyer"].organisation)
    assert message in refused.value.message
    assert refused.value.status == 400


def test_it_names_the_unknown_ids_and_keeps_the_ones_it_found(shop):
    unknown = str(uuid.uuid4())
    with pytest.raises(CompareRefused) as refused:
        product_compare(product_ids=[*ids(shop["footfall"], shop["posted"], shop["draft"]), unknown])
    assert str(shop["draft"].id) in refused.value.message and unknown in refused.value.message
    assert refused.value.extra["found"] == ids(shop["footfall"], shop["posted"])


def test_the_catalog_ticks_products_into_a_get_form_that_needs_no_script(client, shop):
    page = client.get("/products/").content.decode()
    assert '<form method="get" action="/products/compare/" id="compare-form"' in page
    for product in (shop["footfall"], shop["posted"], shop["stats"]):
        box = re.search(rf'<label class="compare-pick" for="compare-{product.id}">(.*?)</label>', page, re.S)
        assert box, product.title
        assert f'name="id" value="{product.id}" form="compare-form"' in box.group(1)
        assert product.title in box.group(1)  # the checkbox's accessible name says which product
    assert 'id="compare-submit"' in page and "Compare selected" in page


def test_the_compare_page_shows_the_products_side_by_side(client, shop):
    footfall, posted = shop["footfall"], shop["posted"]

    response = client.get("/products/compare/", {"id": ids(footfall, posted)})

    page = response.content.decode()
    assert response.status_code == 200
    headers = re.findall(r'<th scope="col" class="compare-product">\s*<a href="/products/([0-9a-f-]+)/">([^<]+)</a>',
                         page)
    assert headers == [(str(footfall.id), "Retail footfall"), (str(posted.id), "Posted subscribers")]
    for row in ("Provider", "Category", "Protocols", "Records", "Your ids it holds", "Completeness", "Price terms",
                "Example price", "ε used / total, left"):
        assert f'<th scope="row">{row}</th>' in page, row
    assert "Acme-Cmp" in page and "Beta-Cmp" in page and ">Telecom<" in page
    assert "$77.00" in page and f"for {EXAMPLE_MATCHED:,} of your ids matched" in page
    assert "Sign in to see the budget you have left" in page  # a visitor sees no budget
    assert f'href="/products/{footfall.id}/#get-quote"' in page


def test_the_compare_page_shows_the_buyers_budget_and_last_coverage(shop):
    footfall, stats, buyer = shop["footfall"], shop["stats"], shop["buyer"]
    client = signed_in(buyer)
    url = f"/products/compare/?id={footfall.id}&id={stats.id}"

    before = client.get(url).content.decode()
    assert before.count('data-opened="false"') == 3  # quote budget of both, statistics budget of one
    assert "Nothing used yet: your first quote here opens a budget of ε 100000" in before
    assert "Nothing used yet: your first noisy statistics run here opens a budget of ε 4" in before
    assert "Not measured yet." in before

    quote = quote_request(buyer=buyer.organisation, product_id=str(footfall.id), dataset_id=str(shop["mine"].id),
                          purpose="risk_control", actor="test")
    Quote.objects.filter(id=quote.id).update(status=Quote.Status.READY, coverage=3)  # as once measured
    after = client.get(url).content.decode()

    budget = PrivacyBudget.objects.get(buyer=buyer.organisation, product=footfall)
    assert budget.epsilon_spent == 100
    assert "ε 100 / ε 100000 used" in after and "ε 99900 left" in after
    assert after.count('data-opened="false"') == 2
    assert re.search(r"3 of 4</span>\s*<span class=\"nowrap muted\">\(75.0%\)</span>", after)
    assert f'href="/quotes/{quote.id}/"' in after


@pytest.mark.parametrize(
    ("query", "message", "retry"),
    [
        ("id={footfall}", "Choose at least 2 products to compare; you chose 1.", False),
        ("", "you chose 0.", False),
        ("id={footfall}&id={posted}&id={stats}&id={draft}&id={unknown}", "at most 4 products", False),
        ("id={footfall}&id={posted}&id={draft}", "Not in the catalog (unknown, or no longer on sale): {draft}", True),
        ("id={footfall}&id=%3Cscript%3E", "is not a product id", False),
    ],
)
def test_the_compare_page_says_why_a_choice_cannot_be_compared(client, shop, query, message, retry):
    values = {name: shop[name].id for name in ("footfall", "posted", "stats", "draft")} | {"unknown": uuid.uuid4()}

    response = client.get("/products/compare/?" + query.format(**values))

    page = response.content.decode()
    assert response.status_code == 400
    assert '<div class="form-error" role="alert" id="compare-error">' in page
    assert message.format(**values) in page
    assert "<script>" not in page and 'id="compare-table"' not in page
    assert 'href="/products/">Choose products in the catalog</a>' in page
    assert ('id="compare-retry"' in page) is retry
    if retry:
        assert f'href="/products/compare/?id={values["footfall"]}&amp;id={values["posted"]}"' in page


def test_a_signed_in_auditor_sees_the_products_without_a_budget(shop, make_party):
    auditor = make_party("auditor-cmp", provider=False)
    auditor.organisation.is_auditor = True
    auditor.organisation.save()
    page = signed_in(auditor).get(f"/products/compare/?id={shop['footfall'].id}&id={shop['posted'].id}")
    assert page.status_code == 200 and 'data-kind="quote"' not in page.content.decode()


@pytest.mark.parametrize("signed", [False, True])
def test_the_compare_and_catalog_pages_render_in_chinese(shop, signed):
    client = signed_in(shop["buyer"]) if signed else Client()
    for url in ("/products/", f"/products/compare/?id={shop['footfall'].id}&id={shop['stats'].id}",
                "/products/?q=nothing-matches-this"):
        response = client.get(url, HTTP_ACCEPT_LANGUAGE="zh-hans")
        assert response.status_code == 200, url
        assert '<html lang="zh-hans"' in response.content.decode(), url
    refused = client.get(f"/products/compare/?id={shop['footfall'].id}", HTTP_ACCEPT_LANGUAGE="zh-hans")
    assert refused.status_code == 400 and '<html lang="zh-hans"' in refused.content.decode()

"""Catalog pages are cached for a few seconds and invalidated by any product change."""
import pytest

from marketplace.models import Product
from marketplace.services.catalog import product_transition
from tests.marketplace.api_flow import client_for, list_product, upload
from tests.marketplace.data import provider_csv

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.chain]


def test_it_serves_a_repeated_catalog_page_from_the_cache_until_a_product_changes(
    make_party, settings, django_assert_num_queries
):
    settings.CATALOG_CACHE_SECONDS = 60
    provider = make_party("cache-prov", provider=True)
    client = client_for(provider.token)
    listed = list_product(client, upload(client, "d", provider_csv([f"P{n}" for n in range(10)]))["id"],
                          title="Cached product")
    first = client.get("/api/products/", {"q": "Cached"}).json()
    assert [p["id"] for p in first["results"]] == [listed["id"]]

    with django_assert_num_queries(1):  # the token lookup only: the page comes from the cache
        again = client.get("/api/products/", {"q": "Cached"}).json()
    assert again == first

    product_transition(product=Product.objects.get(id=listed["id"]), organisation=provider.organisation,
                       status="suspended", actor="test")
    assert client.get("/api/products/", {"q": "Cached"}).json()["results"] == []


def test_it_caches_a_published_product_but_never_a_draft(make_party, settings, django_assert_num_queries):
    settings.CATALOG_CACHE_SECONDS = 60
    provider = make_party("cache-detail", provider=True)
    client = client_for(provider.token)
    dataset = upload(client, "d", provider_csv([f"P{n}" for n in range(10)]))["id"]
    published = list_product(client, dataset, title="Cached detail")
    draft = list_product(client, dataset, title="Draft detail", publish=False)
    first = client.get(f"/api/products/{published['id']}/").json()
    with django_assert_num_queries(1):  # the token lookup only
        assert client.get(f"/api/products/{published['id']}/").json() == first
    assert client.get(f"/api/products/{draft['id']}/").status_code == 200  # its provider sees the draft
    stranger = make_party("cache-stranger", provider=False)
    assert client_for(stranger.token).get(f"/api/products/{draft['id']}/").status_code == 404

    product_transition(product=Product.objects.get(id=published["id"]), organisation=provider.organisation,
                       status="suspended", actor="test")
    assert client_for(stranger.token).get(f"/api/products/{published['id']}/").status_code == 404

import pytest

from audit.chain.devnode import rpc_ready


@pytest.mark.django_db
def test_it_serves_the_home_page(client):
    response = client.get("/")
    assert response.status_code == 200
    assert b"Data marketplace" in response.content


@pytest.mark.django_db
def test_it_serves_the_openapi_schema(client):
    response = client.get("/api/schema/")
    assert response.status_code == 200
    assert b"openapi" in response.content


def test_it_starts_a_throwaway_chain(ganache_url):
    assert rpc_ready(ganache_url)

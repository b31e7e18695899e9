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


@pytest.mark.django_db
def test_it_serves_the_browsable_api_page_from_its_own_static_files(client):
    response = client.get("/api/docs/")
    page = response.content.decode()
    assert response.status_code == 200
    assert "/static/drf_spectacular_sidecar/swagger-ui-dist/" in page
    assert "cdn." not in page and "https://" not in page.replace("https://swagger.io", "")

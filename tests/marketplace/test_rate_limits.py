"""Rate limits per token (per user for session auth), reads and writes counted apart: past the limit a
clear 429 with Retry-After and the usual error body."""
from __future__ import annotations

import pytest
from django.core.cache import cache
from rest_framework.test import APIClient

from tests.marketplace.api_flow import client_for

pytestmark = pytest.mark.django_db


@pytest.fixture
def tiny_rates(settings):
    settings.API_RATE_READ = "3/min"
    settings.API_RATE_WRITE = "2/min"
    cache.clear()
    yield
    cache.clear()


def test_it_answers_429_with_retry_after_past_the_read_limit_of_a_token(make_party, tiny_rates):
    party = make_party("rate-read", provider=False)
    client = client_for(party.token)
    assert [client.get("/api/me/").status_code for _ in range(3)] == [200, 200, 200]
    response = client.get("/api/datasets/")
    assert response.status_code == 429
    assert 1 <= int(response["Retry-After"]) <= 60
    body = response.json()
    assert set(body) == {"message", "extra"} and "throttled" in body["message"]


def test_it_counts_each_token_and_reads_and_writes_apart(make_party, tiny_rates):
    party = make_party("rate-apart", provider=False)
    first = client_for(party.token)
    spare = first.post("/api/tokens/create/", {"name": "second"}, format="json").json()["secret"]
    assert [first.get("/api/me/").status_code for _ in range(4)] == [200, 200, 200, 429]  # the write is apart
    assert client_for(spare).get("/api/me/").status_code == 200  # another token has its own budget
    assert first.post("/api/tokens/create/", {"name": "third"}, format="json").status_code == 201
    refused = first.post("/api/tokens/create/", {"name": "fourth"}, format="json")
    assert refused.status_code == 429 and "Retry-After" in refused
    assert set(party.user.member.api_tokens.values_list("name", flat=True)) == {"First token", "second", "third"}


def test_it_limits_session_users_by_user(make_party, tiny_rates):
    party = make_party("rate-session", provider=False)
    client = APIClient()
    client.force_authenticate(party.user)
    assert [client.get("/api/me/").status_code for _ in range(4)] == [200, 200, 200, 429]


def test_it_turns_a_limit_off_when_its_rate_is_empty(make_party, settings):
    settings.API_RATE_READ = None
    cache.clear()
    client = client_for(make_party("rate-off", provider=False).token)
    assert {client.get("/api/me/").status_code for _ in range(150)} == {200}

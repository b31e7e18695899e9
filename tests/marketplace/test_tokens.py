"""API tokens per member: created with a secret shown once (only its digest stored), listed, revoked,
expiring; a bad, expired or revoked token or a disabled account answers 401. Owners manage members."""
from __future__ import annotations

import hashlib
import re
from datetime import timedelta

import pytest
from django.contrib.auth import get_user_model
from django.utils import timezone
from rest_framework.test import APIClient

from marketplace.models import ApiToken, Member
from marketplace.services.organisations import member_create
from tests.marketplace.api_flow import client_for

pytestmark = pytest.mark.django_db


def test_it_creates_a_token_whose_secret_is_shown_once_and_stored_only_as_a_digest(make_party):
    party = make_party("tok-create", provider=False)
    client = client_for(party.token)
    response = client.post("/api/tokens/create/", {"name": "nightly script", "expires_in_days": 7}, format="json")
    assert response.status_code == 201
    body = response.json()
    secret = body["secret"]
    assert re.fullmatch(r"[0-9a-f]{40}", secret)
    assert body["prefix"] == secret[:8] and body["name"] == "nightly script" and body["active"] is True
    token = ApiToken.objects.get(pk=body["id"])
    assert token.digest == hashlib.sha256(secret.encode()).hexdigest()
    stored = " ".join(str(value) for value in ApiToken.objects.values_list().get(pk=token.pk))
    assert secret not in stored
    assert timedelta(days=6, hours=23) < token.expires_at - timezone.now() <= timedelta(days=7)
    listed = client.get("/api/tokens/").json()
    assert {row["id"] for row in listed} == {token.pk, party.user.member.api_tokens.exclude(pk=token.pk).get().pk}
    assert secret not in client.get("/api/tokens/").content.decode()
    assert client_for(secret).get("/api/me/").json()["username"] == party.user.username


def test_it_defaults_to_ninety_days_and_records_the_last_use(make_party):
    party = make_party("tok-default", provider=False)
    token = ApiToken.objects.get(member__user=party.user)
    assert timedelta(days=89, hours=23) < token.expires_at - timezone.now() <= timedelta(days=90)
    assert token.last_used_at is None
    assert client_for(party.token).get("/api/me/").status_code == 200
    token.refresh_from_db()
    assert token.last_used_at is not None


@pytest.mark.parametrize("body", [
    {"name": "x", "expires_in_days": 0},
    {"name": "x", "expires_in_days": 366},
    {"name": "x", "expires_in_days": "soon"},
    {"name": "", "expires_in_days": 30},
    {"name": "x" * 101},
    {},
])
def test_it_refuses_a_bad_token_request_and_writes_nothing(make_party, body):
    party = make_party("tok-bad", provider=False)
    before = ApiToken.objects.count()
    response = client_for(party.token).post("/api/tokens/create/", body, format="json")
    assert response.status_code == 400
    assert response.json()["message"] and "fields" in response.json()["extra"]
    assert ApiToken.objects.count() == before


def test_it_answers_401_to_an_expired_token(make_party):
    party = make_party("tok-expired", provider=False)
    ApiToken.objects.filter(member__user=party.user).update(expires_at=timezone.now() - timedelta(seconds=1))
    response = client_for(party.token).get("/api/me/")
    assert response.status_code == 401
    assert "expired" in response.json()["message"]
    assert response["WWW-Authenticate"] == "Token"


def test_it_answers_401_to_a_revoked_token_and_refuses_to_revoke_it_twice(make_party):
    party = make_party("tok-revoke", provider=False)
    spare = client_for(party.token).post("/api/tokens/create/", {"name": "spare"}, format="json").json()
    client = client_for(spare["secret"])
    first = ApiToken.objects.filter(member__user=party.user).exclude(pk=spare["id"]).get()
    response = client.post(f"/api/tokens/{first.pk}/revoke/")
    assert response.status_code == 200 and response.json()["revoked_at"] and response.json()["active"] is False
    refused = client_for(party.token).get("/api/me/")
    assert refused.status_code == 401 and "revoked" in refused.json()["message"]
    again = client.post(f"/api/tokens/{first.pk}/revoke/")
    assert again.status_code == 409
    assert client.get("/api/me/").status_code == 200  # the other token still works


def test_it_answers_401_for_a_disabled_account(make_party):
    party = make_party("tok-disabled", provider=False)
    get_user_model().objects.filter(pk=party.user.pk).update(is_active=False)
    response = client_for(party.token).get("/api/me/")
    assert response.status_code == 401
    assert "disabled" in response.json()["message"]


@pytest.mark.parametrize("header", ["Token", "Token a b", "Token " + "f" * 40, "Token " + "x" * 500, "Token ünïcode"])
def test_it_answers_401_to_a_malformed_or_unknown_token(make_party, header):
    make_party("tok-malformed", provider=False)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=header.encode().decode("latin-1"))
    response = client.get("/api/me/")
    assert response.status_code == 401
    assert response.json()["message"]


def test_it_answers_404_when_revoking_another_organisations_token(make_party):
    mine = make_party("tok-own", provider=False)
    theirs = make_party("tok-theirs", provider=False)
    their_token = ApiToken.objects.get(member__user=theirs.user)
    for token_id in (their_token.pk, 999_999_999, 2**70):
        response = client_for(mine.token).post(f"/api/tokens/{token_id}/revoke/")
        assert response.status_code == 404, token_id
        assert response.json()["message"] == "Token not found."
    their_token.refresh_from_db()
    assert their_token.revoked_at is None
    assert client_for(theirs.token).get("/api/me/").status_code == 200


def test_it_lets_an_owner_revoke_a_members_token_but_not_a_member_an_owners(make_party):
    owner = make_party("tok-roles", provider=False)
    _, issued = member_create(organisation=owner.organisation, username="tok-roles-member",
                              password="pw-12345-long", role=Member.Role.MEMBER)
    member_client = client_for(issued.secret)
    owner_token = ApiToken.objects.get(member__user=owner.user)
    assert member_client.post(f"/api/tokens/{owner_token.pk}/revoke/").status_code == 404
    assert member_client.get("/api/organisation/tokens/").status_code == 403
    listed = client_for(owner.token).get("/api/organisation/tokens/").json()
    assert {row["member"] for row in listed} == {owner.user.username, "tok-roles-member"}
    assert client_for(owner.token).post(f"/api/tokens/{issued.token.pk}/revoke/").status_code == 200
    assert member_client.get("/api/me/").status_code == 401


def test_it_lets_an_owner_add_disable_and_enable_members(make_party):
    owner = make_party("mem-owner", provider=False)
    client = client_for(owner.token)
    created = client.post("/api/organisation/members/create/",
                          {"username": "mem-new", "password": "a-long-passphrase"}, format="json")
    assert created.status_code == 201
    body = created.json()
    assert (body["username"], body["role"], body["active"]) == ("mem-new", "member", True)
    new_client = client_for(body["token"])
    assert new_client.get("/api/me/").json()["organisation"] == owner.organisation.slug
    assert new_client.post("/api/organisation/members/create/",
                           {"username": "mem-other", "password": "a-long-passphrase"}, format="json").status_code == 403
    assert client.post(f"/api/organisation/members/{body['id']}/disable/").json()["active"] is False
    assert new_client.get("/api/me/").status_code == 401
    assert client.post(f"/api/organisation/members/{body['id']}/enable/").json()["active"] is True
    assert new_client.get("/api/me/").status_code == 200
    own_id = owner.user.member.pk
    assert client.post(f"/api/organisation/members/{own_id}/disable/").status_code == 409
    usernames = {row["username"] for row in client.get("/api/organisation/members/").json()}
    assert usernames == {owner.user.username, "mem-new"}


@pytest.mark.parametrize(("body", "field"), [
    ({"username": "mem-weak", "password": "password"}, "password"),
    ({"username": "mem-owner-user", "password": "a-long-passphrase"}, "username"),
    ({"username": "bad name!", "password": "a-long-passphrase"}, "username"),
    ({"username": "mem-role", "password": "a-long-passphrase", "role": "king"}, "role"),
])
def test_it_refuses_a_bad_new_member_and_writes_nothing(make_party, body, field):
    owner = make_party("mem-owner", provider=False)
    users, tokens = get_user_model().objects.count(), ApiToken.objects.count()
    response = client_for(owner.token).post("/api/organisation/members/create/", body, format="json")
    assert response.status_code == 400
    assert field in response.json()["message"] or field in response.json()["extra"].get("fields", {})
    assert (get_user_model().objects.count(), ApiToken.objects.count()) == (users, tokens)


def test_it_answers_404_for_another_organisations_member(make_party):
    owner = make_party("mem-a", provider=False)
    other = make_party("mem-b", provider=False)
    response = client_for(owner.token).post(f"/api/organisation/members/{other.user.member.pk}/disable/")
    assert response.status_code == 404
    other.user.refresh_from_db()
    assert other.user.is_active


def test_it_offers_no_registration_api(make_party):
    party = make_party("no-reg-api", provider=False)
    assert client_for(party.token).post("/api/register/", {}, format="json").status_code == 404
    assert APIClient().post("/api/register/", {}, format="json").status_code == 404


def test_it_authenticates_a_token_with_one_query_and_no_write_on_repeated_use(make_party,
                                                                            django_assert_num_queries):
    party = make_party("tok-queries", provider=False)
    client = client_for(party.token)
    assert client.get("/api/tokens/").status_code == 200  # first use: records last_used_at
    with django_assert_num_queries(2):  # the token with its member, user and organisation; the list
        assert client.get("/api/tokens/").status_code == 200

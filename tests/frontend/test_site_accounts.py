"""The account pages (sign in, register, API tokens) and the account bar: every input labelled, a refused form
comes back with what was typed (never the passwords), empty lists say what to do, both languages."""
from __future__ import annotations

import re

import pytest
from django.test import Client

from marketplace.models import ApiToken
from marketplace.services.organisations import member_create, organisation_create

PASSWORD = "pw-12345-long"
REGISTRATION = {"name": "Echo Insurance", "slug": "echo-ins", "kind": "consumer", "username": "erin",
                "password": "a-long-passphrase-1", "password_again": "a-long-passphrase-1"}


def unlabelled_inputs(page: str) -> list[str]:
    """Inputs a reader cannot name: not hidden, with no <label for> and outside a fieldset with a legend."""
    form_part = page[page.index("<main"):]
    labelled = set(re.findall(r'<label[^>]*\bfor="([^"]+)"', form_part))
    grouped = set()
    for fieldset in re.findall(r"<fieldset.*?</fieldset>", form_part, re.S):
        if "<legend>" in fieldset:
            grouped |= set(re.findall(r'<input[^>]*\bid="([^"]+)"', fieldset))
    missing = []
    for tag in re.findall(r"<(?:input|select|textarea)\b[^>]*>", form_part):
        if re.search(r'type="(hidden|submit)"', tag):
            continue
        found = re.search(r'\bid="([^"]+)"', tag)
        if found is None or (found.group(1) not in labelled and found.group(1) not in grouped):
            missing.append(tag)
    return missing


def owner(slug: str) -> tuple[Client, str]:
    organisation = organisation_create(slug=slug, name=slug.title(), is_provider=False, is_consumer=True)
    user, _ = member_create(organisation=organisation, username=f"{slug}-owner", password=PASSWORD, role="owner")
    client = Client()
    client.force_login(user)
    return client, user.username


@pytest.mark.django_db
@pytest.mark.parametrize("language", ["en", "zh-hans"])
def test_the_account_pages_label_every_input_in_both_languages(client, language):
    signed_in, _ = owner(f"acc-lbl-{language}")
    pages = {"/login/": client.get("/login/", HTTP_ACCEPT_LANGUAGE=language),
             "/register/": client.get("/register/", HTTP_ACCEPT_LANGUAGE=language),
             "/account/tokens/": signed_in.get("/account/tokens/", HTTP_ACCEPT_LANGUAGE=language)}

    for path, response in pages.items():
        page = response.content.decode()
        assert response.status_code == 200, path
        assert f'<html lang="{language}"' in page, path
        assert not unlabelled_inputs(page), (path, unlabelled_inputs(page))
    register = pages["/register/"].content.decode()
    assert re.search(r'<fieldset class="field">\s*<legend>', register)  # the organisation kind: a named group
    assert 'autocomplete="new-password"' in register and 'aria-describedby="id_slug_helptext"' in register
    assert 'id="id_slug_helptext"' in register


@pytest.mark.django_db
def test_a_refused_registration_keeps_what_was_typed_but_the_passwords(client):
    organisation_create(slug="echo-ins", name="Echo Taken", is_provider=False, is_consumer=True)

    response = client.post("/register/", REGISTRATION)

    page = response.content.decode()
    assert response.status_code == 400
    assert "This slug is taken." in page
    assert 'value="Echo Insurance"' in page and 'value="echo-ins"' in page and 'value="erin"' in page
    assert re.search(r'<input type="radio" name="kind" value="consumer"[^>]*checked', page)
    assert REGISTRATION["password"] not in page
    assert 'id="register-kept"' in page


@pytest.mark.django_db
def test_a_refused_sign_in_keeps_the_username(client):
    owner("acc-login")

    response = client.post("/login/", {"username": "acc-login-owner", "password": "wrong"})

    page = response.content.decode()
    assert response.status_code == 200 and 'role="alert"' in page
    assert 'value="acc-login-owner"' in page and 'value="wrong"' not in page


@pytest.mark.django_db
def test_the_tokens_page_keeps_a_refused_name_and_says_what_to_do_when_empty():
    client, username = owner("acc-tok")
    ApiToken.objects.filter(member__user__username=username).delete()

    empty = client.get("/account/tokens/").content.decode()
    refused = client.post("/account/tokens/", {"name": "nightly listing", "expires_in_days": 4000})

    assert "No tokens yet: create one with the form on this page to call the API from a script." in empty
    assert "No other member of your organisation has a token." in empty
    page = refused.content.decode()
    assert refused.status_code == 400
    assert 'value="nightly listing"' in page and 'value="4000"' in page
    assert re.search(r'class="field field-invalid">\s*<label for="id_expires_in_days"', page)
    assert not ApiToken.objects.filter(member__user__username=username).exists()


@pytest.mark.django_db
def test_the_account_bar_names_the_balance_and_signs_out_with_a_button():
    client, username = owner("acc-bar")

    page = client.get("/").content.decode()

    bar = page[page.index('<div class="account">'):page.index("</header>")]
    assert username in bar and "Acc-Bar" in bar
    assert "Available balance:" in bar and 'title="Available balance; in escrow:' in bar
    assert '<button type="submit" class="btn btn-quiet btn-small">Sign out</button>' in bar
    anonymous = Client().get("/products/").content.decode()
    assert 'href="/login/?next=/products/"' in anonymous

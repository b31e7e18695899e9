"""The API answers its refusals in the language the client asks for (Accept-Language), with the same status,
while the audit log keeps every recorded denial in English.

The project's Simplified Chinese catalogue is compiled only once every message has its translation, so these
tests compile a small catalogue of their own (the messages they meet, as the project's catalogue translates
them) and point LOCALE_PATHS at it: a message that does not go through gettext, or whose msgid differs from
the one in the code, comes back in English and fails them. The last test checks the project's own catalogue,
once it exists.
"""
from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from babel.messages.catalog import Catalog
from babel.messages.mofile import write_mo
from django.conf import settings
from django.test import override_settings
from django.utils import translation

from audit.models import AuditEntry
from marketplace.models import Member
from marketplace.services.organisations import member_create, organisation_create
from tests.marketplace.api_flow import client_for

pytestmark = pytest.mark.django_db

ZH = "zh-hans"
PROJECT_CATALOGUE = settings.BASE_DIR / "config" / "locale" / "zh_Hans" / "LC_MESSAGES" / "django.mo"
TRANSLATIONS = {
    "An Idempotency-Key header (1-200 characters) is required.":
        "请求必须包含 Idempotency-Key 请求头（1 至 200 个字符）。",
    "Order not found.": "未找到该订单。",
    "Auditor accounts read audit data only.": "审计账户只能查阅审计数据。",
    "Price policy: %(problem)s.": "定价策略：%(problem)s。",
    "a later tier's rate cannot exceed an earlier one's (volume never costs more per id)":
        "后一阶梯的单价不能高于前一阶梯（量越大，每个 ID 的单价不会更高）",
    '"{input}" is not a known category; use one of: %(allowed)s.':
        "“{input}”不是已知的类别；请使用以下之一：%(allowed)s。",
    "The Content-Length header is not a number.": "Content-Length 请求头不是数字。",
    "%(name)s must be at least 1 (at most %(max)s are served).": "%(name)s 不得小于 1（最多返回 %(max)s 条）。",
}


@pytest.fixture
def chinese(tmp_path: Path) -> Iterator[None]:
    """A compiled zh_Hans catalogue holding TRANSLATIONS, in place of the project's."""
    catalog = Catalog(locale="zh_Hans", domain="django")
    for msgid, msgstr in TRANSLATIONS.items():
        catalog.add(msgid, msgstr, flags=["python-format"] if "%(" in msgid else [])
    folder = tmp_path / "zh_Hans" / "LC_MESSAGES"
    folder.mkdir(parents=True)
    with (folder / "django.mo").open("wb") as mo:
        write_mo(mo, catalog)
    with override_settings(LOCALE_PATHS=[tmp_path]):  # resets Django's cache of loaded catalogues
        yield


def member(slug: str, **flags: bool) -> str:
    """The API token of the owner of a new organisation."""
    organisation = organisation_create(slug=slug, name=slug.title(), **({"is_provider": False,
                                                                         "is_consumer": False} | flags))
    _, issued = member_create(organisation=organisation, username=f"{slug}-owner", password="pw-12345-long",
                              role=Member.Role.OWNER)
    return issued.secret


def test_it_refuses_a_purchase_without_an_idempotency_key_in_the_language_asked_for(chinese):
    client = client_for(member("lang-buyer", is_consumer=True))
    body = {"quote": str(uuid.uuid4())}
    chinese_answer = client.post("/api/orders/create/", body, format="json", HTTP_ACCEPT_LANGUAGE=ZH)
    english_answer = client.post("/api/orders/create/", body, format="json", HTTP_ACCEPT_LANGUAGE="en")
    assert chinese_answer.status_code == english_answer.status_code == 400
    assert chinese_answer.json() == {"message": TRANSLATIONS["An Idempotency-Key header (1-200 characters) is "
                                                             "required."], "extra": {}}
    assert english_answer.json()["message"] == "An Idempotency-Key header (1-200 characters) is required."
    assert chinese_answer.headers["Content-Language"] == ZH


def test_it_answers_a_not_found_in_chinese_and_audits_it_in_english(chinese):
    client = client_for(member("lang-seeker", is_consumer=True))
    answer = client.get(f"/api/orders/{uuid.uuid4()}/", HTTP_ACCEPT_LANGUAGE=ZH)
    assert answer.status_code == 404
    assert answer.json()["message"] == "未找到该订单。"
    denial = AuditEntry.objects.filter(action="access.denied").latest("id")
    assert denial.payload == {"status": 404, "message": "Order not found."}


def test_a_role_refusal_is_in_chinese_for_the_caller_and_in_english_in_the_audit_log(chinese):
    client = client_for(member("lang-auditor", is_auditor=True))
    answer = client.get("/api/orders/", HTTP_ACCEPT_LANGUAGE=ZH)
    assert answer.status_code == 403
    assert answer.json()["message"] == "审计账户只能查阅审计数据。"
    denial = AuditEntry.objects.filter(action="access.denied").latest("id")
    assert denial.payload == {"status": 403, "message": "Auditor accounts read audit data only."}


def test_djangos_not_found_is_in_drfs_chinese_and_audited_in_english():
    client = client_for(member("lang-reader", is_consumer=True))
    answer = client.get("/api/audit/entries/999999999/", HTTP_ACCEPT_LANGUAGE=ZH)
    assert answer.status_code == 404
    assert answer.json()["message"] == "未找到。"  # DRF's own catalogue
    denial = AuditEntry.objects.filter(action="access.denied").latest("id")
    assert denial.payload == {"status": 404, "message": "Not found."}


def test_a_price_policy_that_breaks_a_rule_is_explained_in_chinese(chinese):
    client = client_for(member("lang-provider", is_provider=True))
    policy = {"kind": "tiered", "base": 100, "tiers": [[1000, "1"], [None, "2"]]}
    body = {"datasets": [str(uuid.uuid4())], "title": "T", "purposes": ["marketing"], "base_price": 0,
            "price_per_match": 0, "price_policy": policy}
    answer = client.post("/api/products/create/", body, format="json", HTTP_ACCEPT_LANGUAGE=ZH)
    assert answer.status_code == 400
    assert answer.json()["message"] == "定价策略：后一阶梯的单价不能高于前一阶梯（量越大，每个 ID 的单价不会更高）。"
    english = client.post("/api/products/create/", body, format="json").json()["message"]
    assert english == ("Price policy: a later tier's rate cannot exceed an earlier one's (volume never costs more "
                       "per id).")


def test_a_serializer_refusal_names_the_value_and_the_choices_in_chinese(chinese):
    client = client_for(member("lang-browser", is_consumer=True))
    answer = client.get("/api/products/", {"category": "crypto"}, HTTP_ACCEPT_LANGUAGE=ZH)
    assert answer.status_code == 400
    message = answer.json()["message"]
    assert message.startswith("category: “crypto”不是已知的类别；请使用以下之一：finance, ")
    english = client.get("/api/products/", {"category": "crypto"}).json()["message"]
    assert english.startswith('category: "crypto" is not a known category; use one of: finance, ')


def test_a_refusal_with_numbers_in_it_reads_whole_in_chinese(chinese):
    client = client_for(member("lang-pages", is_consumer=True))
    answer = client.get("/api/orders/", {"limit": 0}, HTTP_ACCEPT_LANGUAGE=ZH)
    assert answer.status_code == 400
    assert answer.json() == {"message": "limit 不得小于 1（最多返回 100 条）。",
                             "extra": {"field": "limit", "max": 100}}


def test_the_body_size_guard_answers_in_the_language_of_the_browser(chinese, client):
    answer = client.post("/api/orders/", data=b"{}", content_type="application/json", HTTP_ACCEPT_LANGUAGE=ZH,
                         CONTENT_LENGTH="many")
    assert answer.status_code == 400
    assert answer.json()["message"] == "Content-Length 请求头不是数字。"
    assert translation.get_language() != ZH  # the guard's language ends with its answer


@pytest.mark.skipif(not PROJECT_CATALOGUE.exists(), reason="the project's zh_Hans catalogue is not compiled yet")
def test_the_projects_catalogue_translates_the_api_refusals():
    client = client_for(member("lang-real", is_consumer=True))
    missing_key = client.post("/api/orders/create/", {"quote": str(uuid.uuid4())}, format="json",
                              HTTP_ACCEPT_LANGUAGE=ZH)
    not_found = client.get(f"/api/orders/{uuid.uuid4()}/", HTTP_ACCEPT_LANGUAGE=ZH)
    for answer, english in ((missing_key, "An Idempotency-Key header (1-200 characters) is required."),
                            (not_found, "Order not found.")):
        message = answer.json()["message"]
        with translation.override(ZH):
            assert message == translation.gettext(english)
        assert message != english
        assert any("\u4e00" <= char <= "\u9fff" for char in message), message

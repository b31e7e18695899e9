"""Statements and top-ups through the API and the web UI: every entry on the caller's own accounts with
its running balance, paginated with a capped page size, the whole statement as CSV; the operator's
top-up (a payment provider stand-in) with its Idempotency-Key; errors as {"message", "extra"}."""
from __future__ import annotations

import csv
import io

import pytest
from django.test import Client

from marketplace.models import LedgerAccount, LedgerTransaction
from marketplace.services.ledger import balance_top_up, ledger_account, ledger_post
from marketplace.services.organisations import member_create, organisation_create
from tests.marketplace.api_flow import client_for, run_purchase
from tests.marketplace.data import overlapping_ids

pytestmark = pytest.mark.chain


def _operator(slug: str):
    organisation = organisation_create(slug=slug, name="Platform operator", is_provider=False, is_consumer=False,
                                       is_operator=True)
    user, issued = member_create(organisation=organisation, username=f"{slug}-user", password="pw-12345-long",
                                 role="owner")
    return organisation, user, issued.secret


def _csv_rows(response) -> list[dict[str, str]]:
    body = b"".join(response.streaming_content).decode()
    return list(csv.DictReader(io.StringIO(body)))


def _top_up(client, organisation: str, amount, key: str | None = "k-1"):
    headers = {"HTTP_IDEMPOTENCY_KEY": key} if key is not None else {}
    return client.post("/api/ledger/top-ups/", {"organisation": organisation, "amount": amount}, format="json",
                       **headers)


@pytest.mark.django_db(transaction=True)
def test_it_shows_each_party_its_own_entries_with_running_balances_after_a_purchase(make_party):
    provider = make_party("stmt-prov", provider=True)
    consumer = make_party("stmt-cons", provider=False, balance=100_000)
    _, _, operator_token = _operator("stmt-op")
    seen = run_purchase(provider.token, consumer.token, *overlapping_ids(provider=40, consumer=20, overlap=10))
    order, price = seen["order"], seen["order"]["price"]
    assert order["status"] == "fulfilled"

    statement = client_for(consumer.token).get("/api/ledger/statement/").json()
    assert statement["organisation"] == "stmt-cons"
    assert statement["balances"] == {"balance": 100_000 - price, "escrow": 0}
    rows = list(reversed(statement["results"]))  # oldest first
    assert [(r["account"], r["amount"], r["running_balance"]) for r in rows] == [
        ("balance", 100_000, 100_000),
        ("balance", -price, 100_000 - price),
        ("escrow", price, price),
        ("escrow", -price, 0),
    ]
    assert rows[0]["memo"] == "Top-up (payment provider stand-in)" and rows[0]["order"] is None
    assert {r["order"] for r in rows[1:]} == {order["id"]}
    assert statement["count"] == 4 and statement["next"] is None

    fee = price * 500 // 10_000
    sold = client_for(provider.token).get("/api/ledger/statement/").json()
    assert sold["balances"] == {"balance": price - fee, "escrow": 0}
    assert [(r["account"], r["amount"], r["order"]) for r in sold["results"]] == [
        ("balance", price - fee, order["id"])]

    operator = client_for(operator_token).get("/api/ledger/statement/").json()
    assert operator["balances"]["fees"] == fee
    assert [(r["account"], r["amount"]) for r in operator["results"]] == [("fees", fee)]


@pytest.mark.django_db
def test_it_pages_the_statement_and_caps_the_page_size(make_party):
    consumer = make_party("stmt-page", provider=False)
    for amount in range(1, 106):
        balance_top_up(organisation=consumer.organisation, amount=amount)
    client = client_for(consumer.token)

    first = client.get("/api/ledger/statement/?limit=2").json()
    assert first["count"] == 105 and len(first["results"]) == 2
    assert [r["amount"] for r in first["results"]] == [105, 104]  # newest first
    assert first["results"][0]["running_balance"] == sum(range(1, 106))
    second = client.get(first["next"]).json()
    assert [r["amount"] for r in second["results"]] == [103, 102]
    assert second["results"][0]["running_balance"] == sum(range(1, 104))

    capped = client.get("/api/ledger/statement/?limit=100000").json()
    assert len(capped["results"]) == 100 and "limit=100&" in capped["next"]
    for query in ("limit=0", "limit=abc", "offset=-1"):
        refused = client.get(f"/api/ledger/statement/?{query}")
        assert refused.status_code == 400, query
        assert set(refused.json()) == {"message", "extra"}


@pytest.mark.django_db
def test_it_exports_the_whole_statement_as_csv(make_party):
    consumer = make_party("stmt-csv", provider=False, balance=700)
    balance = ledger_account(organisation=consumer.organisation, kind=LedgerAccount.Kind.BALANCE)
    escrow = ledger_account(organisation=consumer.organisation, kind=LedgerAccount.Kind.ESCROW)
    ledger_post(memo='=HYPERLINK("http://evil.example")', entries=[(balance, -200), (escrow, 200)])
    client = client_for(consumer.token)

    for url, headers in (("/api/ledger/statement/?format=csv", {}),
                         ("/api/ledger/statement/", {"HTTP_ACCEPT": "text/csv"})):
        response = client.get(url, **headers)
        assert response.status_code == 200
        assert response["Content-Type"].startswith("text/csv")
        assert response["Content-Disposition"].startswith('attachment; filename="statement-stmt-csv-')
        rows = _csv_rows(response)
        assert [(r["account"], r["amount"], r["running_balance"]) for r in rows] == [
            ("balance", "700", "700"), ("balance", "-200", "500"), ("escrow", "200", "200")]
        assert rows[0]["memo"] == "Top-up (payment provider stand-in)"
        assert rows[1]["memo"].startswith("'=HYPERLINK")  # a spreadsheet shows it, never runs it

    anonymous = Client().get("/api/ledger/statement/?format=csv")
    assert anonymous.status_code in {401, 403}


@pytest.mark.django_db
def test_it_never_shows_another_organisations_entries(make_party):
    mine = make_party("stmt-mine", provider=False, balance=111)
    other = make_party("stmt-other", provider=False, balance=222)
    body = client_for(mine.token).get("/api/ledger/statement/").json()
    assert [r["amount"] for r in body["results"]] == [111]
    assert "fees" not in body["balances"]  # only the operator sees the platform's fee income
    rows = _csv_rows(client_for(mine.token).get("/api/ledger/statement/?format=csv"))
    assert [r["amount"] for r in rows] == ["111"]
    assert client_for(other.token).get("/api/ledger/statement/").json()["results"][0]["amount"] == 222


@pytest.mark.django_db
def test_it_lets_the_operator_top_up_once_per_idempotency_key(make_party):
    consumer = make_party("topup-cons", provider=False)
    _, _, token = _operator("topup-op")
    client = client_for(token)

    first = _top_up(client, "topup-cons", 5_000)
    assert first.status_code == 201, first.content
    assert first.json()["organisation"] == "topup-cons" and first.json()["amount"] == 5_000
    assert first.json()["memo"] == "Top-up (payment provider stand-in)"
    repeat = _top_up(client, "topup-cons", 5_000)
    assert repeat.status_code == 200 and repeat.json() == first.json()
    other_body = _top_up(client, "topup-cons", 6_000)
    assert other_body.status_code == 422 and "different request" in other_body.json()["message"]
    assert client_for(consumer.token).get("/api/ledger/statement/").json()["balances"]["balance"] == 5_000


@pytest.mark.django_db
@pytest.mark.parametrize(("body", "key", "status", "field"), [
    ({"organisation": "topup-bad", "amount": 0}, "k", 400, "amount"),
    ({"organisation": "topup-bad", "amount": "lots"}, "k", 400, "amount"),
    ({"organisation": "topup-bad", "amount": 10**11 + 1}, "k", 400, "amount"),
    ({"organisation": "topup-bad", "amount": 1.5}, "k", 400, "amount"),
    ({"amount": 100}, "k", 400, "organisation"),
    ({"organisation": "no such org!", "amount": 100}, "k", 400, "organisation"),
    ({"organisation": "nobody", "amount": 100}, "k", 404, None),
    ({"organisation": "topup-bad", "amount": 100}, None, 400, None),
])
def test_it_refuses_a_bad_top_up_with_a_clear_error_and_writes_nothing(make_party, body, key, status, field):
    make_party("topup-bad", provider=False)
    _, _, token = _operator("topup-op-bad")
    before = LedgerTransaction.objects.count()
    response = client_for(token).post("/api/ledger/top-ups/", body, format="json",
                                      **({"HTTP_IDEMPOTENCY_KEY": key} if key else {}))
    assert response.status_code == status, response.content
    assert set(response.json()) == {"message", "extra"} and response.json()["message"]
    if field:
        assert field in response.json()["extra"]["fields"]
    assert LedgerTransaction.objects.count() == before


@pytest.mark.django_db
def test_it_answers_403_to_a_top_up_by_anyone_but_the_operator(make_party):
    provider = make_party("topup-prov", provider=True)
    consumer = make_party("topup-self", provider=False)
    before = LedgerTransaction.objects.count()
    for token in (provider.token, consumer.token):
        refused = _top_up(client_for(token), "topup-self", 1_000_000)
        assert refused.status_code == 403
        assert set(refused.json()) == {"message", "extra"}
        assert _top_up(client_for(token), "", "not a number", key=None).status_code == 403  # whatever the body
    assert Client().post("/api/ledger/top-ups/", {"organisation": "topup-self", "amount": 1},
                         content_type="application/json").status_code in {401, 403}
    assert LedgerTransaction.objects.count() == before


@pytest.mark.django_db
def test_it_shows_the_statement_page_with_balances_and_a_csv_link(make_party):
    consumer = make_party("stmt-ui", provider=False, balance=12_345)
    balance = ledger_account(organisation=consumer.organisation, kind=LedgerAccount.Kind.BALANCE)
    escrow = ledger_account(organisation=consumer.organisation, kind=LedgerAccount.Kind.ESCROW)
    ledger_post(memo="Purchase of <b>bold</b> into escrow", entries=[(balance, -345), (escrow, 345)])
    browser = Client()
    assert browser.get("/statement/").status_code == 302  # sign in first
    browser.force_login(consumer.user)

    page = browser.get("/statement/")
    assert page.status_code == 200
    html = page.content.decode()
    assert 'id="balance-balance">$120.00<' in html and 'id="balance-escrow">$3.45<' in html
    assert "Top-up (payment provider stand-in)" in html
    assert "Purchase of &lt;b&gt;bold&lt;/b&gt; into escrow" in html  # escaped
    assert "$123.45" in html and "−$3.45" in html
    assert 'href="/api/ledger/statement/?format=csv"' in html
    assert 'id="balance-fees"' not in html
    assert 'action="/statement/funds/"' in html and 'id="funds-amount"' in html  # "Add funds" asks the operator
    download = browser.get("/api/ledger/statement/?format=csv")  # the session signs the link in
    assert download.status_code == 200 and len(_csv_rows(download)) == 3

"""A product's id rule decides what matches, on both nodes: e-mail addresses in another case match under
nfkc_casefold and not under nfc; phone numbers written differently match under digits. The buyer's result
holds its own spellings."""
from __future__ import annotations

import pytest

from tests.marketplace.api_flow import buy, client_for, list_product, quote, result_rows, upload, wait_order

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.chain]


def _csv(ids: list[str]) -> bytes:
    return ("customer_id,score\n" + "".join(f"{value},{n}\n" for n, value in enumerate(ids))).encode()


def test_the_products_id_rule_decides_what_matches(make_party):
    provider = make_party("idr-prov", provider=True)
    consumer = make_party("idr-cons", provider=False, balance=1_000_000)
    seller, buyer = client_for(provider.token), client_for(consumer.token)
    theirs = upload(seller, "emails", _csv(["Alice@Example.COM", "BOB@x.org", "Carol@X.org", "dave@x.org",
                                            "Jos\u00e9@x.org"]))["id"]
    mine = upload(buyer, "my emails", _csv(["alice@example.com", "bob@x.org", "carol@x.org", "zed@x.org",
                                            "jose\u0301@x.org"]))["id"]
    exact = list_product(seller, theirs, title="Exact", id_rule="nfc")
    folded = list_product(seller, theirs, title="Folded", id_rule="nfkc_casefold")
    assert exact["id_rule"] == "nfc" and folded["id_rule"] == "nfkc_casefold"

    assert quote(buyer, exact["id"], mine)["coverage"] == 0
    priced = quote(buyer, folded["id"], mine)
    assert priced["coverage"] == 4
    order = wait_order(buyer, buy(buyer, priced["id"]).json()["id"], {"fulfilled", "refunded", "failed"})
    assert order["status"] == "fulfilled", order
    assert sorted(result_rows(buyer, order["id"]).opened["ids"]) == [
        "alice@example.com", "bob@x.org", "carol@x.org", "jose\u0301@x.org"]


def test_phone_numbers_match_by_their_digits(make_party):
    provider, consumer = make_party("idr2-prov", provider=True), make_party("idr2-cons", provider=False)
    seller, buyer = client_for(provider.token), client_for(consumer.token)
    theirs = upload(seller, "phones", _csv(["+86 138-0013-8000", "+86 139 0000 0001", "+86 137 0000 0002",
                                            "+86 136 0000 0003"]))["id"]
    mine = upload(buyer, "my phones", _csv(["8613800138000", "86-139-0000-0001", "(86) 137 0000 0002",
                                            "8600000000000"]))["id"]
    product = list_product(seller, theirs, id_rule="digits")
    assert quote(buyer, product["id"], mine)["coverage"] == 3
    refused = seller.post("/api/products/create/", {"datasets": [theirs], "title": "x", "purposes": ["risk_control"],
                                                    "base_price": 1, "price_per_match": 1, "id_rule": "soundex"},
                          format="json")
    assert refused.status_code == 400 and "id_rule" in refused.json()["extra"]["fields"]

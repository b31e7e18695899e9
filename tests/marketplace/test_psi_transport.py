"""A PSI purchase runs on the relay or on a direct link between the nodes: by the sets' sizes ("auto", the
default), or as the buyer's quote asks; a transport that is unknown, or direct without the engine, is a 400."""
from __future__ import annotations

import pytest

from marketplace.exceptions import ApplicationError
from marketplace.models import Quote
from marketplace.services.psi_transport import psi_transport_choose
from tests.marketplace.api_flow import client_for, list_product, upload
from tests.marketplace.data import consumer_csv, overlapping_ids, provider_csv


@pytest.fixture
def engine(settings, tmp_path):
    """An engine's interpreter that exists (the choice only checks that it is installed)."""
    python = tmp_path / "python"
    python.write_text("#!/bin/sh\n")
    python.chmod(0o755)
    settings.PSI_DIRECT_PYTHON = python
    settings.PSI_DIRECT_MIN_ROWS = 1000
    return python


@pytest.fixture
def no_engine(settings, tmp_path):
    settings.PSI_DIRECT_PYTHON = tmp_path / "absent" / "python"
    settings.PSI_DIRECT_MIN_ROWS = 1000


def _choose(params, consumer=5000, providers=(5000,)):
    return psi_transport_choose(protocol="psi", params=params, consumer_rows=consumer, provider_rows=list(providers))


def test_it_goes_direct_by_itself_only_when_both_sides_are_large_and_the_engine_is_there(engine) -> None:
    assert _choose({}) == ("psi_direct", {})
    assert _choose({"psi_transport": "auto"}) == ("psi_direct", {})
    assert _choose({}, consumer=999) == ("psi", {})
    assert _choose({}, providers=(5000, 999)) == ("psi", {})
    assert _choose({}, consumer=1000, providers=(1000,)) == ("psi_direct", {})


def test_it_keeps_the_relay_without_the_engine(no_engine) -> None:
    assert _choose({}) == ("psi", {})
    assert _choose({"psi_transport": "relay"}) == ("psi", {})


def test_the_buyer_decides_either_way(engine) -> None:
    assert _choose({"psi_transport": "relay"}) == ("psi", {})
    assert _choose({"psi_transport": "direct"}, consumer=10, providers=(10,)) == ("psi_direct", {})


def test_it_refuses_an_unknown_transport_and_direct_without_the_engine(no_engine) -> None:
    with pytest.raises(ApplicationError, match="psi_transport must be one of"):
        _choose({"psi_transport": "pigeon"})
    with pytest.raises(ApplicationError, match="not installed"):
        _choose({"psi_transport": "direct"})


def test_other_protocols_are_left_as_they_are(engine) -> None:
    assert psi_transport_choose(protocol="lookup", params={"columns": ["a"]}, consumer_rows=10**6,
                                provider_rows=[10**6]) == ("lookup", {"columns": ["a"]})


@pytest.mark.django_db(transaction=True)
@pytest.mark.chain
def test_a_quote_with_a_bad_transport_is_a_400_and_writes_nothing(make_party, no_engine) -> None:
    provider, consumer = make_party("pt-prov", provider=True), make_party("pt-cons", provider=False)
    seller, buyer = client_for(provider.token), client_for(consumer.token)
    provider_ids, consumer_ids = overlapping_ids(provider=20, consumer=8, overlap=4)
    product = list_product(seller, upload(seller, "customers", provider_csv(provider_ids))["id"])
    mine = upload(buyer, "applicants", consumer_csv(consumer_ids))
    ask = {"product": product["id"], "dataset": mine["id"], "purpose": "risk_control", "compute_type": "psi"}
    for transport, message in [("pigeon", "psi_transport must be one of"), (7, "psi_transport must be one of"),
                               ("direct", "needs the PSI engine")]:
        response = buyer.post("/api/quotes/", ask | {"params": {"psi_transport": transport}}, format="json")
        assert response.status_code == 400, response.content
        assert message in response.json()["message"] and response.json()["extra"]["field"] == "params"
    assert not Quote.objects.exists()
    relay = buyer.post("/api/quotes/", ask | {"params": {"psi_transport": "relay"}}, format="json")
    assert relay.status_code == 201 and relay.json()["params"] == {"psi_transport": "relay"}

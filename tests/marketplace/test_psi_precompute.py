"""The provider's node hashes its table's ids to the curve once per table version and keeps the points
in its vault, encrypted: later jobs over the table reuse them, with the same answers; a new version of
the data (a new table) gets points of its own."""
from __future__ import annotations

import pytest

from compute.protocols import psi
from tests.conftest import node_home
from tests.marketplace.api_flow import client_for, list_product, quote, upload
from tests.marketplace.data import consumer_csv, overlapping_ids, provider_csv

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.chain]


def test_the_providers_hashed_ids_are_computed_once_per_table_and_kept_encrypted(make_party, monkeypatch):
    provider, consumer = make_party("pre-prov", provider=True), make_party("pre-cons", provider=False)
    seller, buyer = client_for(provider.token), client_for(consumer.token)
    provider_ids, consumer_ids = overlapping_ids(provider=60, consumer=20, overlap=9)
    hashed: list[int] = []
    real = psi.psi_server_hash

    def counted(ids, **kwargs):
        hashed.append(len(ids))
        return real(ids, **kwargs)

    monkeypatch.setattr(psi, "psi_server_hash", counted)  # psi_points, shared by every protocol, calls it
    product = list_product(seller, upload(seller, "customers", provider_csv(provider_ids))["id"])
    mine = upload(buyer, "applicants", consumer_csv(consumer_ids))
    first = quote(buyer, product["id"], mine["id"])
    second = quote(buyer, product["id"], mine["id"])
    assert first["status"] == second["status"] == "ready"
    assert first["coverage"] == second["coverage"] == 9
    assert hashed == [60]  # the second job reused the points

    points = list((node_home(provider.organisation.node.slug) / "vault").glob("psi-points-*.bin"))
    assert len(points) == 1
    blob = points[0].read_bytes()
    assert len(blob) > 60 * 65 and not any(value.encode() in blob for value in provider_ids)

    # Another version of the data is another table: its own points, and its own answer.
    updated = list_product(seller, upload(seller, "customers v2", provider_csv(provider_ids[:5]))["id"],
                           title="Customer match v2")
    assert quote(buyer, updated["id"], mine["id"])["coverage"] == 5
    assert hashed == [60, 5]

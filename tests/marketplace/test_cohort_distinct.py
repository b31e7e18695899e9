"""The minimum cohort counts distinct ids, not CSV rows: one person's id written three times does not pass
a gate of three — not at the marketplace, not at the consumer's node, not at the provider's node (which
counts the distinct points it receives, so a consumer node that skips its own check is still refused)."""
from __future__ import annotations

import struct

import pytest

from compute.exceptions import ComputeError
from compute.protocols import psi
from compute.protocols.spec import StepInput
from compute.tabular import Table
from tests.marketplace.api_flow import client_for, list_product, upload
from tests.marketplace.data import consumer_csv, provider_csv


class _Data:
    def __init__(self, ids: list[str]) -> None:
        self._table = Table(columns=["id"], rows=[[value] for value in ids], id_column="id")

    def table(self) -> Table:
        return self._table

    def ids(self) -> list[str]:
        return self._table.ids()

    def cached(self, name, compute):
        return compute()


def _step(ids: list[str], *, payload: bytes = b"", min_cohort: int = 3) -> StepInput:
    return StepInput(payload=payload, state=None, params={}, data=_Data(ids), min_cohort=min_cohort)


def test_the_consumers_node_counts_distinct_ids():
    with pytest.raises(ComputeError, match="1 distinct ids; at least 3"):
        psi.SPEC.steps[0].run(_step(["alice", "alice", "alice"]))
    assert psi.SPEC.steps[0].run(_step(["alice", "bob", "carol"])).message


def test_the_providers_node_counts_the_distinct_points_it_receives():
    _, request = psi.psi_client_blind([b"alice"])
    point = request[-psi.POINT_SIZE:]
    header = struct.Struct(">4sBBII")
    forged = header.pack(b"DXPS", 1, 0, 3, 0) + point * 3  # one person's point, three times
    respond = psi.SPEC.steps[1].run
    with pytest.raises(ComputeError, match="1 distinct ids; at least 3"):
        respond(_step(["alice", "bob", "carol"], payload=forged))
    _, honest = psi.psi_client_blind([b"alice", b"bob", b"carol"])
    assert respond(_step(["alice", "bob", "carol"], payload=honest)).message


@pytest.mark.chain
@pytest.mark.django_db(transaction=True)
def test_a_query_of_one_id_written_three_times_is_refused_with_a_clear_error(make_party):
    provider, consumer = make_party("cd-prov", provider=True), make_party("cd-cons", provider=False)
    seller, buyer = client_for(provider.token), client_for(consumer.token)
    product = list_product(seller, upload(seller, "customers", provider_csv([f"P{n}" for n in range(20)]))["id"],
                           min_cohort=3)
    mine = upload(buyer, "one person", consumer_csv(["P1", "P1", "P1"]))
    response = buyer.post("/api/quotes/", {"product": product["id"], "dataset": mine["id"],
                                           "purpose": "risk_control"}, format="json")
    assert response.status_code == 400, response.content
    assert "1 distinct ids; at least 3" in response.json()["message"]

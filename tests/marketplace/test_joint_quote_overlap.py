"""A joint product's quote through the API: one overlap job over all its providers, the buyer pays once per
covered id, shared customers are split by the Shapley value of the union-coverage game, a re-listed copy of
a provider's data earns nothing, and the quote recomputes to the cent from the inputs it recorded."""
from __future__ import annotations

import pytest

from audit.models import AuditEntry
from compute.models import Job
from marketplace.models import Quote
from marketplace.services.quotes import pricing_inputs_digest
from pricing.policy import quote_recompute
from tests.marketplace.api_flow import client_for, list_joint_product, quote, upload
from tests.marketplace.data import consumer_csv, provider_csv

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.chain]


def ids(first: int, last: int) -> list[str]:
    return [f"C{n:04d}" for n in range(first, last)]


def test_a_joint_quote_pays_once_per_id_and_splits_shared_ids_and_copies_fairly(make_party):
    lead, partner, copier = (make_party(f"jq-prov{n}", provider=True) for n in range(3))
    consumer = make_party("jq-cons", provider=False, balance=1_000_000)
    buyer = client_for(consumer.token)
    datasets = [upload(client_for(lead.token), "lead", provider_csv(ids(0, 40)))["id"],
                upload(client_for(partner.token), "partner", provider_csv(ids(20, 60)))["id"],
                upload(client_for(copier.token), "copy of lead", provider_csv(ids(0, 40)))["id"]]
    product = list_joint_product(client_for(lead.token), [client_for(partner.token), client_for(copier.token)],
                                 datasets, min_cohort=2, base_price=500, price_per_match=10)
    mine = upload(buyer, "mine", consumer_csv(ids(0, 80)))

    quoted = quote(buyer, product["id"], mine["id"])

    assert quoted["status"] == "ready" and quoted["coverage"] == 60  # the union, not 40 + 40 + 40
    stored = Quote.objects.get(id=quoted["id"])
    jobs = {m.job for m in stored.measurements.all()}
    assert len(jobs) == 1 and next(iter(jobs)).protocol == "coverage_overlap"
    assert next(iter(jobs)).status == Job.Status.SUCCEEDED
    shares = {share["dataset"]: share for share in quoted["shares"]}
    assert shares[datasets[0]]["shapley_coverage"] == shares[datasets[1]]["shapley_coverage"] == 30.0
    assert shares[datasets[2]]["shapley_coverage"] == 0.0 and shares[datasets[2]]["replica_of"] == datasets[0]
    assert shares[datasets[2]]["share"] == 0
    assert sum(share["share"] for share in quoted["shares"]) == quoted["price"]

    recomputed = quote_recompute(stored.pricing_inputs)
    assert recomputed.total == quoted["price"] and recomputed.as_shares() == stored.shares
    audited = AuditEntry.objects.get(action="quote.ready", subject=f"quote:{quoted['id']}")
    assert audited.payload["inputs_sha256"] == pricing_inputs_digest(stored.pricing_inputs)
